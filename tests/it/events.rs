//! Conversion from Okta over sockets: Okta's event hook (verification, authentication before
//! the body, malformed deliveries, deduplication, which send an entered code credits), the
//! weak resend signal without it, and System Log polling against a loopback server that plays
//! Okta's API (pages, Link headers, a 429).

use std::sync::{Arc, Mutex};

use switchboard_core::Channel;
use switchboard_server::okta::OktaEvent;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::helpers::{AppOptions, TestApp, okta_request, spawn_app, spawn_app_with, within};

const EVENTS_SECRET: &str = "events-secret-0123456789";
/// The user of `okta_request`.
const USER: &str = "00uyxxSknGtK8022w0g3";
const PHONE: &str = "+14155550177";

async fn events_app() -> TestApp {
    let okta_tables = format!("[okta.events.auth]\nsecrets = [\"{EVENTS_SECRET}\"]\n");
    spawn_app_with(AppOptions { okta_tables, ..AppOptions::default() }).await
}

fn events_url(app: &TestApp) -> String {
    app.hook_url.replace("/okta/telephony", "/okta/events")
}

async fn post_events(app: &TestApp, body: &serde_json::Value) -> reqwest::Response {
    let request = app.client.post(events_url(app)).header("Authorization", EVENTS_SECRET);
    request.json(body).send().await.unwrap()
}

/// Posts `delivery` (named `id`) and waits until its events have been processed.
async fn deliver(app: &TestApp, id: &str, events: &[OktaEvent]) {
    let response = post_events(app, &OktaEvent::delivery(id, events)).await;
    assert_eq!(response.status(), 200);
    within(10, app.logs.wait_for(&format!("\"batch\":\"{id}\""))).await;
}

fn assert_metrics(metrics: &str, lines: &[&str]) {
    for line in lines {
        assert!(metrics.contains(line), "{line}\n{metrics}");
    }
}

#[tokio::test]
async fn okta_verifies_the_hook_with_a_challenge_answered_only_when_authenticated() {
    let app = events_app().await;
    let challenge = "X3tgEq3Gn8yiSdXZHfXxdLnxVVPcTHqW4dZvUBXT";
    let verify = |secret: Option<&str>, challenge: Option<&str>| {
        let mut request = app.client.get(events_url(&app));
        if let Some(secret) = secret {
            request = request.header("Authorization", secret);
        }
        if let Some(challenge) = challenge {
            request = request.header("x-okta-verification-challenge", challenge);
        }
        request.send()
    };
    let response = verify(Some(EVENTS_SECRET), Some(challenge)).await.unwrap();
    assert_eq!(response.status(), 200);
    let answer: serde_json::Value = response.json().await.unwrap();
    assert_eq!(answer, serde_json::json!({ "verification": challenge }));

    let refused = verify(Some("not-the-secret-0123"), Some(challenge)).await.unwrap();
    assert_eq!(refused.status(), 401);
    let text = refused.text().await.unwrap();
    assert!(text.contains("authorization header is not the configured secret"), "{text}");
    assert!(!text.contains(challenge) && !text.contains("not-the-secret"), "{text}");

    let missing = verify(Some(EVENTS_SECRET), None).await.unwrap();
    assert_eq!(missing.status(), 400);
    assert!(
        missing.text().await.unwrap().contains("x-okta-verification-challenge header is missing")
    );
    let long = "x".repeat(257);
    let too_long = verify(Some(EVENTS_SECRET), Some(&long)).await.unwrap();
    assert_eq!(too_long.status(), 400);
    assert!(!too_long.text().await.unwrap().contains(&long));
}

