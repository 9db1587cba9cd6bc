//! Delivery truth end to end: receipts as route evidence, over sockets, with the default
//! `[health]` settings. The Twilio emulators accept every send and post signed receipts
//! according to a per-country delivery policy; the server must route on what reached phones.

use std::time::Duration;

use reqwest::Method;
use switchboard_sim::{CountryDelivery, Receipts};

use crate::helpers::{AppOptions, TestApp, okta_request, spawn_app_with, within};

/// The default `[health]` and routing; only the fraud guard watches instead of blocking, since
/// these tests send dozens of codes to one number range from one address, which is what SMS
/// pumping looks like.
async fn spawn(health: &'static str) -> TestApp {
    spawn_app_with(AppOptions {
        extra: "[guard]\nmode = \"monitor\"\n",
        health,
        ..Default::default()
    })
    .await
}

/// Receipts come after the API's answer, as they do from real providers (with none, a receipt
/// can reach the server before the acceptance it reports is recorded).
const RECEIPT_DELAY: Duration = Duration::from_millis(50);

/// Sends one code to `phone` and waits until its final receipt has been handled.
async fn send_and_settle(app: &TestApp, event_id: &str, phone: &str) {
    let (status, _) = app.hook_json(&okta_request(event_id, phone, "482915", "SMS")).await;
    assert_eq!(status, 200);
    let event = format!("\"event_id\":\"{event_id}\"");
    let is_final = |line: &str| {
        line.contains("\"delivery receipt\"") && line.contains(&event) && !line.contains("pending")
    };
    within(10, app.logs.wait_for_line(is_final)).await;
}

/// How many of the sends journaled so far went to `phone`'s country prefix, per provider.
fn sends_to(app: &TestApp, prefix: &str) -> (usize, usize) {
    let (primary, backup) = app.sends();
    let count = |sends: &[switchboard_sim::twilio::ReceivedSend]| {
        sends
            .iter()
            .filter(|send| send.to.as_deref().is_some_and(|to| to.starts_with(prefix)))
            .count()
    };
    (count(&primary), count(&backup))
}

async fn providers(app: &TestApp) -> serde_json::Value {
    app.admin(Method::GET, "/admin/providers").send().await.unwrap().json().await.unwrap()
}

/// The admin API's row for one provider's route.
fn route<'a>(
    providers: &'a serde_json::Value,
    provider: &str,
    country: &str,
) -> &'a serde_json::Value {
    providers["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["id"] == provider)
        .and_then(|row| {
            row["routes"].as_array().unwrap().iter().find(|route| route["country"] == country)
        })
        .unwrap_or_else(|| panic!("no {provider}/{country} route in {providers}"))
}

