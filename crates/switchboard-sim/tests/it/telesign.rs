//! The Telesign emulator driven by a plain HTTP client: its authentication checks, validation
//! and the runtime receipt policy.

use base64::Engine;
use hmac::Mac;
use serde_json::Value;
use switchboard_sim::telesign::{RunningEmulator, TelesignAccount, TelesignEmulator};

const CUSTOMER: &str = "FFFFFFFF-EEEE-DDDD-1234-AB1234567890";
/// base64("signing-key-for-tests").
const KEY: &str = "c2lnbmluZy1rZXktZm9yLXRlc3Rz";

async fn start() -> RunningEmulator {
    TelesignEmulator::start(TelesignAccount::new(CUSTOMER, KEY)).await.unwrap()
}

/// Signs and posts `body` to `/v1/messaging` as the SDK does, with this `date` and `nonce`.
async fn post(telesign: &RunningEmulator, body: &str, date: &str, nonce: &str) -> (u16, Value) {
    let content_type = "application/x-www-form-urlencoded";
    let string_to_sign = format!(
        "POST\n{content_type}\n{date}\nx-ts-auth-method:HMAC-SHA256\nx-ts-nonce:{nonce}\n{body}\n/v1/messaging"
    );
    let key = base64::engine::general_purpose::STANDARD.decode(KEY).unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(string_to_sign.as_bytes());
    let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    crate::support::exchange_json(
        reqwest::Client::new()
            .post(format!("{}/v1/messaging", telesign.base_url()))
            .header("Authorization", format!("TSA {CUSTOMER}:{signature}"))
            .header("Content-Type", content_type)
            .header("Date", date)
            .header("x-ts-auth-method", "HMAC-SHA256")
            .header("x-ts-nonce", nonce)
            .body(body.to_owned()),
    )
    .await
}

fn now() -> String {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    time::OffsetDateTime::now_utc().format(&format).unwrap()
}

const SMS: &str = "phone_number=447700900123&message=Your+code+is+1234&message_type=OTP";

fn error_code(body: &Value) -> Option<i64> {
    body["errors"][0]["code"].as_i64()
}

#[tokio::test]
async fn accepts_a_signed_send_with_telesigns_body() {
    let telesign = start().await;
    let (status, body) = post(&telesign, SMS, &now(), "2b2e1f5a-0c1d-4c1e-9a4b-000000000001").await;
    assert_eq!(status, 200);
    assert_eq!(body["status"]["code"], 290);
    assert_eq!(body["reference_id"].as_str().unwrap().len(), 32);
    assert!(telesign.received()[0].is_authenticated);
}

#[tokio::test]
async fn refuses_reused_nonces_stale_dates_and_tampered_bodies() {
    let telesign = start().await;
    let nonce = "2b2e1f5a-0c1d-4c1e-9a4b-000000000002";
    assert_eq!(post(&telesign, SMS, &now(), nonce).await.0, 200);
    let (status, body) = post(&telesign, SMS, &now(), nonce).await;
    assert_eq!((status, error_code(&body)), (401, Some(-30012)));
    assert_eq!(body["status"]["code"], 501);

    let stale = "Wed, 14 Dec 2016 18:20:12 GMT";
    let (status, body) = post(&telesign, SMS, stale, "2b2e1f5a-0c1d-4c1e-9a4b-000000000003").await;
    assert_eq!((status, error_code(&body)), (401, Some(-30010)));
    let (_, body) = post(&telesign, SMS, "yesterday", "2b2e1f5a-0c1d-4c1e-9a4b-000000000004").await;
    assert_eq!(error_code(&body), Some(-30009));
    let (_, body) = post(&telesign, SMS, &now(), "short").await;
    assert_eq!(error_code(&body), Some(-30011));

    // A signature over one body does not authenticate another.
    let response = reqwest::Client::new()
        .post(format!("{}/v1/messaging", telesign.base_url()))
        .header("Authorization", format!("TSA {CUSTOMER}:AAAA"))
        .header("Date", now())
        .header("x-ts-auth-method", "HMAC-SHA256")
        .header("x-ts-nonce", "2b2e1f5a-0c1d-4c1e-9a4b-000000000005")
        .body(SMS)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(error_code(&body), Some(-30006));
    let anonymous = reqwest::Client::new().post(format!("{}/v1/messaging", telesign.base_url()));
    let body: Value = anonymous.body(SMS).send().await.unwrap().json().await.unwrap();
    assert_eq!(error_code(&body), Some(-30004));
}

#[tokio::test]
async fn enforces_required_parameters() {
    let telesign = start().await;
    for (n, (body, code)) in [
        ("message=x&message_type=OTP", 12000),
        ("phone_number=447700900123&message_type=OTP", 12009),
        ("phone_number=447700900123&message=x", 12017),
        ("phone_number=%2B447700900123&message=x&message_type=OTP", 11000),
        ("phone_number=447700900123&message=x&message_type=SPAM", 11017),
    ]
    .into_iter()
    .enumerate()
    {
        let (status, answer) =
            post(&telesign, body, &now(), &format!("nonce-for-validation-{n:04}")).await;
        assert_eq!((status, answer["status"]["code"].as_i64()), (400, Some(code)), "{body}");
    }
}

#[tokio::test]
async fn receipts_are_set_over_the_admin_api() {
    let telesign = start().await;
    let url = format!("{}/__sim/receipts", telesign.base_url());
    let client = reqwest::Client::new();
    let put = client
        .put(&url)
        .json(
            &serde_json::json!({"outcome": {"kind": "undelivered", "code": "211"}, "delay_ms": 0}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    assert_eq!(telesign.emulator().receipts(), switchboard_sim::Receipts::undelivered(211));
    let bad = client
        .put(&url)
        .json(&serde_json::json!({"outcome": {"kind": "lost"}}))
        .send()
        .await
        .unwrap();
    assert!(bad.status().is_client_error());
}
