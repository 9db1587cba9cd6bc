//! `[providers.NAME]` with `kind = "sinch"`: the raw serde struct and its validation.
//!
//! SMS uses a service plan and its API token (REST "xms" API); calls use a Voice application's
//! key and secret. Either half may be left out, not both.

use std::collections::BTreeMap;

use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use switchboard_core::{Channel, ConfigError};

use crate::senders::CountrySenderConfig;

crate::fields::provider_config! {
    /// One Sinch account as written in the config file.
    #[derive(Clone, Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct SinchConfig {
        /// The SMS service plan id (a path segment of every SMS request); needed for SMS.
        pub service_plan_id: Option<String>,
        /// The service plan's API token (`Authorization: Bearer`).
        pub api_token: Option<SecretString>,
        /// The Voice application key; needed for calls.
        pub application_key: Option<String>,
        /// The Voice application secret (base64, as the dashboard shows it): signs every call
        /// request and verifies Sinch's signed callbacks.
        pub application_secret: Option<SecretString>,
        /// How call requests authenticate: `signed` (the default; Sinch's recommendation for
        /// production) or `basic` (key and secret as user and password).
        #[serde(default = "default_voice_auth")]
        pub voice_auth: VoiceAuth,
        /// A random token (16 to 128 letters, digits, `-` or `_`) placed in the SMS delivery-report
        /// URL. Sinch does not sign SMS callbacks, so this secret path is what keeps receipts from
        /// being forged; SMS receipts are asked for only when it is set.
        pub callback_token: Option<SecretString>,
        /// The default sender: an E.164 number, a short code or (SMS only) an alphanumeric id.
        pub from: Option<String>,
        /// The default caller id for calls (E.164); defaults to `from` when that is a number.
        pub voice_from: Option<String>,
        /// Per-country sender overrides (`[providers.NAME.senders.GB] sms = "Acme"`).
        #[serde(default)]
        pub senders: BTreeMap<String, CountrySenderConfig>,
        /// The SMS API root for the service plan's region: `https://us.sms.api.sinch.com` (the
        /// default), `eu.`, `au.`, `br.` or `ca.`.
        #[serde(default = "default_sms_base_url")]
        pub sms_base_url: String,
        /// The Voice API root: `https://calling.api.sinch.com` (the default) or a regional host
        /// such as `https://calling-euc1.api.sinch.com`.
        #[serde(default = "default_voice_base_url")]
        pub voice_base_url: String,
    }
    default_timeout_ms = 1200;
    senders;
}

/// How call requests authenticate.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum VoiceAuth {
    /// `Authorization: Application {key}:{HMAC-SHA256 signature}` with `x-timestamp`.
    Signed,
    /// `Authorization: Basic base64(key:secret)`.
    Basic,
}

fn default_voice_auth() -> VoiceAuth {
    VoiceAuth::Signed
}

fn default_sms_base_url() -> String {
    "https://us.sms.api.sinch.com".to_owned()
}

fn default_voice_base_url() -> String {
    "https://calling.api.sinch.com".to_owned()
}

