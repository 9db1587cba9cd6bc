//! Delivery truth across replicas sharing a real `redis-server`: a receipt posted to the replica
//! that did not send the message, a receipt that beats its send record, Okta's event on another
//! replica, Plivo's answer URL fetched from another replica (once, and never in clear in Redis),
//! and receipts while Redis is down.

use std::time::Duration;

use reqwest::Method;
use switchboard_core::Channel;
use switchboard_server::okta::OktaEvent;
use switchboard_sim::plivo::{PlivoAccount, PlivoEmulator};
use switchboard_sim::{CountryDelivery, Receipts};

use crate::fleet::wait_for_metric;
use crate::helpers::{AppOptions, PRIMARY_SID, TestApp, action, okta_request, spawn_fleet, within};

const EVENTS_SECRET: &str = "events-secret-0123456789";
/// The user of `okta_request`.
const USER: &str = "00uyxxSknGtK8022w0g3";

/// The replica's public base URL (callbacks and Okta's hooks hang below it).
fn base(app: &TestApp) -> String {
    app.hook_url.trim_end_matches("/okta/telephony").to_owned()
}

/// Waits until both replicas see each other (the bus is subscribed by then too), with the
/// emulators posting no receipts of their own: the tests post the receipts.
async fn wait_for_peers(apps: &[TestApp]) {
    for app in apps {
        app.primary.set_receipts(Receipts::none());
        app.backup.set_receipts(Receipts::none());
    }
    within(10, async {
        for app in apps {
            wait_for_metric(app, |line| line == "switchboard_state_replicas 2").await;
        }
    })
    .await;
    // Each replica subscribes to the bus when it starts, beside its first sync: a few syncs
    // later it is listening.
    within(10, async {
        for app in apps {
            wait_for_metric(app, |line| {
                line.starts_with(r#"switchboard_state_calls_total{store="membership",result="ok"}"#)
                    && line.rsplit(' ').next().and_then(|n| n.parse::<u64>().ok()) >= Some(3)
            })
            .await;
        }
    })
    .await;
}

/// POSTs Twilio's signed status callback for `sid` to `app`, as Twilio would to that replica.
async fn post_twilio_status(app: &TestApp, sid: &str, status: &str) -> u16 {
    let url = format!("{}/callbacks/twilio-primary/status", base(app));
    let params: Vec<(String, String)> = [
        ("MessageSid", sid),
        ("MessageStatus", status),
        ("ErrorCode", "30003"),
        ("AccountSid", PRIMARY_SID),
    ]
    .iter()
    .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
    .collect();
    let signature = switchboard_sim::twilio::signature("primary-token", &url, &params);
    let response = app
        .client
        .post(&url)
        .header("X-Twilio-Signature", signature)
        .form(&params)
        .send()
        .await
        .unwrap();
    response.status().as_u16()
}

/// The receipt evidence on twilio-primary's route to `country` (good, bad, missing), or zeros.
async fn receipts(app: &TestApp, country: &str) -> (f64, f64, f64) {
    let json: serde_json::Value =
        app.admin(Method::GET, "/admin/providers").send().await.unwrap().json().await.unwrap();
    let route = json["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["id"] == "twilio-primary")
        .and_then(|row| {
            row["routes"].as_array()?.iter().find(|route| route["country"] == country).cloned()
        });
    route.map_or((0.0, 0.0, 0.0), |route| {
        let number = |value: &serde_json::Value| value.as_f64().unwrap_or(0.0);
        (
            number(&route["receipts"]["good"]),
            number(&route["receipts"]["bad"]),
            number(&route["receipts_missing"]),
        )
    })
}

/// Polls until `app`'s twilio-primary route to `country` has about `bad` undelivered receipts.
async fn wait_for_bad_receipts(app: &TestApp, country: &str, bad: f64) {
    loop {
        let (_, seen, _) = receipts(app, country).await;
        if (seen - bad).abs() < 0.25 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The counter's value in `metrics` (0 when absent).
fn counter(metrics: &str, series: &str) -> f64 {
    metrics.lines().find_map(|line| line.strip_prefix(series)?.trim().parse().ok()).unwrap_or(0.0)
}

#[tokio::test]
async fn a_receipt_posted_to_the_other_replica_changes_health_on_both_and_counts_once() {
    let fleet = spawn_fleet(2, AppOptions::default).await;
    let [sender, other] = &fleet.apps[..] else { unreachable!() };
    wait_for_peers(&fleet.apps).await;
    let (status, answer) =
        sender.hook_json(&okta_request("evt-fleet-dlr-1", "+14155550201", "482915", "SMS")).await;
    assert_eq!(status, 200);
    let sid = action(&answer)["transactionId"].as_str().unwrap().to_owned();
    assert_eq!(sender.primary.received().len(), 1, "sent once, by the primary");
    // The send's record reaches Redis in the background.
    within(10, async {
        while !fleet.redis.command(&["KEYS", "switchboard:sent:msg:*"]).contains("twilio-primary") {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;

    // Twilio posts the receipt to the replica that did not send the message.
    assert_eq!(post_twilio_status(other, &sid, "undelivered").await, 200);
    within(10, async {
        wait_for_bad_receipts(other, "US", 1.0).await;
        wait_for_bad_receipts(sender, "US", 1.0).await;
    })
    .await;
    let metrics = other.metrics().await;
    assert_eq!(
        counter(
            &metrics,
            r#"switchboard_receipts_total{provider="twilio-primary",state="undelivered",matched="true"}"#
        ),
        1.0,
        "{metrics}"
    );
    assert_eq!(
        counter(&metrics, r#"switchboard_state_receipt_matches_total{found="shared"}"#),
        1.0
    );
    let metrics = sender.metrics().await;
    assert_eq!(counter(&metrics, r#"switchboard_state_peer_evidence_total{kind="receipt"}"#), 1.0);

    // Twilio retries it, to either replica: it counts once fleet-wide.
    assert_eq!(post_twilio_status(sender, &sid, "undelivered").await, 200);
    assert_eq!(post_twilio_status(other, &sid, "undelivered").await, 200);
    within(10, fleet.logs().wait_for_count("repeated final receipt; counted once", 2)).await;
    for app in [sender, other] {
        let (_, bad, missing) = receipts(app, "US").await;
        assert!((bad - 1.0).abs() < 0.25, "one undelivered receipt, not {bad}");
        assert!(missing.abs() < 1e-9, "a settled message is never missing");
    }
}

/// Polls until `app`'s twilio-primary route to `country` has about `missing` missing receipts.
async fn wait_for_missing_receipts(app: &TestApp, country: &str, missing: f64) {
    loop {
        let (_, _, seen) = receipts(app, country).await;
        if (seen - missing).abs() < 0.25 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sends one SMS code through `app` and returns the provider's message id.
async fn send_code(app: &TestApp, event_id: &str, phone: &str) -> String {
    let (status, answer) = app.hook_json(&okta_request(event_id, phone, "482915", "SMS")).await;
    assert_eq!(status, 200);
    action(&answer)["transactionId"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_sender_counts_only_its_unreceipted_message_missing_and_every_replica_hears_it() {
    let fleet = spawn_fleet(2, || AppOptions {
        health: "receipt_grace_ms = 1000",
        ..AppOptions::default()
    })
    .await;
    let [sender, other] = &fleet.apps[..] else { unreachable!() };
    wait_for_peers(&fleet.apps).await;
    // The first message's receipt lands on the other replica: the sender learns from its
    // announcement that the message has its fate, and that twilio-primary reports on SMS.
    let first = send_code(sender, "evt-fleet-miss-1", "+14155550205").await;
    within(10, async {
        while !fleet.redis.command(&["KEYS", "switchboard:sent:msg:*"]).contains("twilio-primary") {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(post_twilio_status(other, &first, "delivered").await, 200);
    within(
        10,
        wait_for_metric(sender, |line| {
            line == r#"switchboard_state_peer_evidence_total{kind="receipt"} 1"#
        }),
    )
    .await;
    // The second never gets one: past the grace, the sender counts it missing (the upkeep runs
    // every 5 s), and so does the other replica's health.
    send_code(sender, "evt-fleet-miss-2", "+14155550206").await;
    within(20, async {
        wait_for_missing_receipts(sender, "US", 1.0).await;
        wait_for_missing_receipts(other, "US", 1.0).await;
    })
    .await;
    let metrics = sender.metrics().await;
    assert_eq!(
        counter(&metrics, r#"switchboard_receipts_missing_total{provider="twilio-primary"}"#),
        1.0,
        "only the message without a receipt anywhere: {metrics}"
    );
    assert_eq!(
        counter(
            &other.metrics().await,
            r#"switchboard_state_peer_evidence_total{kind="receipt_missing"}"#
        ),
        1.0
    );
}

#[tokio::test]
async fn a_receipt_that_beats_its_send_record_is_matched_after_the_retry() {
    let fleet = spawn_fleet(2, AppOptions::default).await;
    let [sender, other] = &fleet.apps[..] else { unreachable!() };
    wait_for_peers(&fleet.apps).await;
    // A message whose record is not written yet anywhere (the sending replica's background
    // write is slower than the provider's callback): the receipt is looked for and not found.
    let sid = "SM0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f";
    assert_eq!(post_twilio_status(other, sid, "undelivered").await, 200);
    within(
        10,
        wait_for_metric(other, |line| {
            line == r#"switchboard_state_calls_total{store="sent",result="ok"} 1"#
        }),
    )
    .await;
    // Then the record lands, as the sending replica writes it (see fleet/sent.rs).
    let digest = &sha256_hex(sid)[..32];
    let key = format!("switchboard:sent:msg:twilio-primary:{digest}");
    let record =
        r#"{"provider":"twilio-primary","country":"GB","channel":"sms","event_id":"evt-early"}"#;
    let written = fleet.redis.command(&["SET", &key, record, "PX", "60000"]);
    assert!(written.starts_with("+OK"), "{written}");
    within(10, async {
        wait_for_bad_receipts(other, "GB", 1.0).await;
        wait_for_bad_receipts(sender, "GB", 1.0).await;
    })
    .await;
    let metrics = other.metrics().await;
    assert_eq!(
        counter(&metrics, r#"switchboard_state_receipt_matches_total{found="shared_after_retry"}"#),
        1.0,
        "{metrics}"
    );
    assert!(fleet.logs().text().contains(r#""event_id":"evt-early""#));
}

/// SHA-256 in hex (the shared index names a message by a digest of its id).
fn sha256_hex(text: &str) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

#[tokio::test]
async fn an_okta_event_posted_to_the_other_replica_settles_the_send() {
    let okta_tables = || format!("[okta.events.auth]\nsecrets = [\"{EVENTS_SECRET}\"]\n");
    let fleet =
        spawn_fleet(2, || AppOptions { okta_tables: okta_tables(), ..AppOptions::default() }).await;
    let [sender, other] = &fleet.apps[..] else { unreachable!() };
    wait_for_peers(&fleet.apps).await;
    let (status, _) =
        sender.hook_json(&okta_request("evt-fleet-conv-1", "+14155550202", "482915", "SMS")).await;
    assert_eq!(status, 200);
    // Okta's event hook delivery lands on the other replica.
    let entered = OktaEvent::verified(USER, Channel::Sms);
    let delivery = OktaEvent::delivery("delivery-fleet-1", std::slice::from_ref(&entered));
    let post = |app: &TestApp| {
        app.client
            .post(format!("{}/okta/events", base(app)))
            .header("Authorization", EVENTS_SECRET)
            .json(&delivery)
            .send()
    };
    assert_eq!(post(other).await.unwrap().status(), 200);
    let entered_line = r#"switchboard_conversions_total{provider="twilio-primary",channel="sms",outcome="entered"} 1"#;
    within(10, wait_for_metric(sender, |line| line == entered_line)).await;
    // And the conversion reaches the health of the replica that took the event in.
    within(
        10,
        wait_for_metric(other, |line| {
            line == r#"switchboard_state_peer_evidence_total{kind="conversion"} 1"#
        }),
    )
    .await;
    // Okta's retry of the delivery lands on the sender: a duplicate fleet-wide.
    assert_eq!(post(sender).await.unwrap().status(), 200);
    within(
        10,
        wait_for_metric(sender, |line| {
            line == r#"switchboard_okta_events_total{source="event_hook",result="duplicate"} 1"#
        }),
    )
    .await;
    assert!(sender.metrics().await.contains(entered_line), "settled once");
}

#[tokio::test]
async fn plivos_answer_url_is_served_once_by_any_replica_and_redis_never_holds_the_code() {
    let plivo = PlivoEmulator::start(PlivoAccount::new("MAXXXXXXXXXXXXXXXXXX", "plivo-token"))
        .await
        .unwrap();
    // The callee never picks up for the emulator: this test fetches the answer URL itself.
    plivo.set_receipts(
        Receipts::none()
            .with_rule(CountryDelivery::to(&["*"]).delivered(0.0, &["busy"]).lost(100.0)),
    );
    let extra: &'static str = Box::leak(
        format!(
            r#"
[providers.plivo]
kind = "plivo"
auth_id = "MAXXXXXXXXXXXXXXXXXX"
auth_token = "plivo-token"
from = "+15005550006"
base_url = "{}"

[[routes]]
countries = ["*"]
channels = ["voice"]
providers = ["plivo"]
"#,
            plivo.base_url()
        )
        .into_boxed_str(),
    );
    let fleet = spawn_fleet(2, || AppOptions {
        route: "channels = [\"sms\"]",
        extra,
        ..AppOptions::default()
    })
    .await;
    let [caller, other] = &fleet.apps[..] else { unreachable!() };
    wait_for_peers(&fleet.apps).await;
    let (status, _) = caller
        .hook_json(&okta_request("evt-fleet-call-1", "+14155550203", "482915", "voice call"))
        .await;
    assert_eq!(status, 200);
    let answer_url =
        plivo.received().last().and_then(|call| call.answer_url.clone()).expect("a call");
    let token = answer_url.rsplit('/').next().unwrap().to_owned();
    // The sealed script reaches Redis in the background.
    within(10, async {
        while !fleet.redis.command(&["KEYS", "switchboard:plivo:answer:*"]).contains("answer") {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let stored = dump(&fleet.redis);

    // Plivo's fetch lands on the other replica.
    let fetch = |app: &TestApp| {
        let url = answer_url.replace(&base(caller), &base(app));
        let nonce = "12345678901234567890";
        let signature = plivo_signature("plivo-token", &url, nonce);
        app.client
            .post(url)
            .header("X-Plivo-Signature-V3", signature)
            .header("X-Plivo-Signature-V3-Nonce", nonce)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .send()
    };
    let response = fetch(other).await.unwrap();
    assert_eq!(response.status(), 200);
    let xml = response.text().await.unwrap();
    assert!(xml.contains("<Speak"), "{xml}");
    let speech = xml.split('>').nth(3).and_then(|text| text.split('<').next()).unwrap();
    assert!(speech.contains('4') && speech.contains('8'), "the code is spoken: {xml}");
    // Once: neither replica serves it again.
    assert_eq!(fetch(other).await.unwrap().status(), 404);
    assert_eq!(fetch(caller).await.unwrap().status(), 404);

    // What Redis held: neither the code, nor the spoken script, nor the URL's token.
    for secret in ["482915", speech, &token, &xml] {
        assert!(!stored.contains(secret), "redis held {secret:?}: {stored}");
    }
}

/// Plivo's V3 signature of a POST to `url` (no query) with an empty form, from Plivo's
/// documentation: base64(HMAC-SHA256(auth token, url + "." + nonce)).
fn plivo_signature(auth_token: &str, url: &str, nonce: &str) -> String {
    use base64::Engine as _;
    use hmac::Mac as _;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(auth_token.as_bytes()).unwrap();
    mac.update(format!("{url}.{nonce}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Every key in `redis` with its value (strings; the other types' replies say so).
fn dump(redis: &switchboard_sim::redis::RedisServer) -> String {
    let keys = redis.command(&["KEYS", "*"]);
    let mut text = keys.clone();
    for key in keys.lines().filter(|line| !line.starts_with('*') && !line.starts_with('$')) {
        text.push_str(&redis.command(&["GET", key]));
        text.push_str(&redis.command(&["HGETALL", key]));
    }
    text
}

#[tokio::test]
async fn with_redis_down_a_receipt_on_the_sending_replica_still_counts_there() {
    let mut fleet = spawn_fleet(2, AppOptions::default).await;
    wait_for_peers(&fleet.apps).await;
    fleet.redis.kill();
    let sender = &fleet.apps[0];
    sender.primary.set_receipts(Receipts::undelivered(30003));
    let (status, _) =
        sender.hook_json(&okta_request("evt-fleet-down-1", "+14155550204", "482915", "SMS")).await;
    assert_eq!(status, 200);
    within(20, wait_for_bad_receipts(sender, "US", 1.0)).await;
    let metrics = sender.metrics().await;
    assert_eq!(
        counter(
            &metrics,
            r#"switchboard_receipts_total{provider="twilio-primary",state="undelivered",matched="true"}"#
        ),
        1.0,
        "{metrics}"
    );
    assert!(
        metrics
            .lines()
            .any(|line| line.starts_with(r#"switchboard_state_fallbacks_total{store="sent""#)),
        "the fallback is counted: {metrics}"
    );
}

/// A loopback stand-in for one Okta org's System Log: every page is empty and links to the
/// next; it counts the requests.
async fn fake_system_log() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let requests = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&requests);
    let next = format!("<{base}/api/v1/logs?after=x&sortOrder=ASCENDING>; rel=\"next\"");
    let router = axum::Router::new().route(
        "/api/v1/logs",
        axum::routing::get(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            let next = next.clone();
            async move { ([("link", next)], axum::Json(serde_json::json!([]))) }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, router).await });
    (base, requests)
}

#[tokio::test]
async fn one_replica_at_a_time_polls_the_system_log_and_another_takes_over_when_it_stops() {
    use std::sync::atomic::Ordering;
    let (first_org, first_requests) = fake_system_log().await;
    let (second_org, second_requests) = fake_system_log().await;
    // Each replica is pointed at its own stand-in, so the test sees which one polls; the lease
    // is one for the fleet, whatever the URL.
    let orgs = std::sync::Mutex::new(vec![second_org, first_org]);
    let mut fleet = spawn_fleet(2, || {
        let org = orgs.lock().unwrap().pop().unwrap();
        let okta_tables = format!(
            "[okta.system_log]\norg_url = \"{org}/\"\napi_token = \"00aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789xyz\"\ninterval_s = 10\n"
        );
        AppOptions { okta_tables, ..AppOptions::default() }
    })
    .await;
    let requests = [first_requests, second_requests];
    let polled = |index: usize| requests[index].load(Ordering::SeqCst);
    let leader = within(10, async {
        loop {
            if let Some(index) = (0..2).find(|&index| polled(index) > 0) {
                return index;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let standby = 1 - leader;
    within(
        10,
        wait_for_metric(&fleet.apps[standby], |line| {
            line.starts_with(r#"switchboard_system_log_polls_total{result="standby"}"#)
        }),
    )
    .await;
    assert_eq!(polled(standby), 0, "the standby replica does not call Okta");

    // The polling replica stops (and gives the lease up): the other takes over.
    drop(fleet.apps.remove(leader));
    within(20, async {
        while polled(standby) == 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
}
