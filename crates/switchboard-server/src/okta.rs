//! Okta's telephony inline hook, on the wire. The only module in switchboard that knows Okta's
//! JSON: field names (`messageProfile`, `otpCode`, `deliveryChannel`) stop here, and the rest of
//! the server sees core types.
//!
//! Contract: <https://developer.okta.com/docs/reference/telephony-hook/>. Two details are easy
//! to get wrong and make Okta silently skip the hook (and send through its own rate-limited
//! providers): `value` is an array, and `status` is exactly `SUCCESSFUL`, `PENDING` or `FAILED`.

use serde::{Deserialize, Serialize};
use switchboard_core::{Channel, Locale, MessageText, Passcode, Purpose};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Okta's request body. Unknown fields are ignored: Okta may add fields at any time.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct HookRequest {
    pub(crate) event_id: String,
    #[serde(default)]
    pub(crate) event_time: Option<String>,
    #[serde(default)]
    pub(crate) request_type: Option<String>,
    pub(crate) data: HookData,
}

/// `data`; unknown fields are ignored.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct HookData {
    #[serde(default)]
    pub(crate) context: Option<HookContext>,
    #[serde(default)]
    pub(crate) user_profile: Option<UserProfile>,
    pub(crate) message_profile: MessageProfile,
}

/// `data.context`.
#[derive(Deserialize)]
pub(crate) struct HookContext {
    #[serde(default)]
    pub(crate) request: Option<ContextRequest>,
}

/// `data.context.request`: the end user's request to Okta.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ContextRequest {
    #[serde(default)]
    pub(crate) ip_address: Option<String>,
}

/// `data.userProfile`; only the id is read (names and logins are never needed).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UserProfile {
    #[serde(default)]
    pub(crate) user_id: Option<String>,
}

/// `data.messageProfile`. `msgTemplate` and `otpCode` are secrets from the moment they are read.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MessageProfile {
    #[serde(default)]
    pub(crate) msg_template: Option<SecretField>,
    pub(crate) phone_number: String,
    #[serde(default)]
    pub(crate) otp_expires: Option<String>,
    pub(crate) delivery_channel: String,
    pub(crate) otp_code: SecretField,
    #[serde(default)]
    pub(crate) locale: Option<String>,
}

/// A string field that must never be printed.
#[derive(Deserialize)]
#[serde(transparent)]
pub(crate) struct SecretField(String);

impl SecretField {
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// A request whose fields have the right types but wrong values, with the JSON path at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldError {
    pub(crate) location: &'static str,
    pub(crate) reason: String,
}

/// Okta's request, in core terms.
pub(crate) struct Delivery {
    pub(crate) event_id: String,
    pub(crate) purpose: Purpose,
    pub(crate) channel: Channel,
    pub(crate) phone_number: String,
    pub(crate) passcode: Passcode,
    /// Okta's SMS text, when it has one that contains the code.
    pub(crate) text: Option<MessageText>,
    pub(crate) locale: Option<Locale>,
    pub(crate) otp_expires: Option<OffsetDateTime>,
    /// When Okta sent the event, to refuse replays of old requests.
    pub(crate) event_time: Option<OffsetDateTime>,
    /// Okta's user id, for per-user velocity limits.
    pub(crate) user_id: Option<String>,
    /// The end user's IP address as Okta saw it, for per-address velocity limits.
    pub(crate) ip_address: Option<std::net::IpAddr>,
}

impl std::fmt::Debug for Delivery {
    /// Prints only what may be logged: no phone number, code, text, user or address.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("event_id", &self.event_id)
            .field("purpose", &self.purpose)
            .field("channel", &self.channel)
            .finish_non_exhaustive()
    }
}

/// Why a body is not a hook request: a summary for Okta's error object that never quotes the
/// input, and the JSON path at fault when there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BodyError {
    pub(crate) summary: String,
    pub(crate) location: Option<String>,
}

