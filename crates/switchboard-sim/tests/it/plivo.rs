//! The Plivo emulator driven by a plain HTTP client.

use serde_json::{Value, json};
use switchboard_sim::plivo::{PlivoAccount, PlivoEmulator, RunningEmulator};
use switchboard_sim::{CallbackKind, Receipts};

const AUTH_ID: &str = "MAXXXXXXXXXXXXXXXXXX";
const TOKEN: &str = "emulator-auth-token";

async fn start() -> RunningEmulator {
    PlivoEmulator::start(PlivoAccount::new(AUTH_ID, TOKEN)).await.unwrap()
}

async fn post(
    plivo: &RunningEmulator,
    auth_id: &str,
    resource: &str,
    body: &Value,
) -> (u16, Value) {
    crate::support::exchange_json(
        reqwest::Client::new()
            .post(format!("{}/v1/Account/{auth_id}/{resource}/", plivo.base_url()))
            .basic_auth(AUTH_ID, Some(TOKEN))
            .json(body),
    )
    .await
}

#[tokio::test]
async fn queues_messages_and_fires_calls_like_plivo() {
    let plivo = start().await;
    let sms = json!({"src": "+15005550006", "dst": "+14155550100", "text": "x", "type": "sms"});
    let (status, body) = post(&plivo, AUTH_ID, "Message", &sms).await;
    assert_eq!((status, body["message"].as_str()), (202, Some("message(s) queued")));
    assert_eq!(body["message_uuid"][0].as_str().unwrap().len(), 36);
    let call = json!({"from": "+15005550006", "to": "+14155550100", "answer_url": "http://127.0.0.1:9/answer"});
    let (status, body) = post(&plivo, AUTH_ID, "Call", &call).await;
    assert_eq!((status, body["message"].as_str()), (201, Some("call fired")));
    // The emulator then fetches the answer URL, as Plivo does once the callee answers.
    let fetched = plivo.wait_for_callbacks(1).await;
    assert_eq!(fetched[0].kind, CallbackKind::AnswerFetch);
    assert_eq!(fetched[0].message_id, body["request_uuid"].as_str().unwrap());
    assert!(fetched[0].request_body.contains("CallUUID="));
}

#[tokio::test]
async fn refuses_bad_requests_and_foreign_accounts() {
    let plivo = start().await;
    let (status, body) =
        post(&plivo, AUTH_ID, "Message", &json!({"dst": "+14155550100", "text": "x"})).await;
    assert_eq!(status, 400);
    assert!(body["error"].is_string() && body["api_id"].is_string());
    let (status, _) =
        post(&plivo, AUTH_ID, "Call", &json!({"from": "+15005550006", "to": "+14155550100"})).await;
    assert_eq!(status, 400, "a call needs an answer_url");
    let (status, _) = post(&plivo, "MAYYYYYYYYYYYYYYYYYY", "Message", &json!({})).await;
    assert_eq!(status, 404);
    let anonymous = reqwest::Client::new()
        .post(format!("{}/v1/Account/{AUTH_ID}/Message/", plivo.base_url()))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
}

#[tokio::test]
async fn an_unanswered_call_is_not_fetched_and_reports_no_answer() {
    let plivo = start().await;
    plivo.set_receipts(Receipts::undelivered(3010));
    let call = json!({"from": "+15005550006", "to": "+14155550100",
        "answer_url": "http://127.0.0.1:9/answer", "hangup_url": "http://127.0.0.1:9/hangup"});
    post(&plivo, AUTH_ID, "Call", &call).await;
    let sent = plivo.wait_for_callbacks(1).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].kind, CallbackKind::Receipt);
    assert!(sent[0].request_body.contains("CallStatus=no-answer"));
    assert!(plivo.answer_fetches().is_empty());
}
