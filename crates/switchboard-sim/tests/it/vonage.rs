//! The Vonage emulator over real loopback sockets, driven by a plain HTTP client.

use crate::support;

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use support::Receiver;
use switchboard_sim::vonage::{
    RunningEmulator, SendKind, TEST_PRIVATE_KEY_PEM, TEST_PUBLIC_KEY_PEM, VonageAccount,
    VonageEmulator,
};
use switchboard_sim::{Fault, Faults, Receipts};

const APP: &str = "aaaaaaaa-bbbb-4ccc-8ddd-0123456789ab";

async fn start() -> RunningEmulator {
    let account = VonageAccount::new("abcd1234", "secret")
        .with_signature_secret("sig-secret")
        .with_application(APP, TEST_PUBLIC_KEY_PEM);
    VonageEmulator::start(account).await.unwrap()
}

async fn post_sms(vonage: &RunningEmulator, form: &[(&str, &str)]) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/sms/json", vonage.base_url()))
        .form(form)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

fn sms(to: &str) -> Vec<(&str, &str)> {
    vec![
        ("api_key", "abcd1234"),
        ("api_secret", "secret"),
        ("from", "Acme"),
        ("to", to),
        ("text", "Code 123456"),
    ]
}

fn jwt(application_id: &str) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let claims =
        json!({"application_id": application_id, "iat": now, "exp": now + 60, "jti": "7e1d"});
    let key = EncodingKey::from_rsa_pem(TEST_PRIVATE_KEY_PEM.as_bytes()).unwrap();
    jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &key).unwrap()
}

async fn post_call(vonage: &RunningEmulator, token: &str, body: &Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/v1/calls", vonage.base_url()))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

fn call_body() -> Value {
    json!({
        "to": [{"type": "phone", "number": "447700900123"}],
        "from": {"type": "phone", "number": "447700900001"},
        "ncco": [{"action": "talk", "text": "1, 2, 3", "language": "en-GB"}],
    })
}

#[tokio::test]
async fn sends_an_sms_answered_like_vonage() {
    let vonage = start().await;
    let (status, body) = post_sms(&vonage, &sms("447700900123")).await;
    assert_eq!(status, 200);
    assert_eq!(body["message-count"], "1");
    let message = &body["messages"][0];
    assert_eq!(
        (message["status"].as_str(), message["to"].as_str()),
        (Some("0"), Some("447700900123"))
    );
    assert!(message["message-id"].as_str().unwrap().starts_with("0A"));
    let long = "a".repeat(161);
    let mut form = sms("447700900123");
    form[4] = ("text", &long);
    assert_eq!(post_sms(&vonage, &form).await.1["message-count"], "2", "two parts");
    let received = vonage.received();
    assert_eq!((received.len(), received[0].kind), (2, SendKind::Sms));
    assert!(received[0].is_authenticated);
}

#[tokio::test]
async fn answers_errors_inside_http_200() {
    let vonage = start().await;
    let status_of = |body: Value| body["messages"][0]["status"].as_str().unwrap().to_owned();
    // Alike on purpose: each case is a whole form that differs from the others in one field.
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (
            vec![
                ("api_key", "abcd1234"),
                ("api_secret", "wrong"),
                ("from", "A"),
                ("to", "447700900123"),
                ("text", "x"),
            ],
            "4",
        ),
        (vec![("api_secret", "secret"), ("from", "A"), ("to", "447700900123"), ("text", "x")], "2"),
        (
            vec![
                ("api_key", "abcd1234"),
                ("api_secret", "secret"),
                ("sig", "0123456789abcdef"),
                ("from", "A"),
                ("to", "447700900123"),
                ("text", "x"),
            ],
            "32",
        ),
        (
            vec![
                ("api_key", "abcd1234"),
                ("sig", "0123456789abcdef"),
                ("from", "A"),
                ("to", "447700900123"),
                ("text", "x"),
            ],
            "14",
        ),
        (
            vec![
                ("api_key", "abcd1234"),
                ("api_secret", "secret"),
                ("to", "447700900123"),
                ("text", "x"),
            ],
            "2",
        ),
        (
            vec![
                ("api_key", "abcd1234"),
                ("api_secret", "secret"),
                ("from", "A"),
                ("to", "+447700900123"),
                ("text", "x"),
            ],
            "3",
        ),
        (
            vec![
                ("api_key", "abcd1234"),
                ("api_secret", "secret"),
                ("from", "A"),
                ("to", "447700900123"),
                ("text", "x"),
                ("ttl", "5"),
            ],
            "3",
        ),
        (
            vec![
                ("api_key", "abcd1234"),
                ("api_secret", "secret"),
                ("from", "A"),
                ("to", "447700900123"),
                ("text", "x"),
                ("callback", "ftp://x"),
            ],
            "23",
        ),
        (
            vec![
                ("api_key", "abcd1234"),
                ("api_secret", "secret"),
                ("from", "A"),
                ("to", "447700900123"),
                ("text", "x"),
                ("type", "morse"),
            ],
            "3",
        ),
    ];
    for (form, expected) in cases {
        let (status, body) = post_sms(&vonage, &form).await;
        assert_eq!((status, status_of(body)), (200, expected.to_owned()), "{form:?}");
    }
    for (to, expected) in
        [("15005550001", "6"), ("15005550004", "7"), ("15005550005", "9"), ("15005550007", "1")]
    {
        assert_eq!(status_of(post_sms(&vonage, &sms(to)).await.1), expected, "{to}");
    }
}

