//! Okta's telephony inline hook, on the wire. The only module in switchboard that knows Okta's
//! JSON: field names (`messageProfile`, `otpCode`, `deliveryChannel`) stop here, and the rest of
//! the server sees core types.
//!
//! Both directions are defined once, by the structs the server itself uses: [`HookRequest`]
//! parses Okta's request and [`OktaRequest`] writes one by serialising it (for the traffic the
//! demo, the simulator, the chaos harness and the tests make up); [`HookResponse`] writes the
//! answer and [`OktaAnswer::from_json`] reads it back the way Okta does.
//!
//! Okta's event hooks and System Log events (which codes were entered) are read in `events.rs`.
//!
//! Contract: <https://developer.okta.com/docs/reference/telephony-hook/>. Two details are easy
//! to get wrong and make Okta silently skip the hook (and send through its own rate-limited
//! providers): `value` is an array, and `status` is exactly `SUCCESSFUL`, `PENDING` or `FAILED`.

use serde::{Deserialize, Serialize};
use switchboard_core::{Channel, Locale, MessageText, Passcode, Purpose};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Okta's request body. Unknown fields are ignored: Okta may add fields at any time.
///
/// Serialize is for [`OktaRequest`] only (made-up traffic): the server never writes out a
/// request it received. Absent optional fields are left out, as Okta leaves them out.
#[derive(Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct HookRequest {
    pub(crate) event_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) event_time: Option<String>,
    /// `com.okta.telephony.provider`. Written, never read: it says nothing the path does not,
    /// and a value of the wrong type must not refuse a code.
    #[serde(skip_deserializing, skip_serializing_if = "Option::is_none")]
    pub(crate) event_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) request_type: Option<String>,
    pub(crate) data: HookData,
}

/// `data`; unknown fields are ignored.
#[derive(Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct HookData {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) context: Option<HookContext>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) user_profile: Option<UserProfile>,
    pub(crate) message_profile: MessageProfile,
}

/// `data.context`.
#[derive(Deserialize, Serialize)]
pub(crate) struct HookContext {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) request: Option<ContextRequest>,
}

/// `data.context.request`: the end user's request to Okta.
#[derive(Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ContextRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) ip_address: Option<String>,
}

/// `data.userProfile`; only the id is read (names and logins are never needed).
#[derive(Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UserProfile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) user_id: Option<String>,
}

/// `data.messageProfile`. `msgTemplate` and `otpCode` are secrets from the moment they are read.
#[derive(Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MessageProfile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) msg_template: Option<SecretField>,
    pub(crate) phone_number: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) otp_expires: Option<String>,
    pub(crate) delivery_channel: String,
    pub(crate) otp_code: SecretField,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) locale: Option<String>,
}

/// A string field that must never be printed. It serialises (for [`OktaRequest`], whose codes
/// are made up) but has no `Display`, and `Debug` hides it.
#[derive(Deserialize, Serialize)]
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
        parse_strict(body)
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

/// Parses a body: exactly one JSON value of `T`'s shape (whitespace around it, nothing after
/// it). Errors name the path at fault and never quote the input.
fn parse_strict<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, BodyError> {
    // The path tracking costs on every field, and only an error needs it: a body that parses
    // plainly is the same value, and one that does not is parsed again to say where.
    if let Ok(value) = serde_json::from_slice(body) {
        return Ok(value);
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value: T = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let location = (path != ".").then_some(path);
        BodyError { summary: describe(error.inner()), location }
    })?;
    deserializer.end().map_err(|_| BodyError {
        summary: "invalid request body: text after the JSON object".into(),
        location: None,
    })?;
    Ok(value)
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

/// Okta's `requestType` for each purpose it names; [`Purpose::Other`] has none.
const REQUEST_TYPES: [(&str, Purpose); 4] = [
    ("com.okta.user.telephony.pre-enrollment", Purpose::Enrollment),
    ("com.okta.user.telephony.mfa-verification", Purpose::Verification),
    ("com.okta.user.telephony.account-unlock", Purpose::AccountUnlock),
    ("com.okta.user.telephony.password-reset", Purpose::PasswordReset),
];

fn parse_purpose(request_type: Option<&str>) -> Purpose {
    REQUEST_TYPES
        .iter()
        .find(|(name, _)| Some(*name) == request_type)
        .map_or(Purpose::Other, |(_, purpose)| *purpose)
}

fn request_type(purpose: Purpose) -> Option<&'static str> {
    REQUEST_TYPES.iter().find(|(_, p)| *p == purpose).map(|(name, _)| *name)
}

/// The status Okta understands; anything else makes Okta skip the hook.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ActionStatus {
    /// The code went out (or, with `report = "always_success"`, Okta should not send it).
    Successful,
    /// It did not: Okta may send it through its own providers.
    Failed,
}

impl ActionStatus {
    /// `SUCCESSFUL` or `FAILED`, as on the wire.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            ActionStatus::Successful => "SUCCESSFUL",
            ActionStatus::Failed => "FAILED",
        }
    }
}

/// `{"commands":[{"type":"com.okta.telephony.action","value":[{...}]}]}`. Deserialize is the
/// reading side of the same shape, for [`OktaAnswer::from_json`]: exactly one command, of the
/// action type, whose `value` is an array of exactly one action.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct HookResponse {
    commands: [Command; 1],
}

#[derive(Debug, Serialize, Deserialize)]
struct Command {
    #[serde(rename = "type")]
    kind: CommandType,
    value: [OktaAnswer; 1],
}

/// The one command type of a telephony hook answer.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
enum CommandType {
    #[serde(rename = "com.okta.telephony.action")]
    Action,
}

/// The action in switchboard's answer: what Okta reads, and what a client of the hook (the
/// demo, the simulator, the chaos harness, the tests) reads back with [`OktaAnswer::from_json`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OktaAnswer {
    /// `status`.
    pub status: ActionStatus,
    /// `provider`: the provider that took the code, or a placeholder when none did.
    pub provider: String,
    /// `transactionId`: the provider's message id, or switchboard's own.
    pub transaction_id: String,
    /// `transactionMetadata`: `key=value` items separated by `; ` for Okta's System Log.
    pub transaction_metadata: String,
}

impl OktaAnswer {
    /// Reads an answer as Okta does: anything but one command of type
    /// `com.okta.telephony.action` with one action of a known status is an error (Okta would
    /// skip the hook). Unknown fields are ignored.
    pub fn from_json(answer: &serde_json::Value) -> Result<OktaAnswer, serde_json::Error> {
        let HookResponse { commands: [Command { value: [action], .. }] } =
            HookResponse::deserialize(answer)?;
        Ok(action)
    }

    /// An item of `transactionMetadata` (`outcome`, `attempts`, `refused`, ...).
    #[must_use]
    pub fn metadata(&self, key: &str) -> Option<&str> {
        metadata_item(&self.transaction_metadata, key)
    }
}

/// The value of `key` in a `transactionMetadata` text (`outcome=delivered; attempts=1`).
#[must_use]
pub fn metadata_item<'t>(text: &'t str, key: &str) -> Option<&'t str> {
    text.split("; ").find_map(|item| item.strip_prefix(key).and_then(|rest| rest.strip_prefix('=')))
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
                kind: CommandType::Action,
                value: [OktaAnswer { status, provider, transaction_id, transaction_metadata }],
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

mod build;
pub(crate) mod events;
#[cfg(test)]
mod tests;

pub use build::OktaRequest;
pub(crate) use build::okta_time;
pub use events::OktaEvent;
