//! `[providers.NAME]` with `kind = "twilio"`: the raw serde struct and its validation.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use switchboard_core::ConfigError;

/// One Twilio account as written in the config file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwilioConfig {
    /// The account SID, `AC` followed by 32 hex digits: the Basic auth user and the path segment.
    pub account_sid: String,
    /// The account's auth token (Basic auth password); `Debug` prints `***`.
    pub auth_token: SecretString,
    /// The SMS sender and voice caller id: an E.164 number, or (SMS only) an alphanumeric
    /// sender ID or a short code. Set exactly one of `from` and `messaging_service_sid`.
    pub from: Option<String>,
    /// A Messaging Service (`MG` followed by 32 hex digits) that picks the SMS sender from its
    /// pool, instead of `from`. Such an account cannot place voice calls.
    pub messaging_service_sid: Option<String>,
    /// The API root; tests and the demo point it at `switchboard-sim`.
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// Time allowed for one request, from connecting to the last byte of the answer, in ms.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Time allowed to open a connection, in ms (a connect failure is certainly not a send).
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// The `<Say voice>` for calls (`Polly.Joanna`); unset picks a Polly voice for the caller's
    /// language.
    pub voice: Option<String>,
    /// Seconds Twilio keeps trying to deliver an SMS (`ValidityPeriod`, 1 to 36000); unset
    /// leaves Twilio's default of 36000. A passcode is useless after a few minutes.
    pub validity_period_s: Option<u32>,
}

fn default_base_url() -> String {
    "https://api.twilio.com".to_owned()
}

fn default_timeout_ms() -> u64 {
    1200
}

fn default_connect_timeout_ms() -> u64 {
    300
}

/// Longest per-request timeout accepted: Okta gives the whole hook a few seconds.
const MAX_TIMEOUT_MS: u64 = 60_000;

/// Who sends an SMS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SmsSender {
    /// `From`: a number, short code or alphanumeric sender ID.
    From(String),
    /// `MessagingServiceSid`.
    MessagingService(String),
}

/// What `from` holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SenderKind {
    E164,
    ShortCode,
    Alphanumeric,
}

impl TwilioConfig {
    /// Checks every field; errors name the key under `key_prefix` (`providers.twilio-us`).
    pub fn validate(&self, key_prefix: &str) -> Result<(), ConfigError> {
        let key = |field: &str| format!("{key_prefix}.{field}");
        if !is_sid(&self.account_sid, "AC") {
            return Err(ConfigError::invalid(
                key("account_sid"),
                "must match AC followed by 32 hex digits",
            ));
        }
        if self.auth_token.expose_secret().trim().is_empty() {
            return Err(ConfigError::invalid(key("auth_token"), "must not be empty"));
        }
        match (&self.from, &self.messaging_service_sid) {
            (None, None) => {
                return Err(ConfigError::invalid(
                    key("from"),
                    "set exactly one of `from` and `messaging_service_sid`",
                ));
            }
            (Some(_), Some(_)) => {
                return Err(ConfigError::invalid(
                    key("messaging_service_sid"),
                    "set exactly one of `from` and `messaging_service_sid`",
                ));
            }
            (Some(from), None) if sender_kind(from).is_none() => {
                return Err(ConfigError::invalid(
                    key("from"),
                    "must be an E.164 number (+14155550100), a short code or an alphanumeric \
                     sender ID (1 to 11 letters, digits or spaces, at least one letter)",
                ));
            }
            (None, Some(service)) if !is_sid(service, "MG") => {
                return Err(ConfigError::invalid(
                    key("messaging_service_sid"),
                    "must match MG followed by 32 hex digits",
                ));
            }
            _ => {}
        }
        self.base_url(key_prefix)?;
        if !(1..=MAX_TIMEOUT_MS).contains(&self.timeout_ms) {
            return Err(ConfigError::invalid(
                key("timeout_ms"),
                format!("must be between 1 and {MAX_TIMEOUT_MS}"),
            ));
        }
        if !(1..=self.timeout_ms).contains(&self.connect_timeout_ms) {
            return Err(ConfigError::invalid(
                key("connect_timeout_ms"),
                "must be between 1 and timeout_ms",
            ));
        }
        if let Some(voice) = &self.voice {
            let is_valid = (1..=64).contains(&voice.len())
                && voice.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
            if !is_valid {
                return Err(ConfigError::invalid(
                    key("voice"),
                    "must be a Twilio voice name such as `Polly.Joanna` (letters, digits, `.`, `-`, `_`)",
                ));
            }
        }
        if let Some(period) = self.validity_period_s {
            if !(1..=36_000).contains(&period) {
                return Err(ConfigError::invalid(
                    key("validity_period_s"),
                    "must be between 1 and 36000",
                ));
            }
        }
        Ok(())
    }

