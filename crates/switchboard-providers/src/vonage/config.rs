//! `[providers.NAME]` with `kind = "vonage"`: the raw serde struct and its validation.
//!
//! One Vonage account can text (SMS API: `api_key` with `api_secret` or `signature_secret`) and
//! call (Voice API: `application_id` with the application's private key); either half may be
//! left out, not both.

use std::collections::BTreeMap;
use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use switchboard_core::ConfigError;

use crate::senders::CountrySenderConfig;

crate::fields::provider_config! {
    /// One Vonage account as written in the config file.
    #[derive(Clone, Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct VonageConfig {
        /// The account's API key (8 characters); needed for SMS.
        pub api_key: Option<String>,
        /// The API secret, sent with every SMS request. Leave it out when `signature_secret` signs
        /// requests instead (Vonage refuses a request that carries both).
        pub api_secret: Option<SecretString>,
        /// The account's signature secret: signs SMS requests (instead of `api_secret`) and
        /// verifies signed delivery receipts and signed Voice webhooks. Receipts are only asked for
        /// when it is set, since an unsigned receipt could be forged.
        pub signature_secret: Option<SecretString>,
        /// How the dashboard's signature setting signs: `md5hash` (the default), `md5`, `sha1`,
        /// `sha256` or `sha512` (the HMAC variants).
        #[serde(default = "default_signature_method")]
        pub signature_method: SignatureMethod,
        /// The Voice application's id (a UUID); needed for calls.
        pub application_id: Option<String>,
        /// The Voice application's private key (PEM), which signs the RS256 JWT of each call.
        /// Set this or `private_key_file`.
        pub private_key: Option<SecretString>,
        /// A file holding the Voice application's private key (PEM).
        pub private_key_file: Option<PathBuf>,
        /// The default sender: an E.164 number, a short code or (SMS only) an alphanumeric id.
        pub from: Option<String>,
        /// The default caller id for calls (E.164); defaults to `from` when that is a number.
        pub voice_from: Option<String>,
        /// Per-country sender overrides (`[providers.NAME.senders.GB] sms = "Acme"`).
        #[serde(default)]
        pub senders: BTreeMap<String, CountrySenderConfig>,
        /// The SMS API root (`POST {sms_base_url}/sms/json`).
        #[serde(default = "default_sms_base_url")]
        pub sms_base_url: String,
        /// The Voice API root (`POST {voice_base_url}/v1/calls`).
        #[serde(default = "default_voice_base_url")]
        pub voice_base_url: String,
        /// Milliseconds Vonage keeps trying to deliver an SMS (`ttl`, 20000 to 604800000); unset
        /// leaves Vonage's 72 hours. A passcode is useless after a few minutes.
        pub sms_ttl_ms: Option<u32>,
        /// Seconds a call may ring before Vonage gives up (`ringing_timer`, 1 to 120). Default 45.
        #[serde(default = "default_ringing_timer_s")]
        pub ringing_timer_s: u32,
        /// Seconds an answered call may last (`length_timer`, 1 to 7200). Default 90: the script
        /// takes under thirty, and a long call only costs money.
        #[serde(default = "default_length_timer_s")]
        pub length_timer_s: u32,
    }
    default_timeout_ms = 1200;
    senders;
}

/// How Vonage computes the `sig` of a signed request or receipt.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SignatureMethod {
    /// `md5(params + secret)`: Vonage's original scheme.
    Md5Hash,
    /// HMAC-MD5 keyed with the secret.
    Md5,
    /// HMAC-SHA1.
    Sha1,
    /// HMAC-SHA256.
    Sha256,
    /// HMAC-SHA512.
    Sha512,
}

fn default_signature_method() -> SignatureMethod {
    SignatureMethod::Md5Hash
}

fn default_sms_base_url() -> String {
    "https://rest.nexmo.com".to_owned()
}

fn default_voice_base_url() -> String {
    "https://api.nexmo.com".to_owned()
}

fn default_ringing_timer_s() -> u32 {
    45
}

fn default_length_timer_s() -> u32 {
    90
}

/// How SMS requests prove who sends them.
#[derive(Clone, Debug)]
pub(crate) enum SmsAuth {
    /// `api_secret` in the form.
    Secret(SecretString),
    /// `sig` over the form, with the signature secret.
    Signature(SecretString, SignatureMethod),
}

/// The validated SMS half.
#[derive(Clone, Debug)]
pub(crate) struct SmsAccount {
    pub(crate) api_key: String,
    pub(crate) auth: SmsAuth,
}

/// The validated Voice half; the key is parsed when the adapter is built.
#[derive(Clone, Debug)]
pub(crate) struct VoiceAccount {
    pub(crate) application_id: String,
    pub(crate) private_key_pem: SecretString,
}

