//! The toll-fraud guard over real sockets: blocked requests make no provider call, and are
//! counted so an alert can fire.

use crate::helpers::{AppOptions, action, okta_request, spawn_app_with};

#[tokio::test]
async fn a_burst_to_one_prefix_trips_the_prefix_limit() {
    let app = spawn_app_with(AppOptions {
        extra: "[guard.sms]\nper_prefix = \"5/10m\"",
        ..AppOptions::default()
    })
    .await;
    // Ten numbers in one range: the pumping pattern (each number asked only once).
    let mut statuses = Vec::new();
    for index in 0..10 {
        let phone = format!("+4477009001{index:02}");
        let (_, answer) = app
            .hook_json(&okta_request(&format!("evt-pump-{index}"), &phone, "482915", "SMS"))
            .await;
        statuses.push(action(&answer)["status"].as_str().unwrap().to_owned());
    }
    assert_eq!(statuses.iter().filter(|s| *s == "SUCCESSFUL").count(), 5, "{statuses:?}");
    assert_eq!(&statuses[5..], ["FAILED"; 5]);
    assert_eq!(app.primary.received().len(), 5, "blocked requests reach no provider");
    // Another range is unaffected.
    let (_, answer) =
        app.hook_json(&okta_request("evt-other-range", "+447700800123", "482915", "SMS")).await;
    assert_eq!(action(&answer)["status"], "SUCCESSFUL");
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(
            r#"switchboard_guard_blocked_total{rule="per_prefix",channel="sms",mode="enforce"} 5"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"switchboard_guard_near_misses_total{rule="per_prefix",channel="sms"}"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_blocked_country_makes_no_provider_call() {
    let app = spawn_app_with(AppOptions {
        extra: "[guard.sms]\nallow_countries = [\"US\", \"GB\"]\n[guard.voice]\ndeny_countries = [\"LV\"]",
        ..AppOptions::default()
    })
    .await;
    let (_, sms) =
        app.hook_json(&okta_request("evt-lv-sms", "+37120000000", "482915", "SMS")).await;
    let (_, call) =
        app.hook_json(&okta_request("evt-lv-call", "+37120000000", "482915", "CALL")).await;
    for answer in [&sms, &call] {
        let value = action(answer);
        assert_eq!(value["status"], "FAILED");
        assert!(
            value["transactionMetadata"]
                .as_str()
                .unwrap()
                .starts_with("refused=guard; rule=country_"),
            "{value}"
        );
    }
    assert!(app.primary.received().is_empty() && app.backup.received().is_empty());
    // Okta's retry gets the same refusal, still without a send.
    let (_, again) =
        app.hook_json(&okta_request("evt-lv-sms", "+37120000000", "482915", "SMS")).await;
    assert_eq!(again, sms);
    assert!(app.primary.received().is_empty());
}

#[tokio::test]
async fn monitor_mode_blocks_nothing_and_counts_everything() {
    let app = spawn_app_with(AppOptions {
        extra: "[guard]\nmode = \"monitor\"\n[guard.sms]\ndeny_countries = [\"LV\"]\nper_number = \"2/1h\"",
        ..AppOptions::default()
    })
    .await;
    app.hook_json(&okta_request("evt-m-lv", "+37120000000", "482915", "SMS")).await;
    for index in 0..4 {
        let (_, answer) = app
            .hook_json(&okta_request(&format!("evt-m-{index}"), "+14155550100", "482915", "SMS"))
            .await;
        assert_eq!(action(&answer)["status"], "SUCCESSFUL");
    }
    let (primary, backup) = app.sends();
    assert_eq!(primary.len() + backup.len(), 5, "monitor mode sends everything");
    let metrics = app.metrics().await;
    assert!(metrics.contains(r#"switchboard_guard_blocked_total{rule="country_denied",channel="sms",mode="monitor"} 1"#), "{metrics}");
    assert!(
        metrics.contains(
            r#"switchboard_guard_blocked_total{rule="per_number",channel="sms",mode="monitor"} 2"#
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn the_blocked_answer_is_configurable() {
    let app = spawn_app_with(AppOptions {
        extra: "[guard]\nblocked_answer = \"successful\"\n[guard.sms]\ndeny_countries = [\"LV\"]",
        ..AppOptions::default()
    })
    .await;
    let (_, answer) =
        app.hook_json(&okta_request("evt-quiet", "+37120000000", "482915", "SMS")).await;
    assert_eq!(action(&answer)["status"], "SUCCESSFUL", "Okta's own providers stay silent too");
    assert!(app.primary.received().is_empty());
}

#[tokio::test]
async fn the_spend_cap_stops_sends_at_its_amount() {
    let app = spawn_app_with(AppOptions {
        extra: "[prices.twilio-primary]\ndefault = { sms = 1.0, voice_minute = 1.0 }\n[guard.spend]\ndaily_cap = 3.0",
        ..AppOptions::default()
    })
    .await;
    let mut statuses = Vec::new();
    for index in 0..5 {
        let phone = format!("+1415555030{index}");
        let (_, answer) = app
            .hook_json(&okta_request(&format!("evt-spend-{index}"), &phone, "482915", "SMS"))
            .await;
        statuses.push(action(&answer)["status"].as_str().unwrap().to_owned());
    }
    assert_eq!(statuses, ["SUCCESSFUL", "SUCCESSFUL", "SUCCESSFUL", "FAILED", "FAILED"]);
    assert_eq!(
        app.primary.received().len(),
        3,
        "three sends at 1.0 reach the 3.0 cap; nothing after"
    );
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(
            r#"switchboard_guard_blocked_total{rule="spend_cap",channel="sms",mode="enforce"} 2"#
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_reload_keeps_the_counters_of_an_unchanged_limit_and_restarts_a_changed_one() {
    let app = spawn_app_with(AppOptions {
        extra: "[guard.sms]\nper_number = \"2/1h\"",
        ..AppOptions::default()
    })
    .await;
    let phone = "+447700900555";
    let status = |answer: &serde_json::Value| action(answer)["status"].as_str().unwrap().to_owned();
    for index in 0..2 {
        let (_, answer) = app
            .hook_json(&okta_request(&format!("evt-keep-{index}"), phone, "482915", "SMS"))
            .await;
        assert_eq!(status(&answer), "SUCCESSFUL");
    }
    let original = std::fs::read_to_string(&app.config_path).unwrap();
    let reload = || async {
        let response = app.admin(reqwest::Method::POST, "/admin/reload").send().await.unwrap();
        assert_eq!(response.status(), 200);
    };

    // Another setting changes, the limit does not: the number has used its allowance.
    let edited = original.replace("deadline_ms = 2500", "deadline_ms = 2400");
    assert_ne!(edited, original, "the edit must change the file");
    std::fs::write(&app.config_path, &edited).unwrap();
    reload().await;
    let (_, answer) = app.hook_json(&okta_request("evt-keep-2", phone, "482915", "SMS")).await;
    assert_eq!(status(&answer), "FAILED", "a reload must not grant a fresh allowance");

    // The limit itself changes: it counts afresh under the new quota.
    std::fs::write(&app.config_path, edited.replace("\"2/1h\"", "\"3/1h\"")).unwrap();
    reload().await;
    let (_, answer) = app.hook_json(&okta_request("evt-keep-3", phone, "482915", "SMS")).await;
    assert_eq!(status(&answer), "SUCCESSFUL");
    // Resends to one number alternate providers; the refused one reached neither.
    assert_eq!(app.primary.received().len() + app.backup.received().len(), 3);
}
