//! The Sinch emulator over real loopback sockets, driven by a plain HTTP client.

use crate::support;

use std::time::Duration;

use serde_json::{Value, json};
use support::Receiver;
use switchboard_sim::sinch::{RunningEmulator, SendKind, SinchAccount, SinchEmulator};
use switchboard_sim::{Fault, Faults, Receipts};

const KEY: &str = "669E367E-6BBA-48AB-AF15-266871C28135";
const SECRET: &str = "BeIukql3pTKJ8RGL5zo0DA==";

async fn start() -> RunningEmulator {
    SinchEmulator::start(SinchAccount::new("plan1", "token", KEY, SECRET)).await.unwrap()
}

async fn post_batch(sinch: &RunningEmulator, token: &str, body: &Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/xms/v1/plan1/batches", sinch.base_url()))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

fn batch(to: &str) -> Value {
    json!({"to": [to], "from": "+15005550006", "body": "Code 123456"})
}

fn callout(to: &str) -> Value {
    json!({"method": "ttsCallout", "ttsCallout": {"cli": "+15005550006", "destination": {"type": "number", "endpoint": to}, "text": "1, 2, 3", "locale": "en-US"}})
}

async fn post_callout(sinch: &RunningEmulator, secret: &str, body: &Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/calling/v1/callouts", sinch.base_url()))
        .basic_auth(KEY, Some(secret))
        .json(body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn creates_a_batch_shaped_like_sinchs() {
    let sinch = start().await;
    let (status, body) = post_batch(&sinch, "token", &batch("+46701234567")).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["id"].as_str().unwrap().len(), 26);
    assert_eq!((body["type"].as_str(), body["canceled"].as_bool()), (Some("mt_text"), Some(false)));
    assert_eq!(body["to"], json!(["+46701234567"]));
    assert!(body["created_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(sinch.received()[0].kind, SendKind::Batch);
}

#[tokio::test]
async fn refuses_batches_as_sinch_does() {
    let sinch = start().await;
    assert_eq!(post_batch(&sinch, "wrong", &batch("+46701234567")).await.0, 401);
    for (body, status, code) in [
        (json!({"from": "A", "body": "x"}), 400, "syntax_constraint_violation"),
        (batch("46701234567"), 400, "syntax_invalid_parameter_format"),
        (
            json!({"to": ["+46701234567"], "from": "A", "body": "x".repeat(1601)}),
            400,
            "syntax_constraint_violation",
        ),
        (
            json!({"to": ["+46701234567"], "from": "A", "body": "x", "type": "mt_fax"}),
            400,
            "syntax_invalid_parameter_format",
        ),
        (
            json!({"to": ["+46701234567"], "from": "A", "body": "x", "delivery_report": "full"}),
            403,
            "missing_callback_url",
        ),
        (batch("+15005550003"), 403, "illegal_number_type"),
    ] {
        let (got_status, answer) = post_batch(&sinch, "token", &body).await;
        assert_eq!((got_status, answer["code"].as_str()), (status, Some(code)), "{body}");
    }
    let response = reqwest::Client::new()
        .post(format!("{}/xms/v1/plan1/batches", sinch.base_url()))
        .bearer_auth("token")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn callouts_need_the_application_credentials_and_a_valid_body() {
    let sinch = start().await;
    let (status, body) = post_callout(&sinch, SECRET, &callout("+46701234567")).await;
    assert_eq!(status, 200);
    assert_eq!(body["callId"].as_str().unwrap().len(), 36);
    let (status, body) = post_callout(&sinch, "wrong", &callout("+46701234567")).await;
    assert_eq!((status, body["errorCode"].as_str()), (401, Some("40100")));
    let mut long = callout("+46701234567");
    long["ttsCallout"]["text"] = json!("a".repeat(601));
    for bad in [callout("4670"), long, json!({"method": "faxCallout"})] {
        let (status, body) = post_callout(&sinch, SECRET, &bad).await;
        assert_eq!((status, body["errorCode"].as_str()), (400, Some("40003")), "{bad}");
    }
    let (status, body) = post_callout(&sinch, SECRET, &callout("+15005550005")).await;
    assert_eq!((status, body["errorCode"].as_str()), (402, Some("40200")));
    assert_eq!(sinch.received()[0].auth_scheme.as_deref(), Some("basic"));
}

#[tokio::test]
async fn injects_faults_in_sinchs_shapes() {
    let sinch = start().await;
    sinch.set_faults(Faults::always(Fault::RateLimit { retry_after_s: 2 }));
    let response = reqwest::Client::new()
        .post(format!("{}/xms/v1/plan1/batches", sinch.base_url()))
        .bearer_auth("token")
        .json(&batch("+46701234567"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        (response.status().as_u16(), response.headers()["retry-after"].to_str().unwrap()),
        (429, "2")
    );
    sinch.set_faults(Faults::always(Fault::Status { status: 500, code: Some(50000) }));
    let (status, body) = post_callout(&sinch, SECRET, &callout("+46701234567")).await;
    assert_eq!(
        (status, body["errorCode"].as_str(), body["status"].as_str()),
        (500, Some("50000"), Some("500 Server Error"))
    );
    sinch.set_faults(Faults::always(Fault::Reset));
    let error = reqwest::Client::new()
        .post(format!("{}/calling/v1/callouts", sinch.base_url()))
        .json(&callout("+46701234567"))
        .send()
        .await
        .unwrap_err();
    assert!(!error.is_timeout() && !error.is_connect());
    sinch.set_faults(Faults::always(Fault::Hang).with_latency(Duration::ZERO, Duration::ZERO));
    support::assert_hang_times_out(|client| {
        client.post(format!("{}/xms/v1/plan1/batches", sinch.base_url())).json(&batch("+4670"))
    })
    .await;
}

#[tokio::test]
async fn posts_reports_and_signed_dice_events() {
    let sinch = start().await;
    let mut receiver = Receiver::start().await;

    sinch.set_receipts(Receipts::undelivered("402"));
    let mut body = batch("+46701234567");
    body["delivery_report"] = json!("per_recipient");
    body["callback_url"] = json!(format!("{}/dlr", receiver.base));
    body["client_reference"] = json!("evt-1");
    let created = post_batch(&sinch, "token", &body).await.1;
    let arrival = receiver.next().await;
    let report = arrival.json();
    assert_eq!(arrival.uri, "/dlr");
    assert_eq!(report["type"], "recipient_delivery_report_sms");
    assert_eq!(
        (report["batch_id"].clone(), report["code"].as_u64(), report["status"].as_str()),
        (created["id"].clone(), Some(402), Some("Failed"))
    );
    assert_eq!(report["client_reference"], "evt-1");

    sinch.set_voice_callback_url(Some(format!("{}/voice", receiver.base)));
    sinch.set_receipts(Receipts::delivered());
    let mut with_dice = callout("+46701234567");
    with_dice["ttsCallout"]["enableDice"] = json!(true);
    let answered = post_callout(&sinch, SECRET, &with_dice).await.1;
    let arrival = receiver.next().await;
    let event = arrival.json();
    assert_eq!(arrival.uri, "/voice");
    assert_eq!(
        (event["event"].as_str(), event["result"].as_str()),
        (Some("dice"), Some("ANSWERED"))
    );
    assert_eq!(event["callid"], answered["callId"]);
    assert!(arrival.header("authorization").starts_with(&format!("Application {KEY}:")));
    assert!(arrival.headers.contains_key("x-timestamp"));

    post_callout(&sinch, SECRET, &callout("+46701234567")).await;
    assert!(receiver.try_next().is_none(), "no DiCE without enableDice");
}