impl VonageConfig {
    /// Checks every field without reading files; errors name the key under `key_prefix`.
    pub fn validate(&self, key_prefix: &str) -> Result<(), ConfigError> {
        let key = |field: &str| format!("{key_prefix}.{field}");
        if let Some(api_key) = &self.api_key {
            let is_valid = (6..=16).contains(&api_key.len())
                && api_key.bytes().all(|b| b.is_ascii_alphanumeric());
            if !is_valid {
                return Err(ConfigError::invalid(
                    key("api_key"),
                    "must be the account's API key (8 letters and digits)",
                ));
            }
            if self.api_secret.is_none() && self.signature_secret.is_none() {
                return Err(ConfigError::invalid(
                    key("api_secret"),
                    "SMS needs `api_secret` or `signature_secret` beside `api_key`",
                ));
            }
        }
        for (field, secret) in
            [("api_secret", &self.api_secret), ("signature_secret", &self.signature_secret)]
        {
            if secret.as_ref().is_some_and(|s| s.expose_secret().trim().is_empty()) {
                return Err(ConfigError::invalid(key(field), "must not be empty"));
            }
        }
        match (&self.private_key, &self.private_key_file) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::invalid(
                    key("private_key_file"),
                    "set `private_key` or `private_key_file`, not both",
                ));
            }
            (Some(pem), None) if pem.expose_secret().trim().is_empty() => {
                return Err(ConfigError::invalid(key("private_key"), "must not be empty"));
            }
            _ => {}
        }
        let has_key = self.private_key.is_some() || self.private_key_file.is_some();
        match (&self.application_id, has_key) {
            (Some(id), _) if !is_uuid(id) => {
                return Err(ConfigError::invalid(key("application_id"), "must be a UUID"));
            }
            (Some(_), false) => {
                return Err(ConfigError::invalid(
                    key("private_key"),
                    "voice needs the application's `private_key` or `private_key_file`",
                ));
            }
            (None, true) => {
                return Err(ConfigError::invalid(
                    key("application_id"),
                    "a private key needs the application's `application_id`",
                ));
            }
            _ => {}
        }
        if self.api_key.is_none() && self.application_id.is_none() {
            return Err(ConfigError::invalid(
                key("api_key"),
                "give `api_key` (SMS), `application_id` (voice) or both",
            ));
        }
        let senders = self.senders(key_prefix)?;
        if self.api_key.is_some() && !senders.supports(switchboard_core::Channel::Sms) {
            return Err(ConfigError::invalid(key("from"), "SMS needs a sender"));
        }
        if self.application_id.is_some() && !senders.supports(switchboard_core::Channel::Voice) {
            return Err(ConfigError::invalid(
                key("voice_from"),
                "voice needs a caller id: an E.164 `voice_from` or `from`",
            ));
        }
        crate::url::check_base_url(&key("sms_base_url"), &self.sms_base_url)?;
        crate::url::check_base_url(&key("voice_base_url"), &self.voice_base_url)?;
        self.check_shared_fields(key_prefix)?;
        if let Some(ttl) = self.sms_ttl_ms
            && !(20_000..=604_800_000).contains(&ttl)
        {
            return Err(ConfigError::invalid(
                key("sms_ttl_ms"),
                "must be between 20000 and 604800000",
            ));
        }
        if !(1..=120).contains(&self.ringing_timer_s) {
            return Err(ConfigError::invalid(key("ringing_timer_s"), "must be between 1 and 120"));
        }
        if !(1..=7200).contains(&self.length_timer_s) {
            return Err(ConfigError::invalid(key("length_timer_s"), "must be between 1 and 7200"));
        }
        Ok(())
    }

    /// The SMS half, when configured. Call only after [`VonageConfig::validate`].
    pub(crate) fn sms_account(&self) -> Option<SmsAccount> {
        let api_key = self.api_key.clone()?;
        // A signature secret wins: Vonage refuses `api_secret` and `sig` together (status 32).
        let auth = match (&self.signature_secret, &self.api_secret) {
            (Some(secret), _) => SmsAuth::Signature(secret.clone(), self.signature_method),
            (None, Some(secret)) => SmsAuth::Secret(secret.clone()),
            (None, None) => return None,
        };
        Some(SmsAccount { api_key, auth })
    }

    /// The Voice half, reading `private_key_file` if given.
    pub(crate) fn voice_account(
        &self,
        key_prefix: &str,
    ) -> Result<Option<VoiceAccount>, ConfigError> {
        let Some(application_id) = self.application_id.clone() else {
            return Ok(None);
        };
        let private_key_pem = match (&self.private_key, &self.private_key_file) {
            (Some(pem), _) => pem.clone(),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path).map_err(|error| {
                    ConfigError::invalid(
                        format!("{key_prefix}.private_key_file"),
                        format!("cannot read {}: {error}", path.display()),
                    )
                })?;
                SecretString::from(text)
            }
            (None, None) => {
                return Err(ConfigError::invalid(
                    format!("{key_prefix}.private_key"),
                    "voice needs the application's private key",
                ));
            }
        };
        Ok(Some(VoiceAccount { application_id, private_key_pem }))
    }
}

