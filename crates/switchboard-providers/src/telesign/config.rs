//! `[providers.NAME]` with `kind = "telesign"`: the raw serde struct and its validation.

use std::collections::BTreeMap;

use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use switchboard_core::ConfigError;

use crate::senders::{CountrySenderConfig, Senders};

crate::fields::provider_config! {
    /// One Telesign account as written in the config file.
    #[derive(Clone, Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct TelesignConfig {
        /// The customer ID from the Telesign portal (a UUID such as
        /// `FFFFFFFF-EEEE-DDDD-1234-AB1234567890`).
        pub customer_id: String,
        /// The account's API key, base64 as the portal shows it; `Debug` prints `***`. It signs
        /// requests (HMAC) or is the Basic auth password, and verifies Telesign's callbacks.
        pub api_key: SecretString,
        /// How requests authenticate: `hmac` (the `TSA` HMAC-SHA256 signature over method, date,
        /// nonce, body and path; the key never crosses the wire) or `basic`.
        #[serde(default = "default_auth")]
        pub auth: TelesignAuth,
        /// The SMS `sender_id`. Optional: without it Telesign picks the sender for the route.
        pub from: Option<String>,
        /// Per-country SMS senders (`[providers.NAME.senders.GB] sms = "Acme"`). Telesign chooses
        /// the caller id of calls itself, so `voice` is refused here.
        #[serde(default)]
        pub senders: BTreeMap<String, CountrySenderConfig>,
        /// The text-to-speech voice for calls (`f-en-US`); unset picks one for the user's language.
        pub voice: Option<String>,
        /// The API root; tests and the demo point it at `switchboard-sim`.
        #[serde(default = "default_base_url")]
        pub base_url: String,
    }
    default_timeout_ms = 1200;
}

/// How requests to Telesign authenticate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TelesignAuth {
    /// `Authorization: TSA {customer_id}:{signature}` (Telesign's "digest" scheme).
    Hmac,
    /// `Authorization: Basic base64(customer_id:api_key)`.
    Basic,
}

fn default_auth() -> TelesignAuth {
    TelesignAuth::Hmac
}

fn default_base_url() -> String {
    "https://rest-api.telesign.com".to_owned()
}

impl TelesignConfig {
    /// Checks every field; errors name the key under `key_prefix` (`providers.telesign-eu`).
    pub fn validate(&self, key_prefix: &str) -> Result<(), ConfigError> {
        self.validated(key_prefix).map(|_| ())
    }

    /// Validates and returns what the adapter needs beyond the raw fields.
    pub(crate) fn validated(&self, key_prefix: &str) -> Result<Validated, ConfigError> {
        let key = |field: &str| format!("{key_prefix}.{field}");
        let is_customer_id = (1..=64).contains(&self.customer_id.len())
            && self.customer_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !is_customer_id {
            return Err(ConfigError::invalid(
                key("customer_id"),
                "must be the customer ID from the Telesign portal (letters, digits and -)",
            ));
        }
        let api_key = self.api_key.expose_secret().trim();
        if api_key.is_empty() {
            return Err(ConfigError::invalid(key("api_key"), "must not be empty"));
        }
        // HMAC signing and callback verification both use the decoded key.
        let signing_key =
            base64::engine::general_purpose::STANDARD.decode(api_key).map_err(|_| {
                ConfigError::invalid(key("api_key"), "must be the base64 key from the portal")
            })?;
        let senders = Senders::try_new(key_prefix, self.from.as_deref(), None, &self.senders)?;
        if let Some((code, _)) = self.senders.iter().find(|(_, config)| config.voice.is_some()) {
            return Err(ConfigError::invalid(
                format!("{key_prefix}.senders.{code}.voice"),
                "Telesign picks the caller id of calls; remove it",
            ));
        }
        if let Some(voice) = &self.voice {
            let is_valid = (1..=32).contains(&voice.len())
                && voice.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
            if !is_valid {
                return Err(ConfigError::invalid(
                    key("voice"),
                    "must be a Telesign voice such as `f-en-US` (letters, digits and -)",
                ));
            }
        }
        let base_url = crate::url::base_url(key_prefix, &self.base_url)?;
        self.check_shared_fields(key_prefix)?;
        Ok(Validated { signing_key: SecretBytes(signing_key), senders, base_url })
    }
}

/// What validation derives from the raw config.
pub(crate) struct Validated {
    pub(crate) signing_key: SecretBytes,
    pub(crate) senders: Senders,
    pub(crate) base_url: String,
}

/// The decoded API key; `Debug` prints `***`.
#[derive(Clone)]
pub(crate) struct SecretBytes(pub(crate) Vec<u8>);

impl std::fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str =
        "EXAMPLETE8sTgg45yusumoN6BYsBVkh+yRJ5czgsnCehZaOYldPJdmFh6NeX8kunZ2zU1YWaUw/0wV6xfw==";

    fn parse(extra: &str) -> TelesignConfig {
        let json = format!(
            r#"{{"customer_id":"FFFFFFFF-EEEE-DDDD-1234-AB1234567890","api_key":"{KEY}"{extra}}}"#
        );
        serde_json::from_str(&json).unwrap()
    }

    #[test]
    fn defaults_apply() {
        let config = parse("");
        assert!(config.validate("p").is_ok());
        assert_eq!(config.auth, TelesignAuth::Hmac);
        assert_eq!(config.base_url, "https://rest-api.telesign.com");
        assert_eq!((config.timeout_ms, config.connect_timeout_ms), (1200, 300));
        assert!(!format!("{config:?}").contains("EXAMPLE"));
        assert_eq!(parse(r#","auth":"basic""#).auth, TelesignAuth::Basic);
    }

    #[test]
    fn errors_name_the_key() {
        for (extra, key) in [
            (r#","customer_id":"a b""#, "customer_id"),
            (r#","api_key":"not base64!""#, "api_key"),
            (r#","api_key":" ""#, "api_key"),
            (r#","from":"not a sender!""#, "from"),
            (r#","senders":{"GB":{"voice":"+447700900001"}}"#, "senders.GB.voice"),
            (r#","voice":"f en""#, "voice"),
            (r#","base_url":"ftp://x""#, "base_url"),
            (r#","timeout_ms":0"#, "timeout_ms"),
        ] {
            let mut json: serde_json::Value =
                serde_json::from_str(&format!(r#"{{"customer_id":"C1","api_key":"{KEY}"}}"#))
                    .unwrap();
            let overrides: serde_json::Value =
                serde_json::from_str(&format!("{{{}}}", &extra[1..])).unwrap();
            for (field, value) in overrides.as_object().unwrap() {
                json[field] = value.clone();
            }
            let config: TelesignConfig = serde_json::from_value(json).unwrap();
            let message = config.validate("providers.ts").unwrap_err().to_string();
            assert!(message.starts_with(&format!("providers.ts.{key}: ")), "{extra}: {message}");
        }
    }

    #[test]
    fn rejects_unknown_keys_and_auth_schemes() {
        let json = format!(r#"{{"customer_id":"C1","api_key":"{KEY}","apikey":"x"}}"#);
        assert!(serde_json::from_str::<TelesignConfig>(&json).is_err());
        let json = format!(r#"{{"customer_id":"C1","api_key":"{KEY}","auth":"digest"}}"#);
        assert!(serde_json::from_str::<TelesignConfig>(&json).is_err());
    }
}
