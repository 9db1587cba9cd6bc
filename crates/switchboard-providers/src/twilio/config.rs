//! `[providers.NAME]` with `kind = "twilio"`: the raw serde struct and its validation.

use std::collections::BTreeMap;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use switchboard_core::{Channel, ConfigError};

use crate::senders::CountrySenderConfig;

crate::fields::provider_config! {
    /// One Twilio account as written in the config file.
    #[derive(Clone, Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct TwilioConfig {
        /// The account SID, `AC` followed by 32 hex digits: the Basic auth user and the path
        /// segment.
        pub account_sid: String,
        /// The account's auth token (Basic auth password); `Debug` prints `***`.
        pub auth_token: SecretString,
        /// The default SMS sender and, when it is a number, voice caller id: an E.164 number, or
        /// (SMS only) an alphanumeric sender ID or a short code. At most one of `from` and
        /// `messaging_service_sid`.
        pub from: Option<String>,
        /// A Messaging Service (`MG` followed by 32 hex digits) that picks the SMS sender from its
        /// pool, for destinations without a sender of their own in `from` or `senders`.
        pub messaging_service_sid: Option<String>,
        /// The default caller id for calls, when it differs from `from` (an E.164 number).
        #[serde(default)]
        pub voice_from: Option<String>,
        /// Per-country senders (`[providers.NAME.senders.GB] sms = "Acme"`), overriding the
        /// defaults above for destinations in that country.
        #[serde(default)]
        pub senders: BTreeMap<String, CountrySenderConfig>,
        /// The API root; tests and the demo point it at `switchboard-sim`.
        #[serde(default = "default_base_url")]
        pub base_url: String,
        /// The `<Say voice>` for calls (`Polly.Joanna`); unset picks a Polly voice for the caller's
        /// language.
        pub voice: Option<String>,
        /// Seconds Twilio keeps trying to deliver an SMS (`ValidityPeriod`, 1 to 36000); unset
        /// leaves Twilio's default of 36000. A passcode is useless after a few minutes.
        pub validity_period_s: Option<u32>,
    }
    default_timeout_ms = 1200;
    senders;
}

fn default_base_url() -> String {
    "https://api.twilio.com".to_owned()
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
            (Some(_), Some(_)) => {
                return Err(ConfigError::invalid(
                    key("messaging_service_sid"),
                    "set at most one of `from` and `messaging_service_sid`",
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
        let senders = self.senders(key_prefix)?;
        if self.messaging_service_sid.is_none()
            && !senders.supports(Channel::Sms)
            && !senders.supports(Channel::Voice)
        {
            return Err(ConfigError::invalid(
                key("from"),
                "set `from` or `messaging_service_sid` (and optionally `voice_from` and `senders`)",
            ));
        }
        self.base_url(key_prefix)?;
        self.check_shared_fields(key_prefix)?;
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
        if let Some(period) = self.validity_period_s
            && !(1..=36_000).contains(&period)
        {
            return Err(ConfigError::invalid(
                key("validity_period_s"),
                "must be between 1 and 36000",
            ));
        }
        Ok(())
    }

    /// The API root without a trailing `/`.
    pub(crate) fn base_url(&self, key_prefix: &str) -> Result<String, ConfigError> {
        crate::url::check_base_url(&format!("{key_prefix}.base_url"), &self.base_url)
    }
}

/// `prefix` followed by 32 hex digits.
fn is_sid(text: &str, prefix: &str) -> bool {
    text.strip_prefix(prefix)
        .is_some_and(|hex| hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use switchboard_core::Country;

    use super::*;

    const SID: &str = "AC0123456789abcdef0123456789ABCDEF";

    fn parse(extra: &str) -> Result<TwilioConfig, serde_json::Error> {
        serde_json::from_str(&format!(r#"{{"account_sid":"{SID}","auth_token":"t"{extra}}}"#))
    }

    fn caller_id(config: &TwilioConfig) -> Option<String> {
        let senders = config.senders("p").unwrap();
        senders.for_destination(Country::parse("US").unwrap(), Channel::Voice).map(str::to_owned)
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
        assert_eq!(caller_id(&config).as_deref(), Some("+14155550100"));
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
            (r#","from":"Acme","voice_from":"Acme""#, "voice_from"),
            (r#","from":"Acme","senders":{"GBR":{"sms":"Acme"}}"#, "senders.GBR"),
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
        for (extra, expected) in [
            (r#","from":"+14155550100""#, Some("+14155550100")),
            (r#","from":"Acme Corp""#, None),
            (r#","from":"12345""#, None),
            (r#","messaging_service_sid":"MG0123456789abcdef0123456789abcdef""#, None),
            (
                r#","messaging_service_sid":"MG0123456789abcdef0123456789abcdef","voice_from":"+14155550101""#,
                Some("+14155550101"),
            ),
            (r#","from":"Acme","voice_from":"+14155550101""#, Some("+14155550101")),
            (r#","senders":{"US":{"voice":"+14155550102"}}"#, Some("+14155550102")),
        ] {
            let config = parse(extra).unwrap();
            assert!(config.validate("p").is_ok(), "{extra}");
            assert_eq!(caller_id(&config).as_deref(), expected, "{extra}");
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