#[tokio::test]
async fn calls_need_a_jwt_from_the_application_and_a_valid_ncco() {
    let vonage = start().await;
    let (status, body) = post_call(&vonage, &jwt(APP), &call_body()).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        (body["status"].as_str(), body["direction"].as_str()),
        (Some("started"), Some("outbound"))
    );
    assert!(body["conversation_uuid"].as_str().unwrap().starts_with("CON-"));

    let (status, body) =
        post_call(&vonage, &jwt("bbbbbbbb-bbbb-4ccc-8ddd-0123456789ab"), &call_body()).await;
    assert_eq!(status, 401);
    assert!(body["type"].as_str().unwrap().ends_with("#unauthorized"));
    assert_eq!(post_call(&vonage, "not-a-jwt", &call_body()).await.0, 401);

    let mut bad = call_body();
    bad["ncco"][0]["language"] = json!("xx-XX");
    let (status, body) = post_call(&vonage, &jwt(APP), &bad).await;
    assert_eq!(
        (status, body["invalid_parameters"][0]["name"].as_str()),
        (400, Some("ncco.language"))
    );
    let mut both = call_body();
    both["answer_url"] = json!(["https://x/answer"]);
    assert_eq!(post_call(&vonage, &jwt(APP), &both).await.0, 400);
    let mut long = call_body();
    long["ncco"][0]["text"] = json!("a".repeat(1501));
    assert_eq!(post_call(&vonage, &jwt(APP), &long).await.0, 400);
    let received = vonage.received();
    assert_eq!(received.len(), 6);
    assert!(received[0].is_authenticated && !received[1].is_authenticated);
}

#[tokio::test]
async fn injects_faults_in_vonages_shapes() {
    let vonage = start().await;
    vonage.set_faults(Faults::always(Fault::Status { status: 200, code: Some(8) }));
    let (status, body) = post_sms(&vonage, &sms("447700900123")).await;
    assert_eq!((status, body["messages"][0]["status"].as_str()), (200, Some("8")));
    vonage.set_faults(Faults::always(Fault::RateLimit { retry_after_s: 3 }));
    let response = reqwest::Client::new()
        .post(format!("{}/sms/json", vonage.base_url()))
        .form(&sms("447700900123"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        (response.status().as_u16(), response.headers()["retry-after"].to_str().unwrap()),
        (429, "3")
    );
    let (status, body) = post_call(&vonage, &jwt(APP), &call_body()).await;
    assert_eq!(status, 429);
    assert!(body["type"].as_str().unwrap().ends_with("#throttled"));
    vonage.set_faults(Faults::always(Fault::Hang));
    support::assert_hang_times_out(|client| {
        client.post(format!("{}/sms/json", vonage.base_url())).form(&sms("447700900123"))
    })
    .await;
}

#[tokio::test]
async fn posts_signed_receipts_to_the_callback() {
    let vonage = start().await;
    let mut receiver = Receiver::start().await;

    vonage.set_receipts(Receipts::undelivered("6"));
    let callback = format!("{}/dlr", receiver.base);
    let mut form = sms("447700900123");
    form.push(("callback", &callback));
    form.push(("client-ref", "evt-1"));
    let answer = post_sms(&vonage, &form).await.1;
    let receipt = receiver.next().await.json();
    assert_eq!(receipt["messageId"], answer["messages"][0]["message-id"]);
    assert_eq!(
        (receipt["status"].as_str(), receipt["err-code"].as_str()),
        (Some("failed"), Some("6"))
    );
    assert_eq!(
        (receipt["msisdn"].as_str(), receipt["client-ref"].as_str()),
        (Some("447700900123"), Some("evt-1"))
    );
    assert!(receipt["sig"].as_str().unwrap().len() == 32 && receipt["nonce"].is_string());

    vonage.set_receipts(Receipts::delivered());
    let mut body = call_body();
    body["event_url"] = json!([format!("{}/event", receiver.base)]);
    let created = post_call(&vonage, &jwt(APP), &body).await.1;
    let arrival = receiver.next().await;
    let event = arrival.json();
    assert_eq!(
        (event["uuid"].clone(), event["status"].as_str()),
        (created["uuid"].clone(), Some("answered"))
    );
    assert!(arrival.header("authorization").starts_with("Bearer "));

    vonage.set_receipts(Receipts::none());
    post_sms(&vonage, &form).await;
    assert!(receiver.try_next().is_none(), "no receipt is planned");
}