/// 8-4-4-4-12 hex digits.
fn is_uuid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(group, len)| group.len() == len && group.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const APP: &str = "aaaaaaaa-bbbb-4ccc-8ddd-0123456789ab";

    fn parse(extra: &str) -> Result<VonageConfig, serde_json::Error> {
        serde_json::from_str(&format!(r#"{{"from":"+14155550100"{extra}}}"#))
    }

    fn error(extra: &str) -> String {
        parse(extra).unwrap().validate("providers.vonage-eu").unwrap_err().to_string()
    }

    #[test]
    fn defaults_apply() {
        let config = parse(r#","api_key":"abcd1234","api_secret":"s3cret""#).unwrap();
        config.validate("p").unwrap();
        assert_eq!(config.sms_base_url, "https://rest.nexmo.com");
        assert_eq!(config.voice_base_url, "https://api.nexmo.com");
        assert_eq!((config.timeout_ms, config.connect_timeout_ms), (1200, 300));
        assert_eq!(config.signature_method, SignatureMethod::Md5Hash);
        assert_eq!((config.ringing_timer_s, config.length_timer_s), (45, 90));
        assert!(matches!(config.sms_account().unwrap().auth, SmsAuth::Secret(_)));
        assert!(config.voice_account("p").unwrap().is_none());
        assert!(!format!("{config:?}").contains("s3cret"));
    }

    #[test]
    fn a_signature_secret_replaces_the_api_secret() {
        let config = parse(
            r#","api_key":"abcd1234","api_secret":"s","signature_secret":"sig","signature_method":"sha256""#,
        )
        .unwrap();
        config.validate("p").unwrap();
        let SmsAuth::Signature(_, method) = config.sms_account().unwrap().auth else {
            panic!("expected signing");
        };
        assert_eq!(method, SignatureMethod::Sha256);
    }

    #[test]
    fn voice_only_accounts_are_valid() {
        let config =
            parse(&format!(r#","application_id":"{APP}","private_key":"-----BEGIN""#)).unwrap();
        config.validate("p").unwrap();
        assert!(config.sms_account().is_none());
        assert_eq!(config.voice_account("p").unwrap().unwrap().application_id, APP);
    }

    #[test]
    fn errors_name_the_key() {
        for (extra, key) in [
            ("", "api_key"),
            (r#","api_key":"abcd1234""#, "api_secret"),
            (r#","api_key":"ab","api_secret":"s""#, "api_key"),
            (r#","api_key":"abcd1234","api_secret":" ""#, "api_secret"),
            (r#","application_id":"nope","private_key":"k""#, "application_id"),
            (&format!(r#","application_id":"{APP}""#), "private_key"),
            (r#","private_key":"k""#, "application_id"),
            (
                &format!(r#","application_id":"{APP}","private_key":"k","private_key_file":"/k""#),
                "private_key_file",
            ),
            (r#","api_key":"abcd1234","api_secret":"s","sms_base_url":"ftp://x""#, "sms_base_url"),
            (r#","api_key":"abcd1234","api_secret":"s","voice_base_url":"x""#, "voice_base_url"),
            (r#","api_key":"abcd1234","api_secret":"s","timeout_ms":0"#, "timeout_ms"),
            (
                r#","api_key":"abcd1234","api_secret":"s","timeout_ms":100,"connect_timeout_ms":200"#,
                "connect_timeout_ms",
            ),
            (r#","api_key":"abcd1234","api_secret":"s","sms_ttl_ms":100"#, "sms_ttl_ms"),
            (r#","api_key":"abcd1234","api_secret":"s","ringing_timer_s":0"#, "ringing_timer_s"),
            (r#","api_key":"abcd1234","api_secret":"s","length_timer_s":9000"#, "length_timer_s"),
            (r#","api_key":"abcd1234","api_secret":"s","voice_from":"Acme""#, "voice_from"),
        ] {
            let message = error(extra);
            assert!(
                message.starts_with(&format!("providers.vonage-eu.{key}: ")),
                "{extra}: {message}"
            );
        }
        let no_caller_id = serde_json::from_str::<VonageConfig>(&format!(
            r#"{{"from":"Acme","application_id":"{APP}","private_key":"k"}}"#
        ))
        .unwrap();
        let message = no_caller_id.validate("providers.v").unwrap_err().to_string();
        assert!(message.starts_with("providers.v.voice_from: "), "{message}");
    }

    #[test]
    fn rejects_unknown_keys_and_methods() {
        assert!(parse(r#","api_key":"abcd1234","secret":"x""#).is_err());
        assert!(
            parse(r#","api_key":"abcd1234","api_secret":"s","signature_method":"crc32""#).is_err()
        );
    }

    #[test]
    fn reads_the_private_key_file() {
        let missing = parse(&format!(
            r#","application_id":"{APP}","private_key_file":"/nonexistent/vonage.pem""#
        ))
        .unwrap();
        missing.validate("p").unwrap();
        let error = missing.voice_account("providers.v").unwrap_err().to_string();
        assert!(error.starts_with("providers.v.private_key_file: cannot read"), "{error}");
    }
}
