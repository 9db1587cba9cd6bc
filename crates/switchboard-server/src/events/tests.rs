//! Conversion on tokio's paused clock: sends made through the hook, settled by Okta's events
//! posted to the event hook (through its router, no sockets), by the sweep when their time runs
//! out, or (without events) by a resend. Health is read back per (provider, country, channel).

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use switchboard_core::health::HealthKey;
use switchboard_core::{Channel, Country, ProviderId};
use tokio::time::Instant;
use tower::ServiceExt as _;

use crate::Server;
use crate::okta::{OktaEvent, OktaRequest};
use crate::testing::{Config, Mode, post, server_with, status};

const OK: Mode = Mode::Accept { latency: Duration::from_millis(100) };
const LIFE: Duration = Duration::from_secs(300);
const EVENTS_SECRET: &str = "events-secret-0123456789";
const EVENTS: &str = "[okta.events.auth]\nsecrets = [\"events-secret-0123456789\"]\n";
const USER: &str = "00uyxxSknGtK8022w0g3";
const PHONE: &str = "+14155550100";

fn events_server(primary: Mode, backup: Mode) -> Server {
    server_with(Config { extra: EVENTS, ..Config::default() }, primary, backup).0
}

/// Okta's request for `event_id`: code 482915 by SMS to [`PHONE`] for [`USER`].
fn hook_body(event_id: &str) -> String {
    OktaRequest::sms(PHONE, "482915")
        .event_id(event_id)
        .user_id(USER)
        .without_template()
        .expires_in(LIFE)
        .to_string()
}