#[tokio::test]
async fn a_provider_filtering_one_country_loses_it_within_20_sends_and_keeps_the_others() {
    let app = spawn("").await;
    app.backup.set_receipts(Receipts::delivered().with_delay(RECEIPT_DELAY));
    // A good history first: the primary delivers to GB for fifty codes.
    app.primary.set_receipts(Receipts::delivered().with_delay(RECEIPT_DELAY));
    for index in 0..50 {
        send_and_settle(&app, &format!("evt-good-{index}"), &format!("+4474005678{index:02}"))
            .await;
    }
    assert_eq!(sends_to(&app, "+44"), (50, 0));
    // Then it goes on accepting everything, delivers to the US, and its receipts say Twilio
    // 30007 (carrier filtering: a number-level class) for every British number.
    app.primary.set_receipts(
        Receipts::delivered()
            .with_delay(RECEIPT_DELAY)
            .with_rule(CountryDelivery::to(&["GB"]).delivered(0.0, &["30007"])),
    );
    for index in 0..20 {
        send_and_settle(&app, &format!("evt-gb-{index}"), &format!("+4474001234{index:02}")).await;
    }
    let (to_primary, to_backup) = sends_to(&app, "+44");
    let to_primary = to_primary - 50;
    assert_eq!(to_primary + to_backup, 20, "one send per code: 30007 is not failed over");
    eprintln!("filtered GB codes sent to the primary: {to_primary} of 20");
    assert!(to_primary < 20, "the filtering route kept GB for {to_primary} of 20 sends");
    // The move sticks: the last five codes all went to the backup.
    let (primary, _) = app.sends();
    let last_primary = primary
        .iter()
        .filter(|send| send.to.as_deref().is_some_and(|to| to.starts_with("+44")))
        .count();
    for index in 20..25 {
        send_and_settle(&app, &format!("evt-gb-{index}"), &format!("+4474001234{index:02}")).await;
    }
    assert_eq!(sends_to(&app, "+44").0, last_primary, "GB stays off the filtering route");
    assert!(last_primary < 70);

    // Its other countries are untouched.
    for index in 0..5 {
        send_and_settle(&app, &format!("evt-us-{index}"), &format!("+1415555021{index}")).await;
    }
    assert_eq!(sends_to(&app, "+1"), (5, 0), "the primary keeps the US");

    // The operator sees why: the admin API, explain and the metrics.
    let providers = providers(&app).await;
    let gb = route(&providers, "twilio-primary", "GB");
    assert_eq!(gb["route_problem"], true, "{gb}");
    assert_eq!(gb["receipts"]["verdict"], "poor", "{gb}");
    // Its latest receipts say so however good its history: ejected for that country.
    assert_eq!(gb["health"]["state"], "ejected", "{gb}");
    assert_eq!(gb["health"]["cause"], "undelivered", "{gb}");
    assert_eq!(route(&providers, "twilio-primary", "US")["route_problem"], false);
    let explain = app.explain_text("%2B447400123499").await;
    assert!(explain.contains("chosen       1. twilio-backup"), "{explain}");
    assert!(explain.contains("excluded     twilio-primary: ejected (undelivered)"), "{explain}");
    let delivery = explain.lines().find(|line| line.starts_with("delivery     twilio-primary"));
    let delivery = delivery.unwrap_or_else(|| panic!("no delivery line: {explain}"));
    assert!(delivery.contains("latest ") && delivery.contains(": poor"), "{explain}");
    let metrics = app.metrics().await;
    for line in [
        r#"switchboard_route_problem{provider="twilio-primary",country="GB",channel="sms",signal="receipts"} 1"#,
        r#"switchboard_route_problem{provider="twilio-primary",country="US",channel="sms",signal="receipts"} 0"#,
        r#"switchboard_route_delivered_ratio{provider="twilio-primary",country="GB",channel="sms",signal="receipts"} 0"#,
    ] {
        assert!(metrics.contains(line), "missing {line}:\n{metrics}");
    }
}

#[tokio::test]
async fn a_country_where_every_provider_loses_codes_punishes_nobody() {
    let app = spawn("").await;
    // Both providers get 30003 (unreachable handset) for a quarter of British numbers: the
    // numbers, not a route. Under the default priority order the primary takes GB; the backup
    // has no evidence there, so the primary is held to the floor (50 %), which it clears.
    let mostly = || {
        Receipts::delivered()
            .with_rule(CountryDelivery::to(&["GB"]).delivered(75.0, &["30003"]))
            .with_seed(11)
            .with_delay(RECEIPT_DELAY)
    };
    app.primary.set_receipts(mostly());
    app.backup.set_receipts(mostly());
    for index in 0..30 {
        send_and_settle(&app, &format!("evt-gb-{index}"), &format!("+4474001234{index:02}")).await;
    }
    let providers = providers(&app).await;
    let gb = route(&providers, "twilio-primary", "GB");
    assert_eq!(gb["health"]["state"], "healthy", "{gb}");
    assert_eq!(sends_to(&app, "+44"), (30, 0), "{gb}");
}