    /// The API root without a trailing `/`.
    pub(crate) fn base_url(&self, key_prefix: &str) -> Result<String, ConfigError> {
        let invalid = |reason: &str| ConfigError::invalid(format!("{key_prefix}.base_url"), reason);
        let url = reqwest::Url::parse(&self.base_url).map_err(|_| invalid("must be a URL"))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(invalid("must be an http or https URL with a host"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(invalid("must not have a query or fragment"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid("must not carry credentials (use account_sid and auth_token)"));
        }
        Ok(self.base_url.trim_end_matches('/').to_owned())
    }

    /// The SMS sender. Call only after [`TwilioConfig::validate`].
    pub(crate) fn sms_sender(&self) -> SmsSender {
        match (&self.from, &self.messaging_service_sid) {
            (Some(from), _) => SmsSender::From(from.clone()),
            (None, Some(service)) => SmsSender::MessagingService(service.clone()),
            // Unreachable after validation; an empty sender makes Twilio answer 21603.
            (None, None) => SmsSender::From(String::new()),
        }
    }

    /// The voice caller id: `from` when it is an E.164 number (Twilio cannot call from an
    /// alphanumeric sender or a short code).
    pub(crate) fn caller_id(&self) -> Option<String> {
        self.from.clone().filter(|from| sender_kind(from) == Some(SenderKind::E164))
    }

    pub(crate) fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    pub(crate) fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }
}

/// `prefix` followed by 32 hex digits.
fn is_sid(text: &str, prefix: &str) -> bool {
    text.strip_prefix(prefix)
        .is_some_and(|hex| hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn sender_kind(from: &str) -> Option<SenderKind> {
    let is_digits = |text: &str| text.bytes().all(|b| b.is_ascii_digit());
    if let Some(digits) = from.strip_prefix('+') {
        let is_e164 =
            (2..=15).contains(&digits.len()) && is_digits(digits) && !digits.starts_with('0');
        return is_e164.then_some(SenderKind::E164);
    }
    if (3..=8).contains(&from.len()) && is_digits(from) {
        return Some(SenderKind::ShortCode);
    }
    let is_alphanumeric = (1..=11).contains(&from.len())
        && from.bytes().all(|b| b.is_ascii_alphanumeric() || b == b' ')
        && from.bytes().any(|b| b.is_ascii_alphabetic());
    is_alphanumeric.then_some(SenderKind::Alphanumeric)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SID: &str = "AC0123456789abcdef0123456789ABCDEF";

    fn parse(extra: &str) -> Result<TwilioConfig, serde_json::Error> {
        serde_json::from_str(&format!(r#"{{"account_sid":"{SID}","auth_token":"t"{extra}}}"#))
    }

    fn error(extra: &str) -> String {
        parse(extra).unwrap().validate("providers.twilio-us").unwrap_err().to_string()
    }

    #[test]
    fn defaults_apply() {
        let config = parse(r#","from":"+14155550100""#).unwrap();
        assert!(config.validate("p").is_ok());
        assert_eq!(config.base_url, "https://api.twilio.com");
        assert_eq!((config.timeout_ms, config.connect_timeout_ms), (1200, 300));
        assert_eq!(config.caller_id().as_deref(), Some("+14155550100"));
        assert!(!format!("{config:?}").contains(r#""t""#));
    }

    #[test]
    fn errors_name_the_key() {
        let bad_sid =
            TwilioConfig { account_sid: "AC123".into(), ..parse(r#","from":"Acme""#).unwrap() };
        assert_eq!(
            bad_sid.validate("providers.twilio-us").unwrap_err().to_string(),
            "providers.twilio-us.account_sid: must match AC followed by 32 hex digits"
        );
        for (extra, key) in [
            ("", "from"),
            (
                r#","from":"+1415","messaging_service_sid":"MG0123456789abcdef0123456789abcdef""#,
                "messaging_service_sid",
            ),
            (r#","from":"not a sender!""#, "from"),
            (r#","from":"+0123""#, "from"),
            (r#","messaging_service_sid":"MG12""#, "messaging_service_sid"),
            (r#","from":"Acme","base_url":"ftp://x""#, "base_url"),
            (r#","from":"Acme","base_url":"https://u:p@x""#, "base_url"),
            (r#","from":"Acme","timeout_ms":0"#, "timeout_ms"),
            (r#","from":"Acme","timeout_ms":100,"connect_timeout_ms":200"#, "connect_timeout_ms"),
            (r#","from":"Acme","voice":"Polly Joanna""#, "voice"),
            (r#","from":"Acme","validity_period_s":36001"#, "validity_period_s"),
        ] {
            let message = error(extra);
            assert!(
                message.starts_with(&format!("providers.twilio-us.{key}: ")),
                "{extra}: {message}"
            );
        }
    }

    #[test]
    fn accepts_every_sender_kind() {
        for (extra, caller_id) in [
            (r#","from":"+14155550100""#, Some("+14155550100")),
            (r#","from":"Acme Corp""#, None),
            (r#","from":"12345""#, None),
            (r#","messaging_service_sid":"MG0123456789abcdef0123456789abcdef""#, None),
        ] {
            let config = parse(extra).unwrap();
            assert!(config.validate("p").is_ok(), "{extra}");
            assert_eq!(config.caller_id().as_deref(), caller_id, "{extra}");
        }
    }

    #[test]
    fn rejects_unknown_keys() {
        assert!(parse(r#","from":"Acme","token":"x""#).is_err());
    }

    #[test]
    fn base_url_loses_its_trailing_slash() {
        let config = parse(r#","from":"Acme","base_url":"http://127.0.0.1:8080/""#).unwrap();
        assert_eq!(config.base_url("p").unwrap(), "http://127.0.0.1:8080");
    }
}