/// Posts to the event hook with `secret`; returns the status and the body.
async fn post_events(router: &Router, body: String, secret: Option<&str>) -> (u16, String) {
    let mut request = Request::post("/okta/events").header("content-type", "application/json");
    if let Some(secret) = secret {
        request = request.header("authorization", secret);
    }
    let request = request.body(Body::from(body)).expect("a valid request");
    let response = router.clone().oneshot(request).await.expect("the router is infallible");
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.expect("a body");
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

fn delivery(id: &str, events: &[OktaEvent]) -> String {
    OktaEvent::delivery(id, events).to_string()
}

/// Waits until every delivery and every event batch has been processed.
async fn drain(server: &Server) {
    server.shared.tracker.close();
    server.shared.tracker.wait().await;
}

fn key(provider: &str) -> HealthKey {
    HealthKey::new(
        ProviderId::parse(provider).unwrap(),
        Country::parse("US").unwrap(),
        Channel::Sms,
    )
}

/// (entered, not entered) on `provider`'s US SMS key, rounded to tenths (decay is slow).
fn conversions(server: &Server, provider: &str) -> (f64, f64) {
    let (good, bad) = server.shared.health.conversions(&key(provider), Instant::now().into_std());
    ((good * 10.0).round() / 10.0, (bad * 10.0).round() / 10.0)
}

fn metrics(server: &Server) -> String {
    server.shared.metrics.render()
}

#[tokio::test(start_paused = true)]
async fn an_entered_code_credits_the_latest_send_and_supersedes_the_earlier_one() {
    let server = events_server(OK, OK);
    let router = server.hook_router();
    let (_, answer) = post(&router, hook_body("first"), None).await;
    assert_eq!(status(&answer), "SUCCESSFUL");
    tokio::time::sleep(Duration::from_secs(30)).await;
    // The user asks again: the primary took the last code, so the backup goes first.
    post(&router, hook_body("second"), None).await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (code, _) = post_events(
        &router,
        delivery("delivery-1", &[OktaEvent::verified(USER, Channel::Sms)]),
        Some(EVENTS_SECRET),
    )
    .await;
    assert_eq!(code, 200);
    drain(&server).await;
    assert_eq!(conversions(&server, "backup"), (1.0, 0.0), "the latest send was entered");
    assert_eq!(conversions(&server, "primary"), (0.0, 1.0), "the earlier one superseded");
    let text = metrics(&server);
    for line in [
        r#"switchboard_conversions_total{provider="backup",channel="sms",outcome="entered"} 1"#,
        r#"switchboard_conversions_total{provider="primary",channel="sms",outcome="superseded"} 1"#,
        r#"switchboard_okta_events_total{source="event_hook",result="accepted"} 1"#,
        r#"switchboard_conversion_matches_total{channel="sms",result="matched"} 1"#,
    ] {
        assert!(text.contains(line), "{line}\n{text}");
    }
    assert!(!text.contains(r#"outcome="resent""#), "events settle resends: {text}");
    // Both sends settled: the sweep has nothing left for them.
    tokio::time::sleep(Duration::from_secs(3_600)).await;
    crate::events::settle_expired(&server.shared, Instant::now());
    assert!(!metrics(&server).contains(r#"outcome="not_entered""#));
}

#[tokio::test(start_paused = true)]
async fn a_code_never_entered_settles_once_its_window_and_okta_lateness_pass() {
    let server = events_server(OK, OK);
    let router = server.hook_router();
    let sent = Instant::now();
    post(&router, hook_body("lonely"), None).await;
    drain(&server).await;
    // Settles at the code's expiry, plus the grace for clocks, plus time for late events.
    let settles = sent + LIFE + super::process::GRACE + super::process::LATENESS;
    tokio::time::sleep_until(settles - Duration::from_secs(2)).await;
    crate::events::settle_expired(&server.shared, Instant::now());
    assert_eq!(conversions(&server, "primary"), (0.0, 0.0), "not yet");
    tokio::time::sleep_until(settles + Duration::from_secs(1)).await;
    crate::events::settle_expired(&server.shared, Instant::now());
    assert_eq!(conversions(&server, "primary"), (0.0, 1.0));
    crate::events::settle_expired(&server.shared, Instant::now() + Duration::from_secs(3_600));
    assert_eq!(conversions(&server, "primary"), (0.0, 1.0), "once");
    assert!(metrics(&server).contains(
        r#"switchboard_conversions_total{provider="primary",channel="sms",outcome="not_entered"} 1"#
    ));
    // An event that comes after the send settled matches nothing and changes nothing.
    let late = OktaEvent::verified(USER, Channel::Sms)
        .published(time::OffsetDateTime::now_utc() - Duration::from_secs(500));
    post_events(&router, delivery("late", &[late]), Some(EVENTS_SECRET)).await;
    drain(&server).await;
    assert_eq!(conversions(&server, "primary"), (0.0, 1.0));
    assert!(
        metrics(&server).contains(
            r#"switchboard_conversion_matches_total{channel="sms",result="unmatched"} 1"#
        )
    );
}

#[tokio::test(start_paused = true)]
async fn a_wrong_code_is_neutral_but_keeps_the_send_from_counting_as_never_entered() {
    let server = events_server(OK, OK);
    let router = server.hook_router();
    post(&router, hook_body("typo"), None).await;
    tokio::time::sleep(Duration::from_secs(20)).await;
    let wrong = OktaEvent::wrong_code(USER, Channel::Sms);
    post_events(&router, delivery("d-wrong", &[wrong]), Some(EVENTS_SECRET)).await;
    drain(&server).await;
    tokio::time::sleep(Duration::from_secs(3_600)).await;
    crate::events::settle_expired(&server.shared, Instant::now());
    assert_eq!(conversions(&server, "primary"), (0.0, 0.0), "nothing against the provider");
    assert!(metrics(&server).contains(
        r#"switchboard_conversions_total{provider="primary",channel="sms",outcome="wrong_code"} 1"#
    ));
}

#[tokio::test(start_paused = true)]
async fn without_events_a_resend_counts_half_against_the_last_provider_once() {
    let (server, _, _) = server_with(Config::default(), OK, OK);
    let router = server.hook_router();
    post(&router, hook_body("one"), None).await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    post(&router, hook_body("two"), None).await;
    drain(&server).await;
    assert_eq!(conversions(&server, "primary"), (0.0, 0.5), "half a non-delivery");
    assert_eq!(conversions(&server, "backup"), (0.0, 0.0));
    tokio::time::sleep(Duration::from_secs(30)).await;
    post(&router, hook_body("three"), None).await;
    drain(&server).await;
    assert_eq!(conversions(&server, "backup"), (0.0, 0.5), "the second send, superseded");
    assert_eq!(conversions(&server, "primary"), (0.0, 0.5), "the first is not counted again");
    // A request after the last code expired is not a resend.
    tokio::time::sleep(LIFE + Duration::from_secs(1)).await;
    post(&router, hook_body("four"), None).await;
    drain(&server).await;
    let metrics = metrics(&server);
    assert_eq!(metrics.matches(r#"outcome="resent"} 1"#).count(), 2, "{metrics}");
    assert_eq!(server.shared.conversions.len(), (0, 0), "nothing kept without events");
}

#[tokio::test(start_paused = true)]
async fn forged_replayed_and_malformed_deliveries_change_nothing() {
    let server = events_server(OK, OK);
    let router = server.hook_router();
    post(&router, hook_body("target"), None).await;
    drain(&server).await;
    let event = OktaEvent::verified(USER, Channel::Sms).uuid("uuid-once");
    for secret in [None, Some("wrong-secret-0123456789"), Some(crate::testing::SECRET)] {
        let (code, body) =
            post_events(&router, delivery("forged", std::slice::from_ref(&event)), secret).await;
        assert_eq!(code, 401, "{secret:?}");
        assert!(body.contains("authentication failed"), "{body}");
        assert!(!body.contains("0123456789"), "never echoes a value: {body}");
    }
    for body in ["{", "[]", r#"{"eventType":"com.okta.event_hook"}"#] {
        let (code, answer) = post_events(&router, body.to_owned(), Some(EVENTS_SECRET)).await;
        assert_eq!(code, 400, "{body}: {answer}");
    }
    drain(&server).await;
    assert_eq!(server.shared.conversions.len(), (1, 0), "no event id remembered, no send settled");
    assert_eq!(conversions(&server, "primary"), (0.0, 0.0));

    // Delivered three times (Okta's retries, a replay): counted once.
    for _ in 0..3 {
        let body = delivery("real", std::slice::from_ref(&event));
        assert_eq!(post_events(&router, body, Some(EVENTS_SECRET)).await.0, 200);
    }
    drain(&server).await;
    assert_eq!(conversions(&server, "primary"), (1.0, 0.0));
    let metrics = metrics(&server);
    for line in [
        r#"switchboard_okta_events_total{source="event_hook",result="unauthenticated"} 3"#,
        r#"switchboard_okta_events_total{source="event_hook",result="malformed"} 3"#,
        r#"switchboard_okta_events_total{source="event_hook",result="accepted"} 1"#,
        r#"switchboard_okta_events_total{source="event_hook",result="duplicate"} 2"#,
    ] {
        assert!(metrics.contains(line), "{line}\n{metrics}");
    }
}

#[tokio::test(start_paused = true)]
async fn the_answer_does_not_wait_for_the_events_to_be_processed() {
    let server = events_server(OK, OK);
    let router = server.hook_router();
    post(&router, hook_body("quick"), None).await;
    drain(&server).await;
    let body = delivery("d", &[OktaEvent::verified(USER, Channel::Sms)]);
    let (code, _) = post_events(&router, body, Some(EVENTS_SECRET)).await;
    assert_eq!(code, 200);
    // Answered with the processing task not yet run (this runtime has one thread, and the
    // test has not yielded to it since).
    assert_eq!(server.shared.conversions.len().1, 0);
    drain(&server).await;
    assert_eq!(server.shared.conversions.len().1, 1);
}

#[tokio::test(start_paused = true)]
async fn codes_okta_sent_itself_are_not_recorded() {
    // Truthful reporting with every provider refusing: Okta was told FAILED and sends the code
    // through its own providers. Its event must not credit or blame ours.
    let config = Config { okta: "report = \"truthful\"", extra: EVENTS, ..Config::default() };
    let (server, _, _) = server_with(config, Mode::Refuse, Mode::Refuse);
    let router = server.hook_router();
    let (_, answer) = post(&router, hook_body("okta-sends"), None).await;
    assert_eq!(status(&answer), "FAILED");
    drain(&server).await;
    assert_eq!(server.shared.conversions.len().0, 0);
    let event = OktaEvent::verified(USER, Channel::Sms);
    post_events(&router, delivery("d", &[event]), Some(EVENTS_SECRET)).await;
    drain(&server).await;
    assert!(
        metrics(&server).contains(
            r#"switchboard_conversion_matches_total{channel="sms",result="unmatched"} 1"#
        )
    );
    assert!(!metrics(&server).contains("switchboard_conversions_total"));
}

#[tokio::test(start_paused = true)]
async fn no_phone_number_code_or_user_id_is_kept_for_correlation() {
    let server = events_server(OK, OK);
    let router = server.hook_router();
    post(&router, hook_body("private"), None).await;
    drain(&server).await;
    assert_eq!(server.shared.conversions.len().0, 1, "the send is held");
    let printed = format!("{:?}", server.shared.conversions);
    assert!(printed.contains("private"), "the event id is: {printed}");
    for secret in ["4155550100", "482915", USER] {
        assert!(!printed.contains(secret), "{secret} kept: {printed}");
    }
}

#[tokio::test(start_paused = true)]
async fn without_events_a_code_never_asked_for_again_counts_half_for_its_provider() {
    // Resends are judged as a share of a provider's codes, not by their number: a busy provider
    // has more resends than a quiet one, and no worse a route.
    let (server, _, _) = server_with(Config::default(), OK, OK);
    let router = server.hook_router();
    post(&router, hook_body("one"), None).await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    post(&router, hook_body("two"), None).await;
    drain(&server).await;
    crate::upkeep(&server.shared, Instant::now());
    assert_eq!(conversions(&server, "primary"), (0.0, 0.5), "superseded; nothing has expired");
    // The second code (on the backup, as a resend avoids the primary) lives out its life.
    tokio::time::sleep(LIFE).await;
    crate::upkeep(&server.shared, Instant::now());
    assert_eq!(conversions(&server, "backup"), (0.5, 0.0), "never asked for again");
    assert_eq!(conversions(&server, "primary"), (0.0, 0.5), "the superseded one is not kept");
    crate::upkeep(&server.shared, Instant::now());
    assert_eq!(conversions(&server, "backup"), (0.5, 0.0), "each code once");
    assert!(metrics(&server).contains(r#"outcome="not_resent"} 1"#));
}

#[tokio::test(start_paused = true)]
async fn with_events_codes_not_asked_for_again_are_left_to_okta() {
    let server = events_server(OK, OK);
    let router = server.hook_router();
    post(&router, hook_body("one"), None).await;
    drain(&server).await;
    tokio::time::sleep(LIFE + Duration::from_secs(1)).await;
    crate::upkeep(&server.shared, Instant::now());
    assert!(!metrics(&server).contains("not_resent"), "Okta's events settle it instead");
}
