//! The Infobip emulator driven by a plain HTTP client.

use serde_json::{Value, json};
use switchboard_sim::infobip::{InfobipAccount, InfobipEmulator, RunningEmulator};
use switchboard_sim::{CallbackKind, Receipts};

const KEY: &str = "emulator-api-key";

async fn start() -> RunningEmulator {
    InfobipEmulator::start(InfobipAccount::new(KEY)).await.unwrap()
}

async fn post(infobip: &RunningEmulator, path: &str, body: &Value) -> (u16, Value) {
    crate::support::exchange_json(
        reqwest::Client::new()
            .post(format!("{}{path}", infobip.base_url()))
            .header("Authorization", format!("App {KEY}"))
            .json(body),
    )
    .await
}

#[tokio::test]
async fn answers_a_send_with_a_pending_status_per_destination() {
    let infobip = start().await;
    let body = json!({"messages": [{"destinations": [{"to": "41793026727"}, {"to": "15005550004"}], "content": {"text": "x"}}]});
    let (status, answer) = post(&infobip, "/sms/3/messages", &body).await;
    assert_eq!(status, 200);
    assert_eq!(answer["messages"][0]["status"]["name"], "PENDING_ACCEPTED");
    assert_eq!(answer["messages"][1]["status"]["name"], "REJECTED_DND");
    assert_eq!(answer["messages"][1]["status"]["groupName"], "REJECTED");
}

#[tokio::test]
async fn refuses_malformed_sends_in_each_apis_error_style() {
    let infobip = start().await;
    let (status, answer) = post(
        &infobip,
        "/sms/3/messages",
        &json!({"messages": [{"destinations": [{"to": "+41 79"}], "content": {"text": "x"}}]}),
    )
    .await;
    assert_eq!((status, answer["errorCode"].as_str()), (400, Some("E400")));
    assert_eq!(answer["violations"][0]["property"], "messages[0].destinations[0].to");
    let (status, answer) = post(
        &infobip,
        "/tts/3/advanced",
        &json!({"messages": [{"destinations": [{"to": "41793026727"}]}]}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(answer["requestError"]["serviceException"]["messageId"], "BAD_REQUEST");
}

#[tokio::test]
async fn reports_go_to_the_url_the_send_named_and_failures_are_recorded() {
    let infobip = start().await;
    infobip.set_receipts(Receipts::delivered());
    // Nothing listens on port 9 of loopback: the report fails, and the failure is recorded.
    let body = json!({"messages": [{"destinations": [{"to": "41793026727"}], "content": {"text": "x"},
        "webhooks": {"delivery": {"url": "http://127.0.0.1:9/reports"}}}]});
    let (status, answer) = post(&infobip, "/sms/3/messages", &body).await;
    assert_eq!(status, 200);
    let sent = infobip.wait_for_callbacks(1).await;
    assert_eq!(sent[0].kind, CallbackKind::Receipt);
    assert_eq!(sent[0].message_id, answer["messages"][0]["messageId"].as_str().unwrap());
    assert_eq!((sent[0].status, sent[0].error.is_some()), (None, true));
    let report: Value = serde_json::from_str(&sent[0].request_body).unwrap();
    assert_eq!(report["results"][0]["status"]["groupName"], "DELIVERED");
}