#[tokio::test]
async fn a_provider_whose_receipts_stop_is_flagged_not_ejected() {
    let app = spawn("receipt_grace_ms = 1000").await;
    // Receipts come, then stop; the messages are delivered all along.
    app.primary.set_receipts(Receipts::delivered().with_delay(RECEIPT_DELAY));
    for index in 0..3 {
        send_and_settle(&app, &format!("evt-on-{index}"), &format!("+1415555030{index}")).await;
    }
    app.primary.set_receipts(Receipts::none());
    for index in 0..7 {
        let (status, _) = app
            .hook_json(&okta_request(
                &format!("evt-off-{index}"),
                &format!("+1415555031{index}"),
                "482915",
                "SMS",
            ))
            .await;
        assert_eq!(status, 200);
    }
    // The grace has to pass in real time: that is the behaviour under test. Then the upkeep the
    // server runs every few seconds, run now.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    app.server.upkeep();

    let providers = providers(&app).await;
    let us = route(&providers, "twilio-primary", "US");
    assert_eq!(us["receipts_stopped"], true, "{us}");
    assert_eq!(us["receipts_missing"], 7.0, "{us}");
    assert_eq!(us["route_problem"], false, "{us}");
    assert_eq!(us["health"]["state"], "healthy", "{us}");
    let metrics = app.metrics().await;
    for line in [
        r#"switchboard_receipts_missing_total{provider="twilio-primary"} 7"#,
        r#"switchboard_route_receipts_stopped{provider="twilio-primary",country="US",channel="sms"} 1"#,
    ] {
        assert!(metrics.contains(line), "missing {line}:\n{metrics}");
    }
    let explain = app.explain_text("%2B14155550399").await;
    assert!(explain.contains("receipts stopped: flagged"), "{explain}");
    // Not punished: the next code still goes to the primary.
    app.hook_json(&okta_request("evt-after", "+14155550399", "482915", "SMS")).await;
    assert_eq!(sends_to(&app, "+1"), (11, 0));
}

/// Codes sent per (optimize, receipt code) pair in the sweep below.
const SWEEP_CODES: usize = 20;

#[tokio::test]
async fn every_optimize_setting_moves_off_a_route_whose_receipts_say_undelivered() {
    // The primary accepts every send and its receipts report every message undelivered: with
    // 30007 (carrier filtering, a number-level class) and with 30008 (unknown error). Before
    // receipts were route evidence, 30007 never touched health: every code went to the primary.
    let mut lost = Vec::new();
    for optimize in ["priority", "reliability", "cost", "latency"] {
        for code in ["30007", "30008"] {
            let route = match optimize {
                "priority" => "",
                "reliability" => "optimize = \"reliability\"",
                "cost" => "optimize = \"cost\"",
                _ => "optimize = \"latency\"",
            };
            let app = spawn_app_with(AppOptions {
                extra: "[guard]\nmode = \"monitor\"\n",
                route,
                ..Default::default()
            })
            .await;
            app.primary.set_receipts(Receipts::undelivered(code).with_delay(RECEIPT_DELAY));
            app.backup.set_receipts(Receipts::delivered().with_delay(RECEIPT_DELAY));
            for index in 0..SWEEP_CODES {
                let event = format!("evt-{optimize}-{code}-{index}");
                send_and_settle(&app, &event, &format!("+1415555{:04}", 1000 + index)).await;
            }
            let (to_primary, to_backup) = sends_to(&app, "+1");
            assert_eq!(to_primary + to_backup, SWEEP_CODES, "{optimize}/{code}");
            lost.push(format!("{optimize}/{code}: {to_primary} of {SWEEP_CODES} to the primary"));
            assert!(to_primary <= 10, "{optimize}/{code}: {to_primary} codes lost");
        }
    }
    eprintln!("{}", lost.join("\n"));
}

const EVENTS_SECRET: &str = "events-secret-0123456789";

