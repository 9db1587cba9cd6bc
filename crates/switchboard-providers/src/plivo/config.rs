//! `[providers.NAME]` with `kind = "plivo"`: the raw serde struct and its validation.

use std::collections::BTreeMap;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use switchboard_core::ConfigError;

use crate::senders::{CountrySenderConfig, Senders};

crate::fields::provider_config! {
    /// One Plivo account as written in the config file.
    #[derive(Clone, Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct PlivoConfig {
        /// The Auth ID: `MA` (main account) or `SA` (subaccount) and 18 upper-case letters or
        /// digits. The Basic auth user and a path segment.
        pub auth_id: String,
        /// The Auth Token: Basic auth password, and the key of Plivo's callback signatures; `Debug`
        /// prints `***`.
        pub auth_token: SecretString,
        /// The SMS source and, when it is a number, the caller id of calls.
        pub from: Option<String>,
        /// The caller id of calls when it differs from `from` (an E.164 number). Optional.
        pub voice_from: Option<String>,
        /// Per-country senders (`[providers.NAME.senders.GB] sms = "Acme"`, `voice = "+44..."`).
        #[serde(default)]
        pub senders: BTreeMap<String, CountrySenderConfig>,
        /// The `<Speak voice>` of calls: `WOMAN` (default), `MAN`, or a `Polly.*` voice name.
        #[serde(default = "default_voice")]
        pub voice: String,
        /// Seconds Plivo keeps trying to deliver an SMS (`message_expiry`, 5 to 10800). Unset
        /// leaves Plivo's default.
        pub message_expiry_s: Option<u32>,
        /// Seconds a call rings before Plivo gives up (`ring_timeout`, 5 to 120). Unset leaves
        /// Plivo's default.
        pub ring_timeout_s: Option<u32>,
        /// Seconds a call's script waits for Plivo to fetch it from the answer URL before it is
        /// forgotten (10 to 600). It must outlast ringing: Plivo fetches when the callee answers.
        #[serde(default = "default_answer_ttl_s")]
        pub answer_ttl_s: u64,
        /// Most calls whose scripts wait for their fetch at once (1 to 100000); a call beyond it is
        /// refused as a transient failure rather than evicting another call's script.
        #[serde(default = "default_max_pending_calls")]
        pub max_pending_calls: usize,
        /// The API root; tests and the demo point it at `switchboard-sim`.
        #[serde(default = "default_base_url")]
        pub base_url: String,
    }
    default_timeout_ms = 1200;
    senders;
}

fn default_voice() -> String {
    "WOMAN".to_owned()
}

fn default_answer_ttl_s() -> u64 {
    180
}

fn default_max_pending_calls() -> usize {
    10_000
}

fn default_base_url() -> String {
    "https://api.plivo.com".to_owned()
}

/// What validation derives from the raw config.
pub(crate) struct Validated {
    pub(crate) senders: Senders,
    pub(crate) base_url: String,
}

impl PlivoConfig {
    /// Checks every field; errors name the key under `key_prefix` (`providers.plivo-us`).
    pub fn validate(&self, key_prefix: &str) -> Result<(), ConfigError> {
        self.validated(key_prefix).map(|_| ())
    }

    pub(crate) fn validated(&self, key_prefix: &str) -> Result<Validated, ConfigError> {
        let key = |field: &str| format!("{key_prefix}.{field}");
        let is_auth_id = self.auth_id.len() == 20
            && (self.auth_id.starts_with("MA") || self.auth_id.starts_with("SA"))
            && self.auth_id.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
        if !is_auth_id {
            return Err(ConfigError::invalid(
                key("auth_id"),
                "must be MA or SA followed by 18 upper-case letters or digits",
            ));
        }
        if self.auth_token.expose_secret().trim().is_empty() {
            return Err(ConfigError::invalid(key("auth_token"), "must not be empty"));
        }
        let senders = self.senders(key_prefix)?;
        let is_voice = matches!(self.voice.as_str(), "WOMAN" | "MAN")
            || self.voice.strip_prefix("Polly.").is_some_and(|name| {
                (1..=32).contains(&name.len())
                    && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if !is_voice {
            return Err(ConfigError::invalid(
                key("voice"),
                "must be WOMAN, MAN or a Polly voice such as `Polly.Joanna`",
            ));
        }
        let ranges: [(&str, Option<u64>, u64, u64); 4] = [
            ("message_expiry_s", self.message_expiry_s.map(u64::from), 5, 10_800),
            ("ring_timeout_s", self.ring_timeout_s.map(u64::from), 5, 120),
            ("answer_ttl_s", Some(self.answer_ttl_s), 10, 600),
            ("max_pending_calls", u64::try_from(self.max_pending_calls).ok(), 1, 100_000),
        ];
        for (field, value, low, high) in ranges {
            if value.is_some_and(|value| !(low..=high).contains(&value)) {
                return Err(ConfigError::invalid(
                    key(field),
                    format!("must be between {low} and {high}"),
                ));
            }
        }
        let base_url = crate::url::base_url(key_prefix, &self.base_url)?;
        self.check_shared_fields(key_prefix)?;
        Ok(Validated { senders, base_url })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &str) -> PlivoConfig {
        serde_json::from_str(&format!(
            r#"{{"auth_id":"MAXXXXXXXXXXXXXXXXXX","auth_token":"token","from":"+14155550100"{extra}}}"#
        ))
        .unwrap()
    }

    #[test]
    fn defaults_apply() {
        let config = parse("");
        assert!(config.validate("p").is_ok());
        assert_eq!(config.voice, "WOMAN");
        assert_eq!((config.answer_ttl_s, config.max_pending_calls), (180, 10_000));
        assert_eq!(config.base_url, "https://api.plivo.com");
        assert!(!format!("{config:?}").contains("token\""));
    }

    #[test]
    fn errors_name_the_key() {
        for (extra, key) in [
            (r#","voice":"ROBOT""#, "voice"),
            (r#","voice_from":"Acme""#, "voice_from"),
            (r#","message_expiry_s":1"#, "message_expiry_s"),
            (r#","ring_timeout_s":121"#, "ring_timeout_s"),
            (r#","answer_ttl_s":5"#, "answer_ttl_s"),
            (r#","max_pending_calls":0"#, "max_pending_calls"),
            (r#","base_url":"https://u:p@x""#, "base_url"),
        ] {
            let message = parse(extra).validate("providers.pl").unwrap_err().to_string();
            assert!(message.starts_with(&format!("providers.pl.{key}: ")), "{extra}: {message}");
        }
        for auth_id in ["MA123", "XAXXXXXXXXXXXXXXXXXX", "MAxxxxxxxxxxxxxxxxxx"] {
            let config = PlivoConfig { auth_id: auth_id.into(), ..parse("") };
            let message = config.validate("providers.pl").unwrap_err().to_string();
            assert!(message.starts_with("providers.pl.auth_id: "), "{message}");
        }
        assert!(PlivoConfig { voice: "Polly.Joanna".into(), ..parse("") }.validate("p").is_ok());
    }

    #[test]
    fn rejects_unknown_keys() {
        let json = r#"{"auth_id":"MAXXXXXXXXXXXXXXXXXX","auth_token":"t","answer_url":"x"}"#;
        assert!(serde_json::from_str::<PlivoConfig>(json).is_err());
    }
}
