//! The wire format both ways: Okta's sample parses, refusals never quote the input, the
//! builder writes what the hook reads, and the answer reads back.

use std::time::Duration;

use time::UtcOffset;

use super::build::okta_time;
use super::*;

/// Okta's documented sample request, verbatim.
pub(crate) const SAMPLE: &str = r#"{
  "eventId": "uS5871kJThSsU8qlA1LTcg",
  "eventTime": "2022-01-28T21:43:40.000Z",
  "eventType": "com.okta.telephony.provider",
  "eventTypeVersion": "1.0",
  "contentType": "application/json",
  "cloudEventVersion": "0.1",
  "source": "https://{yourOktaDomain}/api/v1/inlineHooks/calz6lVQA77AwFeEe0g3",
  "requestType": "com.okta.user.telephony.pre-enrollment",
  "data": {
    "context": { "request": { "id": "reqRgSk8IBBRhuo0YdlEDTmUw", "method": "POST",
      "url": { "value": "/api/internal/v1/inlineHooks/com.okta.telephony.provider/generatePreview" },
      "ipAddress": "127.0.0.1" } },
    "userProfile": { "firstName": "test", "lastName": "user",
      "login": "test.user@okta.com", "userId": "00uyxxSknGtK8022w0g3" },
    "messageProfile": {
      "msgTemplate": "(HOOK)Your code is 11111",
      "phoneNumber": "9876543210",
      "otpExpires": "2022-01-28T21:48:34.321Z",
      "deliveryChannel": "SMS",
      "otpCode": "11111",
      "locale": "EN-US"
    }
  }
}"#;

fn parse(json: &str) -> Result<Delivery, FieldError> {
    serde_json::from_str::<HookRequest>(json).unwrap().into_delivery()
}

#[test]
fn parses_oktas_sample() {
    let delivery = parse(SAMPLE).unwrap();
    assert_eq!(delivery.event_id, "uS5871kJThSsU8qlA1LTcg");
    assert_eq!(delivery.purpose, Purpose::Enrollment);
    assert_eq!(delivery.channel, Channel::Sms);
    assert_eq!(delivery.phone_number, "9876543210");
    assert_eq!(delivery.passcode.expose(), "11111");
    assert_eq!(delivery.text.unwrap().expose(), "(HOOK)Your code is 11111");
    assert_eq!(delivery.locale.unwrap().tag(), "en-US");
    assert_eq!(delivery.otp_expires.unwrap().unix_timestamp(), 1_643_406_514);
    assert_eq!(delivery.user_id.as_deref(), Some("00uyxxSknGtK8022w0g3"));
    assert_eq!(delivery.ip_address, Some("127.0.0.1".parse().unwrap()));
}

#[test]
fn accepts_every_spelling_of_voice() {
    for spelling in ["CALL", "call", "voice call", "Voice Call", "VOICE"] {
        let json = SAMPLE
            .replace(r#""deliveryChannel": "SMS""#, &format!(r#""deliveryChannel": "{spelling}""#));
        assert_eq!(parse(&json).unwrap().channel, Channel::Voice, "{spelling}");
    }
    let json = SAMPLE.replace(r#""deliveryChannel": "SMS""#, r#""deliveryChannel": "fax""#);
    assert_eq!(parse(&json).unwrap_err().location, "data.messageProfile.deliveryChannel");
}

#[test]
fn response_has_oktas_exact_shape() {
    let response = HookResponse::new(
        ActionStatus::Successful,
        "twilio-us".into(),
        "SM49a8ece2822d44e4adaccd7ed268f954".into(),
        "attempts=1".into(),
    );
    let json = serde_json::to_value(&response).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"commands": [{"type": "com.okta.telephony.action", "value": [{
            "status": "SUCCESSFUL", "provider": "twilio-us",
            "transactionId": "SM49a8ece2822d44e4adaccd7ed268f954",
            "transactionMetadata": "attempts=1"}]}]})
    );
    for status in [ActionStatus::Successful, ActionStatus::Failed] {
        assert_eq!(serde_json::to_value(status).unwrap(), status.as_str());
    }
}

#[test]
fn secrets_do_not_print_in_debug() {
    let request: HookRequest = serde_json::from_str(SAMPLE).unwrap();
    let printed = format!("{:?}", request.data.message_profile.otp_code);
    assert!(!printed.contains("11111"));
    let delivery = request.into_delivery().unwrap();
    assert!(!format!("{delivery:?}").contains("11111"));
}

