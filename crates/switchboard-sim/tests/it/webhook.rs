//! The generic gateway emulator: records every request and answers what it is told to.

use serde_json::{Value, json};
use switchboard_sim::webhook::{Answer, WebhookEmulator};
use switchboard_sim::{Fault, Faults};

#[tokio::test]
async fn records_requests_and_answers_as_configured() {
    let gateway = WebhookEmulator::start().await.unwrap();
    let client = reqwest::Client::new();
    let url = format!("{}/any/path?x=1", gateway.base_url());
    let answer = client.put(&url).header("x-key", "v").json(&json!({"a": 1})).send().await.unwrap();
    assert_eq!(answer.status(), 202);
    assert_eq!(answer.json::<Value>().await.unwrap(), json!({"id": "wh-1", "status": "accepted"}));
    let received = gateway.received();
    assert_eq!((received[0].method.as_str(), received[0].path.as_str()), ("PUT", "/any/path?x=1"));
    assert_eq!(received[0].header("x-key"), Some("v"));
    assert_eq!(received[0].json(), json!({"a": 1}));

    let set = client
        .put(format!("{}/__sim/answer", gateway.base_url()))
        .json(&json!({"status": 200, "body": {"ok": true}}))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 200);
    let answer = client.post(&url).body("not json").send().await.unwrap();
    assert_eq!(answer.json::<Value>().await.unwrap(), json!({"ok": true}));
    assert!(gateway.received()[1].json().is_null());

    gateway.set_answer(Answer::default());
    gateway.set_faults(Faults::always(Fault::RateLimit { retry_after_s: 3 }));
    let answer = client.post(&url).send().await.unwrap();
    assert_eq!(
        (answer.status().as_u16(), answer.headers()["retry-after"].to_str().unwrap()),
        (429, "3")
    );
    let listed: Value = client
        .get(format!("{}/__sim/requests", gateway.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 3, "the admin routes are not recorded");
}