impl HookRequest {
    /// Parses a body: exactly one JSON object (whitespace around it, nothing after it).
    ///
    /// serde's messages quote the values they could not use (`invalid type: integer
    /// `123456`, expected a string`), and those values are passcodes and phone numbers, so they
    /// are rebuilt from the error's category, its path and the part that comes from our own
    /// types (the field that is missing, the type that was expected).
    pub(crate) fn parse(body: &[u8]) -> Result<HookRequest, BodyError> {
        let mut deserializer = serde_json::Deserializer::from_slice(body);
        let request: HookRequest =
            serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
                let path = error.path().to_string();
                let location = (path != ".").then_some(path);
                BodyError { summary: describe(error.inner()), location }
            })?;
        deserializer.end().map_err(|_| BodyError {
            summary: "invalid request body: text after the JSON object".into(),
            location: None,
        })?;
        Ok(request)
    }

    /// Checks the values and converts to core types. The phone number stays text: parsing it
    /// needs the configured default region, which is the server's business.
    pub(crate) fn into_delivery(self) -> Result<Delivery, FieldError> {
        let profile = self.data.message_profile;
        if self.event_id.trim().is_empty() || self.event_id.len() > 128 {
            return Err(FieldError {
                location: "eventId",
                reason: "must be 1 to 128 characters".into(),
            });
        }
        let channel = parse_channel(&profile.delivery_channel).ok_or_else(|| FieldError {
            location: "data.messageProfile.deliveryChannel",
            reason: "must be SMS or CALL (voice call)".into(),
        })?;
        let passcode = Passcode::parse(profile.otp_code.expose()).ok_or_else(|| FieldError {
            location: "data.messageProfile.otpCode",
            reason: "must be 4 to 10 digits".into(),
        })?;
        let timestamp = |text: &Option<String>, location: &'static str| match text {
            Some(text) => OffsetDateTime::parse(text, &Rfc3339).map(Some).map_err(|_| FieldError {
                location,
                reason: "must be an RFC 3339 timestamp".into(),
            }),
            None => Ok(None),
        };
        let otp_expires = timestamp(&profile.otp_expires, "data.messageProfile.otpExpires")?;
        let event_time = timestamp(&self.event_time, "eventTime")?;
        // Okta puts the code into the template; without one (always for CALL), or with one that
        // lost the code, we write our own.
        let text = match &profile.msg_template {
            Some(template) if template.expose().contains(passcode.expose()) => {
                Some(MessageText::new(template.expose().to_owned()))
            }
            _ => None,
        };
        Ok(Delivery {
            event_id: self.event_id,
            purpose: parse_purpose(self.request_type.as_deref()),
            channel,
            phone_number: profile.phone_number,
            passcode,
            text,
            locale: profile.locale.as_deref().and_then(Locale::parse),
            otp_expires,
            event_time,
            user_id: self
                .data
                .user_profile
                .and_then(|user| user.user_id)
                .filter(|id| !id.is_empty()),
            // An address Okta sends that does not parse is ignored, not refused: the code must
            // still go out.
            ip_address: self
                .data
                .context
                .and_then(|context| context.request)
                .and_then(|request| request.ip_address)
                .and_then(|text| text.trim().parse().ok()),
        })
    }
}

/// What went wrong in serde_json's terms, without any of the input.
fn describe(error: &serde_json::Error) -> String {
    use serde_json::error::Category;
    match error.classify() {
        Category::Syntax => format!(
            "invalid request body: not valid JSON at line {}, column {}",
            error.line(),
            error.column()
        ),
        Category::Eof => "invalid request body: the JSON ends too early".into(),
        Category::Io => "invalid request body: it could not be read".into(),
        Category::Data => {
            // serde's data messages are `missing field `x``, `duplicate field `x`` (a name from
            // our own types either way), `invalid type: <input>, expected
            // <our type>`, `invalid value: <input>, expected <ours>`, `invalid length <n>,
            // expected <ours>`. Only the parts from our types are kept.
            let message = error.to_string();
            let message = message.split(" at line ").next().unwrap_or_default();
            if let Some(field) = message.strip_prefix("missing field ") {
                format!("invalid request body: missing field {field}")
            } else if let Some(field) = message.strip_prefix("duplicate field ") {
                format!("invalid request body: duplicate field {field}")
            } else if let Some((_, expected)) = message.split_once(", expected ") {
                format!("invalid request body: wrong type or value, expected {expected}")
            } else {
                "invalid request body: wrong type or value".into()
            }
        }
    }
}