impl SinchConfig {
    /// Checks every field; errors name the key under `key_prefix`.
    pub fn validate(&self, key_prefix: &str) -> Result<(), ConfigError> {
        let key = |field: &str| format!("{key_prefix}.{field}");
        match (&self.service_plan_id, &self.api_token) {
            (Some(plan), _)
                if !((1..=64).contains(&plan.len())
                    && plan.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')) =>
            {
                return Err(ConfigError::invalid(
                    key("service_plan_id"),
                    "must be the service plan id (letters and digits)",
                ));
            }
            (Some(_), None) => {
                return Err(ConfigError::invalid(
                    key("api_token"),
                    "SMS needs the plan's `api_token`",
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError::invalid(
                    key("service_plan_id"),
                    "an `api_token` needs its `service_plan_id`",
                ));
            }
            (Some(_), Some(token)) if token.expose_secret().trim().is_empty() => {
                return Err(ConfigError::invalid(key("api_token"), "must not be empty"));
            }
            _ => {}
        }
        match (&self.application_key, &self.application_secret) {
            (Some(app), _)
                if !((8..=64).contains(&app.len())
                    && app.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')) =>
            {
                return Err(ConfigError::invalid(
                    key("application_key"),
                    "must be the application key",
                ));
            }
            (Some(_), None) => {
                return Err(ConfigError::invalid(
                    key("application_secret"),
                    "voice needs the application's `application_secret`",
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError::invalid(
                    key("application_key"),
                    "an `application_secret` needs its `application_key`",
                ));
            }
            (Some(_), Some(secret)) => {
                let decoded =
                    base64::engine::general_purpose::STANDARD.decode(secret.expose_secret().trim());
                if decoded.map_or(true, |bytes| bytes.is_empty()) {
                    return Err(ConfigError::invalid(
                        key("application_secret"),
                        "must be the base64 secret the dashboard shows",
                    ));
                }
            }
            _ => {}
        }
        if self.service_plan_id.is_none() && self.application_key.is_none() {
            return Err(ConfigError::invalid(
                key("service_plan_id"),
                "give `service_plan_id` (SMS), `application_key` (voice) or both",
            ));
        }
        if let Some(token) = &self.callback_token {
            let token = token.expose_secret();
            let is_valid = (16..=128).contains(&token.len())
                && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !is_valid {
                return Err(ConfigError::invalid(
                    key("callback_token"),
                    "must be 16 to 128 letters, digits, `-` or `_`",
                ));
            }
        }
        let senders = self.senders(key_prefix)?;
        if self.service_plan_id.is_some() && !senders.supports(Channel::Sms) {
            return Err(ConfigError::invalid(key("from"), "SMS needs a sender"));
        }
        if self.application_key.is_some() && !senders.supports(Channel::Voice) {
            return Err(ConfigError::invalid(
                key("voice_from"),
                "voice needs a caller id: an E.164 `voice_from` or `from`",
            ));
        }
        crate::url::check_base_url(&key("sms_base_url"), &self.sms_base_url)?;
        crate::url::check_base_url(&key("voice_base_url"), &self.voice_base_url)?;
        self.check_shared_fields(key_prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "BeIukql3pTKJ8RGL5zo0DA==";

    fn parse(extra: &str) -> Result<SinchConfig, serde_json::Error> {
        serde_json::from_str(&format!(r#"{{"from":"+14155550100"{extra}}}"#))
    }

    fn error(extra: &str) -> String {
        parse(extra).unwrap().validate("providers.sinch-eu").unwrap_err().to_string()
    }

    #[test]
    fn defaults_apply() {
        let config = parse(&format!(
            r#","service_plan_id":"jd63jf88477ll","api_token":"tok","application_key":"669E367E-6BBA-48AB-AF15-266871C28135","application_secret":"{SECRET}""#
        ))
        .unwrap();
        config.validate("p").unwrap();
        assert_eq!(config.sms_base_url, "https://us.sms.api.sinch.com");
        assert_eq!(config.voice_base_url, "https://calling.api.sinch.com");
        assert_eq!(config.voice_auth, VoiceAuth::Signed);
        assert_eq!((config.timeout_ms, config.connect_timeout_ms), (1200, 300));
        let printed = format!("{config:?}");
        assert!(!printed.contains("tok\"") && !printed.contains(SECRET));
    }

    #[test]
    fn errors_name_the_key() {
        for (extra, key) in [
            ("", "service_plan_id"),
            (r#","service_plan_id":"plan""#, "api_token"),
            (r#","api_token":"t""#, "service_plan_id"),
            (r#","service_plan_id":"bad plan","api_token":"t""#, "service_plan_id"),
            (r#","service_plan_id":"plan","api_token":" ""#, "api_token"),
            (r#","application_key":"669E367E-6BBA""#, "application_secret"),
            (r#","application_key":"k!","application_secret":"eA==""#, "application_key"),
            (
                r#","application_key":"669E367E-6BBA","application_secret":"not base64!""#,
                "application_secret",
            ),
            (r#","application_secret":"eA==""#, "application_key"),
            (
                r#","service_plan_id":"plan","api_token":"t","callback_token":"short""#,
                "callback_token",
            ),
            (r#","service_plan_id":"plan","api_token":"t","sms_base_url":"nope""#, "sms_base_url"),
            (
                r#","service_plan_id":"plan","api_token":"t","voice_base_url":"ftp://x""#,
                "voice_base_url",
            ),
            (r#","service_plan_id":"plan","api_token":"t","timeout_ms":0"#, "timeout_ms"),
            (
                r#","service_plan_id":"plan","api_token":"t","connect_timeout_ms":5000"#,
                "connect_timeout_ms",
            ),
        ] {
            let message = error(extra);
            assert!(
                message.starts_with(&format!("providers.sinch-eu.{key}: ")),
                "{extra}: {message}"
            );
        }
        let alphanumeric: SinchConfig = serde_json::from_str(
            r#"{"from":"Acme","application_key":"669E367E-6BBA","application_secret":"eA=="}"#,
        )
        .unwrap();
        let message = alphanumeric.validate("providers.s").unwrap_err().to_string();
        assert!(message.starts_with("providers.s.voice_from: "), "{message}");
    }

    #[test]
    fn rejects_unknown_keys_and_auth_modes() {
        assert!(parse(r#","service_plan_id":"p","api_tokn":"t""#).is_err());
        assert!(parse(r#","voice_auth":"oauth""#).is_err());
        assert_eq!(parse(r#","voice_auth":"basic""#).unwrap().voice_auth, VoiceAuth::Basic);
    }
}
