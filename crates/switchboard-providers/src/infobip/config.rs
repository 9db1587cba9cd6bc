//! `[providers.NAME]` with `kind = "infobip"`: the raw serde struct and its validation.

use std::collections::BTreeMap;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use switchboard_core::ConfigError;

use crate::senders::{CountrySenderConfig, Senders};

crate::fields::provider_config! {
    /// One Infobip account as written in the config file.
    #[derive(Clone, Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct InfobipConfig {
        /// The API key, sent as `Authorization: App <key>`; `Debug` prints `***`.
        pub api_key: SecretString,
        /// The account's own API root, `https://<prefix>.api.infobip.com` (shown in the portal).
        /// Required: Infobip gives every account its own host.
        pub base_url: String,
        /// The SMS sender (alphanumeric, short code or number) and, when it is a number, the caller
        /// id of calls. Optional: without it Infobip uses the account's default sender.
        pub from: Option<String>,
        /// The caller id of calls when it differs from `from` (an E.164 number). Optional.
        pub voice_from: Option<String>,
        /// Per-country senders (`[providers.NAME.senders.GB] sms = "Acme"`, `voice = "+44..."`).
        #[serde(default)]
        pub senders: BTreeMap<String, CountrySenderConfig>,
        /// The text-to-speech voice name for calls (`Joanna`); unset uses Infobip's default voice
        /// for the call's language.
        pub voice: Option<String>,
        /// Minutes Infobip keeps trying to deliver (1 to 2880; Infobip caps it at 48 h). Unset
        /// leaves Infobip's default of 48 h, far longer than a passcode is useful.
        pub validity_period_min: Option<u32>,
        /// A secret of at least 32 URL-safe characters that enables delivery reports. Infobip does
        /// not sign its reports, so switchboard asks for them at
        /// `{callback_base}/reports/{callback_token}` and refuses reports on any other path. Unset
        /// (or without `server.public_base_url`): no reports are requested.
        pub callback_token: Option<SecretString>,
    }
    default_timeout_ms = 1200;
    senders;
}

/// What validation derives from the raw config.
pub(crate) struct Validated {
    pub(crate) senders: Senders,
    pub(crate) base_url: String,
}

impl InfobipConfig {
    /// Checks every field; errors name the key under `key_prefix` (`providers.infobip-eu`).
    pub fn validate(&self, key_prefix: &str) -> Result<(), ConfigError> {
        self.validated(key_prefix).map(|_| ())
    }

    pub(crate) fn validated(&self, key_prefix: &str) -> Result<Validated, ConfigError> {
        let key = |field: &str| format!("{key_prefix}.{field}");
        let api_key = self.api_key.expose_secret();
        if api_key.trim().is_empty() || api_key.bytes().any(|b| b.is_ascii_control() || b == b' ') {
            return Err(ConfigError::invalid(
                key("api_key"),
                "must be a non-empty key without spaces",
            ));
        }
        let base_url = crate::url::base_url(key_prefix, &self.base_url)?;
        let senders = self.senders(key_prefix)?;
        if let Some(voice) = &self.voice {
            let is_valid = (1..=32).contains(&voice.len())
                && voice.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_ ".contains(&b));
            if !is_valid {
                return Err(ConfigError::invalid(
                    key("voice"),
                    "must be an Infobip voice name such as `Joanna`",
                ));
            }
        }
        if let Some(minutes) = self.validity_period_min
            && !(1..=2880).contains(&minutes)
        {
            return Err(ConfigError::invalid(
                key("validity_period_min"),
                "must be between 1 and 2880",
            ));
        }
        if let Some(token) = &self.callback_token {
            let token = token.expose_secret();
            let is_valid = (32..=128).contains(&token.len())
                && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !is_valid {
                return Err(ConfigError::invalid(
                    key("callback_token"),
                    "must be 32 to 128 letters, digits, - or _ (a random secret)",
                ));
            }
        }
        self.check_shared_fields(key_prefix)?;
        Ok(Validated { senders, base_url })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &str) -> Result<InfobipConfig, serde_json::Error> {
        serde_json::from_str(&format!(
            r#"{{"api_key":"003026bbc133714df1834b8638bb496e-8f4b3d9a","base_url":"https://x1y2.api.infobip.com"{extra}}}"#
        ))
    }

    #[test]
    fn defaults_apply() {
        let config = parse("").unwrap();
        assert!(config.validate("p").is_ok());
        assert_eq!((config.timeout_ms, config.connect_timeout_ms), (1200, 300));
        assert!(!format!("{config:?}").contains("003026bb"));
        let missing_base = r#"{"api_key":"k"}"#;
        assert!(serde_json::from_str::<InfobipConfig>(missing_base).is_err());
    }

    #[test]
    fn errors_name_the_key() {
        for (extra, key) in [
            (r#","from":"not a sender!""#, "from"),
            (r#","voice_from":"Acme""#, "voice_from"),
            (r#","senders":{"GBR":{"sms":"Acme"}}"#, "senders.GBR"),
            (r#","voice":"Jo/anna""#, "voice"),
            (r#","validity_period_min":0"#, "validity_period_min"),
            (r#","validity_period_min":2881"#, "validity_period_min"),
            (r#","callback_token":"short""#, "callback_token"),
            (r#","timeout_ms":100,"connect_timeout_ms":200"#, "connect_timeout_ms"),
        ] {
            let message = parse(extra).unwrap().validate("providers.ib").unwrap_err().to_string();
            assert!(message.starts_with(&format!("providers.ib.{key}: ")), "{extra}: {message}");
        }
        let config = InfobipConfig { base_url: "ftp://x".into(), ..parse("").unwrap() };
        let message = config.validate("providers.ib").unwrap_err().to_string();
        assert!(message.starts_with("providers.ib.base_url: "), "{message}");
        let config = InfobipConfig { api_key: SecretString::from(" "), ..parse("").unwrap() };
        let message = config.validate("providers.ib").unwrap_err().to_string();
        assert!(message.starts_with("providers.ib.api_key: "), "{message}");
    }

    #[test]
    fn rejects_unknown_keys() {
        assert!(parse(r#","notify_url":"x""#).is_err());
    }
}