/// A body with `otp` as the passcode, `phone` as the phone number and `profile` replacing
/// the message profile when given.
fn body_with(otp: &str, phone: &str, profile: Option<&str>) -> String {
    let profile = profile.map_or_else(
        || format!(r#"{{"phoneNumber": {phone}, "deliveryChannel": "SMS", "otpCode": {otp}}}"#),
        str::to_owned,
    );
    format!(r#"{{"eventId": "e1", "data": {{"messageProfile": {profile}}}}}"#)
}

#[test]
fn refusals_name_the_field_and_never_quote_the_input() {
    let cases = [
        (body_with("483920", "\"+14155550100\"", None), "data.messageProfile.otpCode"),
        (body_with("\"483920\"", "14155550100", None), "data.messageProfile.phoneNumber"),
        (body_with("[483920]", "\"+14155550100\"", None), "data.messageProfile.otpCode"),
        (body_with("", "", Some("\"+14155550100 483920\"")), "data.messageProfile"),
    ];
    for (body, location) in cases {
        let error = HookRequest::parse(body.as_bytes()).err().expect(&body);
        assert_eq!(error.location.as_deref(), Some(location), "{body}");
        for secret in ["483920", "4155550100"] {
            assert!(!error.summary.contains(secret), "{} quotes the input", error.summary);
        }
        assert!(error.summary.contains("expected"), "{}", error.summary);
    }
}

#[test]
fn a_missing_field_is_named() {
    let body = r#"{"eventId": "e1", "data": {"messageProfile": {"phoneNumber": "+14155550100", "deliveryChannel": "SMS"}}}"#;
    let error = HookRequest::parse(body.as_bytes()).err().unwrap();
    assert_eq!(error.summary, "invalid request body: missing field `otpCode`");
    assert_eq!(error.location.as_deref(), Some("data.messageProfile"));
}

#[test]
fn text_after_the_object_is_refused_and_whitespace_is_not() {
    assert!(HookRequest::parse(format!("{SAMPLE} \n").as_bytes()).is_ok());
    for trailing in [" {}", "{}", " x", ",", "]"] {
        let body = format!("{SAMPLE}{trailing}");
        let error = HookRequest::parse(body.as_bytes()).err().expect(trailing);
        assert!(error.summary.contains("after the JSON object"), "{}", error.summary);
    }
}

#[test]
fn broken_json_says_where_without_the_text() {
    let error = HookRequest::parse(br#"{"eventId": "483920"#).err().unwrap();
    assert!(!error.summary.contains("483920"), "{}", error.summary);
    let error = HookRequest::parse(br#"{"eventId": "e1" 483920}"#).err().unwrap();
    assert!(error.summary.contains("line 1"), "{}", error.summary);
    assert!(!error.summary.contains("483920"), "{}", error.summary);
}

#[test]
fn the_builder_writes_oktas_shape() {
    let at = OffsetDateTime::from_unix_timestamp(1_643_406_220).unwrap();
    let request = OktaRequest::voice("+14155550100", "482915")
        .event_id("e1")
        .event_time(at)
        .expires(at + Duration::from_millis(294_321))
        .purpose(Purpose::Enrollment)
        .user_id("00uyxxSknGtK8022w0g3")
        .ip_address("203.0.113.9");
    assert_eq!(
        request.to_json(),
        serde_json::json!({
            "eventId": "e1",
            "eventTime": "2022-01-28T21:43:40.000Z",
            "eventType": "com.okta.telephony.provider",
            "requestType": "com.okta.user.telephony.pre-enrollment",
            "data": {
                "context": {"request": {"ipAddress": "203.0.113.9"}},
                "userProfile": {"userId": "00uyxxSknGtK8022w0g3"},
                "messageProfile": {
                    "msgTemplate": "Your code is 482915",
                    "phoneNumber": "+14155550100",
                    "otpExpires": "2022-01-28T21:48:34.321Z",
                    "deliveryChannel": "CALL",
                    "otpCode": "482915",
                    "locale": "EN-US"
                }
            }
        })
    );
    let bare = OktaRequest::sms("+14155550100", "482915")
        .without_template()
        .purpose(Purpose::Other)
        .to_json();
    assert!(bare.get("requestType").is_none(), "{bare}");
    assert!(bare["data"].get("context").is_none(), "{bare}");
    assert!(bare["data"]["messageProfile"].get("msgTemplate").is_none(), "{bare}");
    assert!(bare["data"]["messageProfile"].get("otpExpires").is_none(), "{bare}");
}

#[test]
fn what_the_builder_writes_the_hook_reads() {
    let body = OktaRequest::sms("+14155550100", "482915")
        .event_id("round-trip")
        .expires_in(Duration::from_secs(300))
        .locale("fr-FR")
        .user_id("00u1")
        .ip_address("198.51.100.7")
        .to_string();
    let delivery = HookRequest::parse(body.as_bytes()).unwrap().into_delivery().unwrap();
    assert_eq!(delivery.event_id, "round-trip");
    assert_eq!(delivery.purpose, Purpose::Verification);
    assert_eq!(delivery.channel, Channel::Sms);
    assert_eq!(delivery.phone_number, "+14155550100");
    assert_eq!(delivery.passcode.expose(), "482915");
    assert_eq!(delivery.text.unwrap().expose(), "Your code is 482915");
    assert_eq!(delivery.locale.unwrap().tag(), "fr-FR");
    assert!(delivery.otp_expires.unwrap() > OffsetDateTime::now_utc());
    assert!(delivery.event_time.unwrap() <= OffsetDateTime::now_utc());
    assert_eq!(delivery.user_id.as_deref(), Some("00u1"));
    assert_eq!(delivery.ip_address, Some("198.51.100.7".parse().unwrap()));
    for purpose in [
        Purpose::Enrollment,
        Purpose::Verification,
        Purpose::AccountUnlock,
        Purpose::PasswordReset,
        Purpose::Other,
    ] {
        let body = OktaRequest::voice("+14155550100", "482915").purpose(purpose).to_string();
        let delivery = HookRequest::parse(body.as_bytes()).unwrap().into_delivery().unwrap();
        assert_eq!((delivery.purpose, delivery.channel), (purpose, Channel::Voice));
    }
    let first = OktaRequest::sms("+14155550100", "482915").to_json();
    let second = OktaRequest::sms("+14155550100", "482915").to_json();
    assert_ne!(first["eventId"], second["eventId"], "each request has its own event id");
}

#[test]
fn formats_times_as_okta_does() {
    let at = std::time::SystemTime::UNIX_EPOCH + Duration::from_millis(1_643_406_514_321);
    assert_eq!(okta_time(at.into()), "2022-01-28T21:48:34.321Z");
    let leap = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400);
    assert_eq!(okta_time(leap.into()), "2000-02-29T00:00:00.000Z");
    let paris = OffsetDateTime::from_unix_timestamp(1_643_406_514)
        .unwrap()
        .to_offset(UtcOffset::from_hms(1, 0, 0).unwrap());
    assert_eq!(okta_time(paris), "2022-01-28T21:48:34.000Z");
}

#[test]
fn an_answer_reads_back_and_a_wrong_shape_does_not() {
    let response = HookResponse::new(
        ActionStatus::Failed,
        "twilio-us".into(),
        "SM49a8ece2822d44e4adaccd7ed268f954".into(),
        "outcome=rejected_invalid_number; attempts=2".into(),
    );
    let json = serde_json::to_value(&response).unwrap();
    let answer = OktaAnswer::from_json(&json).unwrap();
    assert_eq!(answer.status, ActionStatus::Failed);
    assert_eq!(answer.provider, "twilio-us");
    assert_eq!(answer.transaction_id, "SM49a8ece2822d44e4adaccd7ed268f954");
    assert_eq!(answer.metadata("outcome"), Some("rejected_invalid_number"));
    assert_eq!(answer.metadata("attempts"), Some("2"));
    assert_eq!(answer.metadata("attempt"), None);
    let mutations: [fn(&mut serde_json::Value); 5] = [
        |json| json["commands"][0]["value"] = json["commands"][0]["value"][0].clone(),
        |json| json["commands"][0]["type"] = "com.okta.telephony.other".into(),
        |json| json["commands"][0]["value"][0]["status"] = "OK".into(),
        |json| {
            let command = json["commands"][0].clone();
            json["commands"].as_array_mut().unwrap().push(command);
        },
        |json| {
            let value = json["commands"][0]["value"][0].clone();
            json["commands"][0]["value"].as_array_mut().unwrap().push(value);
        },
    ];
    for mutate in mutations {
        let mut wrong = json.clone();
        mutate(&mut wrong);
        assert!(OktaAnswer::from_json(&wrong).is_err(), "{wrong}");
    }
}

#[test]
fn event_time_is_read_and_a_bad_one_is_named() {
    let mut value: serde_json::Value = serde_json::from_str(SAMPLE).unwrap();
    value["eventTime"] = "2022-01-28T21:43:40.000Z".into();
    let request = HookRequest::parse(value.to_string().as_bytes()).unwrap();
    let delivery = request.into_delivery().unwrap();
    assert_eq!(delivery.event_time.unwrap().unix_timestamp(), 1_643_406_220);
    value["eventTime"] = "yesterday".into();
    let request = HookRequest::parse(value.to_string().as_bytes()).unwrap();
    assert_eq!(request.into_delivery().err().unwrap().location, "eventTime");
}
