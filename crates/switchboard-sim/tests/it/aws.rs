//! The AWS SMS and Voice v2 emulator over loopback, driven by a plain client that signs with
//! `aws-sigv4`, to show what it accepts and what it refuses.

use std::time::{Duration, SystemTime};

use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use serde_json::{Value, json};
use switchboard_sim::aws::{AwsAccount, AwsEmulator, RunningEmulator};
use switchboard_sim::{Fault, Faults};

const KEY_ID: &str = "AKIDEMULATOR00001";
const SECRET: &str = "emulator-secret";
const REGION: &str = "us-west-2";

async fn start() -> RunningEmulator {
    AwsEmulator::start(AwsAccount::new(KEY_ID, SECRET, REGION)).await.unwrap()
}

/// Signs `body` for `operation` with `secret` at `at`; returns every header to send.
fn signed_headers(
    aws: &RunningEmulator,
    operation: &str,
    body: &[u8],
    secret: &str,
    at: SystemTime,
) -> Vec<(String, String)> {
    let host = aws.addr().to_string();
    let target = format!("PinpointSMSVoiceV2.{operation}");
    let mut headers = vec![
        ("content-type".to_owned(), "application/x-amz-json-1.0".to_owned()),
        ("host".to_owned(), host),
        ("x-amz-target".to_owned(), target),
    ];
    let identity =
        aws_credential_types::Credentials::new(KEY_ID, secret, None, None, "test").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(REGION)
        .name("sms-voice")
        .time(at)
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let signable = SignableRequest::new(
        "POST",
        format!("{}/", aws.base_url()),
        headers.iter().map(|(name, value)| (name.as_str(), value.as_str())),
        SignableBody::Bytes(body),
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    for (name, value) in instructions.headers() {
        headers.push((name.to_owned(), value.to_owned()));
    }
    headers
}

async fn post(aws: &RunningEmulator, headers: &[(String, String)], body: &[u8]) -> (u16, Value) {
    let mut request = reqwest::Client::new().post(format!("{}/", aws.base_url()));
    for (name, value) in headers.iter().filter(|(name, _)| name != "host") {
        request = request.header(name, value);
    }
    let response = request.body(body.to_vec()).send().await.unwrap();
    let status = response.status().as_u16();
    (status, serde_json::from_slice(&response.bytes().await.unwrap()).unwrap_or(Value::Null))
}

async fn call(aws: &RunningEmulator, operation: &str, body: &Value) -> (u16, Value) {
    let body = body.to_string().into_bytes();
    let headers = signed_headers(aws, operation, &body, SECRET, SystemTime::now());
    post(aws, &headers, &body).await
}

fn sms() -> Value {
    json!({"DestinationPhoneNumber": "+14155550100", "MessageBody": "Your code is 123456"})
}

#[tokio::test]
async fn a_signed_send_gets_a_message_id() {
    let aws = start().await;
    let (status, body) = call(&aws, "SendTextMessage", &sms()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["MessageId"].as_str().unwrap().len(), 36);
    let received = aws.received();
    assert!(received[0].is_signature_valid);
    assert_eq!(received[0].operation.as_deref(), Some("SendTextMessage"));
}

#[tokio::test]
async fn signatures_are_recomputed_not_trusted() {
    let aws = start().await;
    let body = sms().to_string().into_bytes();
    let now = SystemTime::now();

    let headers = signed_headers(&aws, "SendTextMessage", &body, SECRET, now);
    let mut tampered = body.clone();
    tampered.extend_from_slice(b" ");
    let (status, answer) = post(&aws, &headers, &tampered).await;
    assert_eq!(
        (status, answer["__type"].as_str()),
        (403, Some("com.amazon.coral.service#InvalidSignatureException"))
    );

    let wrong_secret = signed_headers(&aws, "SendTextMessage", &body, "not-the-secret", now);
    assert_eq!(post(&aws, &wrong_secret, &body).await.0, 403);

    let mut other_target = headers.clone();
    for (name, value) in &mut other_target {
        if name == "x-amz-target" {
            *value = "PinpointSMSVoiceV2.SendVoiceMessage".into();
        }
    }
    assert_eq!(post(&aws, &other_target, &body).await.0, 403, "the target is signed");

    let stale =
        signed_headers(&aws, "SendTextMessage", &body, SECRET, now - Duration::from_secs(20 * 60));
    let (status, answer) = post(&aws, &stale, &body).await;
    assert_eq!(status, 403);
    assert!(answer["message"].as_str().unwrap().contains("expired"), "{answer}");

    let unsigned: Vec<_> =
        headers.iter().filter(|(name, _)| name != "authorization").cloned().collect();
    let (status, answer) = post(&aws, &unsigned, &body).await;
    assert_eq!(
        (status, answer["__type"].as_str()),
        (400, Some("com.amazon.coral.service#MissingAuthenticationTokenException"))
    );
    assert!(aws.received().iter().all(|call| !call.is_signature_valid));
    assert_eq!(post(&aws, &headers, &body).await.0, 200, "the untampered request still verifies");
}

#[tokio::test]
async fn enforces_the_models_members() {
    let aws = start().await;
    let (status, answer) =
        call(&aws, "SendVoiceMessage", &json!({"DestinationPhoneNumber": "+14155550100"})).await;
    assert_eq!(status, 400);
    assert_eq!(answer["__type"], "com.amazonaws.pinpointsmsvoicev2#ValidationException");
    assert_eq!(answer["Reason"], "MISSING_PARAMETER");
    assert_eq!(answer["Fields"][0]["Name"], "OriginationIdentity");

    let mut unknown = sms();
    unknown["Unicode"] = json!(true);
    let (_, answer) = call(&aws, "SendTextMessage", &unknown).await;
    assert_eq!(answer["Fields"][0]["Name"], "Unicode");

    let (status, answer) = call(&aws, "SendFax", &sms()).await;
    assert_eq!(
        (status, answer["__type"].as_str()),
        (400, Some("com.amazon.coral.service#UnknownOperationException"))
    );

    let (status, answer) = call(&aws, "DescribeAccountAttributes", &json!({})).await;
    assert_eq!(status, 200);
    assert!(answer["AccountAttributes"].is_array());
}

#[tokio::test]
async fn magic_numbers_and_faults_answer_in_aws_shapes() {
    let aws = start().await;
    let mut opted_out = sms();
    opted_out["DestinationPhoneNumber"] = json!("+15550100002");
    let (status, answer) = call(&aws, "SendTextMessage", &opted_out).await;
    assert_eq!(status, 400);
    assert_eq!(answer["__type"], "com.amazonaws.pinpointsmsvoicev2#ConflictException");
    assert_eq!(answer["Reason"], "DESTINATION_PHONE_NUMBER_OPTED_OUT");

    aws.set_faults(Faults::always(Fault::Status { status: 500, code: Some(1) }));
    let (status, answer) = call(&aws, "SendTextMessage", &sms()).await;
    assert_eq!(
        (status, answer["__type"].as_str()),
        (500, Some("com.amazonaws.pinpointsmsvoicev2#InternalServerException"))
    );
    aws.set_faults(Faults::always(Fault::RateLimit { retry_after_s: 1 }));
    let (_, answer) = call(&aws, "SendTextMessage", &sms()).await;
    assert_eq!(answer["__type"], "com.amazonaws.pinpointsmsvoicev2#ThrottlingException");
    assert_eq!(aws.received().len(), 3);
}