/// `SMS`, `CALL`, and the Admin Console preview's `voice call`, in any case.
fn parse_channel(text: &str) -> Option<Channel> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("sms") {
        Some(Channel::Sms)
    } else if ["call", "voice call", "voice"].iter().any(|v| text.eq_ignore_ascii_case(v)) {
        Some(Channel::Voice)
    } else {
        None
    }
}

/// A purpose by the name operators use (`verification`) or Okta's (`mfa-verification`).
pub(crate) fn parse_purpose_name(text: &str) -> Option<Purpose> {
    let text = text.trim().to_ascii_lowercase();
    let text = text.strip_prefix("com.okta.user.telephony.").unwrap_or(&text);
    match text {
        "enrollment" | "pre-enrollment" => Some(Purpose::Enrollment),
        "verification" | "mfa-verification" => Some(Purpose::Verification),
        "account_unlock" | "account-unlock" => Some(Purpose::AccountUnlock),
        "password_reset" | "password-reset" => Some(Purpose::PasswordReset),
        _ => None,
    }
}

fn parse_purpose(request_type: Option<&str>) -> Purpose {
    match request_type.and_then(|t| t.strip_prefix("com.okta.user.telephony.")) {
        Some("pre-enrollment") => Purpose::Enrollment,
        Some("mfa-verification") => Purpose::Verification,
        Some("account-unlock") => Purpose::AccountUnlock,
        Some("password-reset") => Purpose::PasswordReset,
        _ => Purpose::Other,
    }
}

/// The status Okta understands; anything else makes Okta skip the hook.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum ActionStatus {
    Successful,
    Failed,
}

impl ActionStatus {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ActionStatus::Successful => "SUCCESSFUL",
            ActionStatus::Failed => "FAILED",
        }
    }
}

/// `{"commands":[{"type":"com.okta.telephony.action","value":[{...}]}]}`.
#[derive(Debug, Serialize)]
pub(crate) struct HookResponse {
    commands: [Command; 1],
}

#[derive(Debug, Serialize)]
struct Command {
    #[serde(rename = "type")]
    kind: &'static str,
    value: [ActionValue; 1],
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ActionValue {
    status: ActionStatus,
    provider: String,
    transaction_id: String,
    transaction_metadata: String,
}

impl HookResponse {
    pub(crate) fn new(
        status: ActionStatus,
        provider: String,
        transaction_id: String,
        transaction_metadata: String,
    ) -> HookResponse {
        HookResponse {
            commands: [Command {
                kind: "com.okta.telephony.action",
                value: [ActionValue { status, provider, transaction_id, transaction_metadata }],
            }],
        }
    }
}

/// Okta's error object, for requests we cannot act on at all.
#[derive(Debug, Serialize)]
pub(crate) struct ErrorResponse {
    error: ErrorBody,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ErrorBody {
    error_summary: String,
    error_causes: Vec<ErrorCause>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ErrorCause {
    error_summary: String,
    reason: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    location: Option<String>,
}

impl ErrorResponse {
    pub(crate) fn new(summary: &str, reason: &'static str, location: Option<String>) -> Self {
        ErrorResponse {
            error: ErrorBody {
                error_summary: summary.to_owned(),
                error_causes: vec![ErrorCause {
                    error_summary: summary.to_owned(),
                    reason,
                    location,
                }],
            },
        }
    }
}

#[cfg(test)]
mod tests {
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
            let json = SAMPLE.replace(
                r#""deliveryChannel": "SMS""#,
                &format!(r#""deliveryChannel": "{spelling}""#),
            );
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
}