#[tokio::test]
async fn a_delivery_without_the_secret_is_refused_before_its_body_is_read() {
    let app = events_app().await;
    let address = app.hook_url.trim_start_matches("http://").split('/').next().unwrap().to_owned();
    let telephony_secret = crate::helpers::SECRET;
    for auth in [
        "",
        "Authorization: wrong-secret-0123456789\r\n",
        &format!("Authorization: {telephony_secret}\r\n"),
    ] {
        let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
        // A head announcing 500 kB of body, and none of it: a handler that read the body first
        // would wait for it (and answer 408 after three seconds), not answer 401.
        let head = format!(
            "POST /okta/events HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n{auth}Content-Length: 500000\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut response = vec![0; 4096];
        let n = within(2, stream.read(&mut response)).await.unwrap();
        let response = String::from_utf8_lossy(&response[..n]).into_owned();
        assert!(response.starts_with("HTTP/1.1 401"), "{auth:?}: {response}");
        assert!(response.contains("authentication failed"), "{response}");
        assert!(!response.contains("0123456789"), "never echoes a value: {response}");
    }
    let metrics = app.metrics().await;
    assert_metrics(
        &metrics,
        &[r#"switchboard_okta_events_total{source="event_hook",result="unauthenticated"} 3"#],
    );
    assert!(!metrics.contains("switchboard_conversion"), "{metrics}");
}

#[tokio::test]
async fn malformed_deliveries_get_400_naming_the_field_and_change_nothing() {
    let app = events_app().await;
    let good = OktaEvent::delivery("d-1", &[OktaEvent::verified(USER, Channel::Sms)]);
    let bend = |change: &dyn Fn(&mut serde_json::Value)| {
        let mut body = good.clone();
        change(&mut body);
        body
    };
    let cases = [
        (bend(&|b| b["eventType"] = "com.okta.telephony.provider".into()), "eventType"),
        (bend(&|b| b["eventTime"] = USER.into()), "eventTime"),
        (bend(&|b| b["data"]["events"] = USER.into()), "data.events"),
        (bend(&|b| _ = b["data"].as_object_mut().unwrap().remove("events")), "data"),
    ];
    for (body, location) in cases {
        let response = post_events(&app, &body).await;
        assert_eq!(response.status(), 400, "{location}");
        let answer: serde_json::Value = response.json().await.unwrap();
        let cause = &answer["error"]["errorCauses"][0];
        assert_eq!(cause["location"], location, "{answer}");
        assert!(!answer.to_string().contains(USER), "never echoes a value: {answer}");
    }
    let not_json = app
        .client
        .post(events_url(&app))
        .header("Authorization", EVENTS_SECRET)
        .header("content-type", "application/json")
        .body("{\"eventType\": \"com.okta.event_hook\", ")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 400);
    let text_plain = app
        .client
        .post(events_url(&app))
        .header("Authorization", EVENTS_SECRET)
        .header("content-type", "text/plain")
        .body(good.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(text_plain.status(), 415);
    let metrics = app.metrics().await;
    assert_metrics(
        &metrics,
        &[r#"switchboard_okta_events_total{source="event_hook",result="malformed"} 6"#],
    );
    assert!(!metrics.contains("result=\"accepted\""), "{metrics}");
}

#[tokio::test]
async fn an_entered_code_credits_the_latest_send_once_however_often_okta_delivers_it() {
    let app = events_app().await;
    let (_, first) = app.hook_json(&okta_request("evt-conv-1", PHONE, "482915", "SMS")).await;
    assert_eq!(crate::helpers::action(&first)["provider"], "twilio-primary");
    // The user asks again: the backup goes first, as the primary had the last code.
    let (_, second) = app.hook_json(&okta_request("evt-conv-2", PHONE, "731904", "SMS")).await;
    assert_eq!(crate::helpers::action(&second)["provider"], "twilio-backup");

    let entered = OktaEvent::verified(USER, Channel::Sms);
    deliver(&app, "delivery-1", std::slice::from_ref(&entered)).await;
    // Okta delivers at least once: the same event again, beside one for a factor we ignore.
    let push = OktaEvent::verified(USER, Channel::Sms).to_json();
    let mut push = push;
    push["debugContext"]["debugData"]["factor"] = "OKTA_VERIFY_PUSH".into();
    let mut delivery = OktaEvent::delivery("delivery-2", &[entered]);
    delivery["data"]["events"].as_array_mut().unwrap().push(push);
    assert_eq!(post_events(&app, &delivery).await.status(), 200);
    within(10, app.logs.wait_for("\"batch\":\"delivery-2\"")).await;

    let metrics = app.metrics().await;
    assert_metrics(
        &metrics,
        &[
            r#"switchboard_conversions_total{provider="twilio-backup",channel="sms",outcome="entered"} 1"#,
            r#"switchboard_conversions_total{provider="twilio-primary",channel="sms",outcome="superseded"} 1"#,
            r#"switchboard_okta_events_total{source="event_hook",result="accepted"} 1"#,
            r#"switchboard_okta_events_total{source="event_hook",result="duplicate"} 1"#,
            r#"switchboard_okta_events_total{source="event_hook",result="ignored"} 1"#,
            r#"switchboard_conversion_matches_total{channel="sms",result="matched"} 1"#,
        ],
    );
    assert!(!metrics.contains(r#"outcome="resent""#), "{metrics}");
    let logs = app.logs.text();
    for secret in [USER, "4155550177", "482915", "731904", EVENTS_SECRET] {
        assert!(!logs.contains(secret), "{secret} in the logs");
    }
}

#[tokio::test]
async fn without_events_a_resend_inside_the_codes_life_is_a_weak_sign_against_its_provider() {
    let app = spawn_app().await;
    app.hook_json(&okta_request("evt-weak-1", PHONE, "482915", "SMS")).await;
    assert!(!app.metrics().await.contains("switchboard_conversions_total"));
    app.hook_json(&okta_request("evt-weak-2", PHONE, "731904", "SMS")).await;
    assert_metrics(
        &app.metrics().await,
        &[
            r#"switchboard_conversions_total{provider="twilio-primary",channel="sms",outcome="resent"} 1"#,
        ],
    );
    // The event hook is not mounted without [okta.events].
    let response =
        app.client.post(events_url(&app)).json(&serde_json::json!({})).send().await.unwrap();
    assert_eq!(response.status(), 404);
}

/// A loopback server playing Okta's System Log API: page one (held until the test releases it),
/// then a 429, then page two, then an empty page, each linking to the next.
#[derive(Default)]
struct FakeOkta {
    base: Mutex<String>,
    release: tokio::sync::Notify,
    requests: Mutex<Vec<Seen>>,
    count: Arc<tokio::sync::watch::Sender<usize>>,
    reset: Mutex<i64>,
}

#[derive(Clone, Debug)]
struct Seen {
    query: String,
    authorization: String,
    at_unix_ms: i128,
}

const TOKEN: &str = "00aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789xyz";

async fn system_log(
    axum::extract::State(okta): axum::extract::State<Arc<FakeOkta>>,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let now = time::OffsetDateTime::now_utc();
    let seen = Seen {
        query: uri.query().unwrap_or_default().to_owned(),
        authorization: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned(),
        at_unix_ms: now.unix_timestamp_nanos() / 1_000_000,
    };
    let n = {
        let mut requests = okta.requests.lock().unwrap();
        requests.push(seen);
        requests.len()
    };
    let base = okta.base.lock().unwrap().clone();
    let link = |after: &str| {
        format!("<{base}/api/v1/logs?after={after}&sortOrder=ASCENDING>; rel=\"next\"")
    };
    let page = |events: Vec<serde_json::Value>, after: &str| {
        let self_link =
            format!("<{base}/api/v1/logs?{}>; rel=\"self\"", uri.query().unwrap_or_default());
        ([("link", self_link), ("link", link(after))], axum::Json(serde_json::Value::Array(events)))
            .into_response()
    };
    let response = match n {
        1 => {
            okta.release.notified().await;
            page(vec![OktaEvent::verified(USER, Channel::Sms).uuid("log-1").to_json()], "page2")
        }
        2 => {
            let reset = now.unix_timestamp() + 1;
            *okta.reset.lock().unwrap() = reset;
            (axum::http::StatusCode::TOO_MANY_REQUESTS, [("x-rate-limit-reset", reset.to_string())])
                .into_response()
        }
        3 => page(
            vec![
                OktaEvent::verified(USER, Channel::Sms).uuid("log-1").to_json(),
                OktaEvent::activated("00uSomeoneElse", Channel::Voice).uuid("log-2").to_json(),
            ],
            "page3",
        ),
        _ => page(Vec::new(), "page3"),
    };
    okta.count.send_replace(n);
    response
}

#[tokio::test]
async fn system_log_polling_follows_next_links_honours_429_and_feeds_the_same_dedupe() {
    let okta = Arc::new(FakeOkta::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    *okta.base.lock().unwrap() = base.clone();
    let router = axum::Router::new()
        .route("/api/v1/logs", axum::routing::get(system_log))
        .with_state(Arc::clone(&okta));
    tokio::spawn(async move { axum::serve(listener, router).await });

    let okta_tables = format!(
        "[okta.system_log]\norg_url = \"{base}/\"\napi_token = \"{TOKEN}\"\ninterval_s = 10\n"
    );
    let app = spawn_app_with(AppOptions { okta_tables, ..AppOptions::default() }).await;
    let mut count = okta.count.subscribe();
    // The first page waits until a code has been sent for the user it reports.
    let (_, answer) = app.hook_json(&okta_request("evt-log-1", PHONE, "482915", "SMS")).await;
    assert_eq!(crate::helpers::action(&answer)["provider"], "twilio-primary");
    okta.release.notify_one();
    within(15, count.wait_for(|n| *n >= 4)).await.unwrap();

    let requests = okta.requests.lock().unwrap().clone();
    let first: Vec<(String, String)> = url_pairs(&requests[0].query);
    assert_eq!(first[0].0, "since");
    assert!(
        time::OffsetDateTime::parse(&first[0].1, &time::format_description::well_known::Rfc3339)
            .is_ok()
    );
    assert_eq!(
        &first[1..],
        [
            ("sortOrder".to_owned(), "ASCENDING".to_owned()),
            (
                "filter".to_owned(),
                "eventType eq \"user.authentication.auth_via_mfa\" or eventType eq \"user.mfa.factor.activate\"".to_owned()
            ),
        ]
    );
    assert_eq!(requests[1].query, "after=page2&sortOrder=ASCENDING", "the next link, as given");
    assert_eq!(requests[2].query, requests[1].query, "the same page again after the 429");
    let reset_ms = i128::from(*okta.reset.lock().unwrap()) * 1_000;
    assert!(requests[2].at_unix_ms >= reset_ms, "asked again before X-Rate-Limit-Reset");
    assert_eq!(requests[3].query, "after=page3&sortOrder=ASCENDING");
    for request in &requests {
        assert_eq!(request.authorization, format!("SSWS {TOKEN}"));
    }

    let metrics = app.metrics().await;
    assert_metrics(
        &metrics,
        &[
            r#"switchboard_conversions_total{provider="twilio-primary",channel="sms",outcome="entered"} 1"#,
            r#"switchboard_okta_events_total{source="system_log",result="accepted"} 2"#,
            r#"switchboard_okta_events_total{source="system_log",result="duplicate"} 1"#,
            r#"switchboard_conversion_matches_total{channel="voice",result="unmatched"} 1"#,
            r#"switchboard_system_log_polls_total{result="rate_limited"} 1"#,
            r#"switchboard_system_log_polls_total{result="ok"} 3"#,
        ],
    );
    assert!(!app.logs.text().contains(TOKEN), "the token is never logged");
}

fn url_pairs(query: &str) -> Vec<(String, String)> {
    serde_urlencoded::from_str(query).unwrap()
}

#[tokio::test]
async fn a_reload_rotates_the_event_hook_secret_and_its_path_waits_for_a_restart() {
    let app = events_app().await;
    let rotated = "rotated-events-secret-0123456789";
    let text = std::fs::read_to_string(&app.config_path).unwrap();
    let text = text.replace(EVENTS_SECRET, rotated).replace(
        "[okta.events.auth]",
        "[okta.events]\npath = \"/okta/events-v2\"\n[okta.events.auth]",
    );
    std::fs::write(&app.config_path, text).unwrap();
    let reload = app.admin(reqwest::Method::POST, "/admin/reload").send().await.unwrap();
    assert_eq!(reload.status(), 200);
    within(10, app.logs.wait_for("take effect on restart")).await;

    let body = OktaEvent::delivery("d-rotated", &[OktaEvent::verified(USER, Channel::Sms)]);
    assert_eq!(post_events(&app, &body).await.status(), 401, "the old secret is gone");
    let post =
        |url: String| app.client.post(url).header("Authorization", rotated).json(&body).send();
    assert_eq!(post(events_url(&app)).await.unwrap().status(), 200, "the new one works now");
    let moved = events_url(&app).replace("/okta/events", "/okta/events-v2");
    assert_eq!(post(moved).await.unwrap().status(), 404, "the path moves on restart");
}