/// A code to `phone` for `user`; returns whether it reached the phone, and through which
/// emulator (`true`: the primary), once its final receipt has been handled.
async fn send_as_user(app: &TestApp, event_id: &str, phone: &str, user: &str) -> (bool, bool) {
    let (primary_before, backup_before) =
        (app.primary.handsets().len(), app.backup.handsets().len());
    let mut request = okta_request(event_id, phone, "482915", "SMS");
    request["data"]["userProfile"]["userId"] = user.into();
    let (status, _) = app.hook_json(&request).await;
    assert_eq!(status, 200);
    let event = format!("\"event_id\":\"{event_id}\"");
    let is_final = |line: &str| {
        line.contains("\"delivery receipt\"") && line.contains(&event) && !line.contains("pending")
    };
    within(10, app.logs.wait_for_line(is_final)).await;
    let (primary, backup) = (app.primary.handsets(), app.backup.handsets());
    match (primary.len() - primary_before, backup.len() - backup_before) {
        (1, 0) => (primary[primary_before].delivered, true),
        (0, 1) => (backup[backup_before].delivered, false),
        other => panic!("one send per code, got {other:?}"),
    }
}

/// Okta tells switchboard that `user` entered the code (an event hook delivery), and the
/// delivery has been processed.
async fn code_entered(app: &TestApp, delivery: &str, user: &str) {
    let url = app.hook_url.replace("/okta/telephony", "/okta/events");
    let body = switchboard_server::okta::OktaEvent::delivery(
        delivery,
        &[switchboard_server::okta::OktaEvent::verified(user, switchboard_core::Channel::Sms)],
    );
    let response = app
        .client
        .post(url)
        .header("Authorization", EVENTS_SECRET)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    within(10, app.logs.wait_for(&format!("\"batch\":\"{delivery}\""))).await;
}

#[tokio::test]
async fn a_provider_whose_receipts_lie_loses_traffic_once_conversions_show_it() {
    let app = spawn_app_with(AppOptions {
        extra: "[guard]\nmode = \"monitor\"\n",
        okta_tables: format!("[okta.events.auth]\nsecrets = [\"{EVENTS_SECRET}\"]\n"),
        ..Default::default()
    })
    .await;
    // The primary's receipts say "delivered" for every message, but nine in ten never arrive.
    // Receipts alone cannot tell; the users can: they enter the codes that arrive, and ask
    // again (a resend, which avoids the primary) when one does not.
    app.primary.set_receipts(
        Receipts::delivered()
            .with_delay(RECEIPT_DELAY)
            .with_seed(3)
            .with_rule(CountryDelivery::to(&["US"]).delivered(10.0, &["30008"]).lying(100.0)),
    );
    app.backup.set_receipts(Receipts::delivered().with_delay(RECEIPT_DELAY));

    let mut first_sends_to_primary = Vec::new();
    for user in 0..30 {
        let (phone, user_id) = (format!("+1415555{:04}", 2000 + user), format!("00u{user:017}"));
        let (mut arrived, to_primary) =
            send_as_user(&app, &format!("evt-lie-{user}"), &phone, &user_id).await;
        first_sends_to_primary.push(to_primary);
        if !arrived {
            let (again, resend_to_primary) =
                send_as_user(&app, &format!("evt-lie-{user}-again"), &phone, &user_id).await;
            assert!(!resend_to_primary, "a resend avoids the provider of the first send");
            arrived = again;
        }
        assert!(arrived, "every user gets a code in the end");
        code_entered(&app, &format!("batch-lie-{user}"), &user_id).await;
    }
    let lost = first_sends_to_primary.iter().filter(|to_primary| **to_primary).count();
    eprintln!("first codes to the lying route: {lost} of 30: {first_sends_to_primary:?}");
    assert!(lost <= 20, "{lost} of 30 first codes went to the lying route");
    assert!(
        first_sends_to_primary[25..].iter().all(|to_primary| !to_primary),
        "once conversions show it, first codes go to the backup: {first_sends_to_primary:?}"
    );

    // The receipts still look perfect; the conversions do not.
    let providers = providers(&app).await;
    let us = route(&providers, "twilio-primary", "US");
    assert_eq!(us["receipts"]["verdict"], "fine", "{us}");
    assert_eq!(us["conversions"]["verdict"], "poor", "{us}");
    assert_eq!(us["route_problem"], true, "{us}");
    let metrics = app.metrics().await;
    let line = r#"switchboard_route_problem{provider="twilio-primary",country="US",channel="sms",signal="conversions"} 1"#;
    assert!(metrics.contains(line), "missing {line}:\n{metrics}");
}
