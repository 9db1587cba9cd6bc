//! `[providers.NAME]` with `kind = "aws_sms_voice"`: the raw serde struct, its validation and
//! where the credentials come from.
//!
//! Credentials: `access_key_id` and `secret_access_key` (and `session_token`) from the file,
//! usually as `${ENV}` substitutions; when neither key is in the file, `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN` from the environment at load time. The rest
//! of the AWS default chain (shared profiles, SSO, web identity, ECS and IMDS instance roles)
//! is left out: it needs `aws-config` and its own HTTP stack, and rotating temporary
//! credentials would need a refresh loop. A reload picks up rotated environment values.

use std::collections::BTreeMap;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use switchboard_core::ConfigError;

use super::request::VOICE_IDS;
use crate::senders::CountrySenderConfig;

crate::fields::provider_config! {
    /// One AWS account and region as written in the config file.
    #[derive(Clone, Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct AwsSmsVoiceConfig {
        /// The AWS region (`us-east-1`): the endpoint and the SigV4 credential scope.
        pub region: String,
        /// Access key id; with `secret_access_key`, or neither (then the environment's are used).
        pub access_key_id: Option<String>,
        /// Secret access key; `Debug` prints `***`.
        pub secret_access_key: Option<SecretString>,
        /// Session token of temporary credentials; `Debug` prints `***`.
        pub session_token: Option<SecretString>,
        /// Default `OriginationIdentity`: a phone number, short code or sender ID. Calls use it
        /// when it is a number and `voice_from` is unset.
        pub from: Option<String>,
        /// Default `OriginationIdentity` for calls (an E.164 number).
        #[serde(default)]
        pub voice_from: Option<String>,
        /// Per-country `OriginationIdentity` overrides
        /// (`[providers.NAME.senders.GB] sms = "Acme"`).
        #[serde(default)]
        pub senders: BTreeMap<String, CountrySenderConfig>,
        /// A pool id, phone number id or ARN used as `OriginationIdentity` where `from`,
        /// `voice_from` and `senders` give none. Without any, SMS lets AWS pick the identity and
        /// calls are refused.
        pub origination_identity: Option<String>,
        /// `ConfigurationSetName`: where AWS sends delivery events (they never come back to
        /// switchboard).
        pub configuration_set_name: Option<String>,
        /// `MaxPrice` per SMS part, in USD (`"0.05"`); AWS refuses dearer destinations.
        pub max_price: Option<String>,
        /// `MaxPricePerMinute` for calls, in USD.
        pub max_price_per_minute: Option<String>,
        /// `TimeToLive` in seconds (5 to 259200): how long AWS keeps trying. A passcode is useless
        /// after a few minutes.
        pub time_to_live_s: Option<u32>,
        /// `VoiceId` for calls (`JOANNA`); unset picks a voice for the callee's language.
        pub voice_id: Option<String>,
        /// The API root; unset is `https://sms-voice.{region}.amazonaws.com`. Tests and the demo
        /// point it at `switchboard-sim`.
        pub endpoint_url: Option<String>,
    }
    default_timeout_ms = 1500;
    senders;
}

/// Resolved credentials.
#[derive(Clone, Debug)]
pub(crate) struct Credentials {
    pub(crate) access_key_id: String,
    pub(crate) secret_access_key: SecretString,
    pub(crate) session_token: Option<SecretString>,
}

impl AwsSmsVoiceConfig {
    /// Checks every field; errors name the key under `key_prefix` (`providers.aws-us`).
    pub fn validate(&self, key_prefix: &str) -> Result<(), ConfigError> {
        let key = |field: &str| format!("{key_prefix}.{field}");
        let is_region = (1..=32).contains(&self.region.len())
            && self
                .region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && self.region.contains('-');
        if !is_region {
            return Err(ConfigError::invalid(
                key("region"),
                "must be an AWS region such as us-east-1",
            ));
        }
        match (&self.access_key_id, &self.secret_access_key) {
            (Some(id), Some(secret)) => {
                // AWS's ids are 16 to 128 letters and digits; anything printable is let through
                // so that a mistyped id fails at AWS with a clear error rather than here.
                if !(1..=128).contains(&id.len()) || !id.bytes().all(|b| b.is_ascii_graphic()) {
                    return Err(ConfigError::invalid(
                        key("access_key_id"),
                        "must be 1 to 128 printable characters without spaces",
                    ));
                }
                if secret.expose_secret().trim().is_empty() {
                    return Err(ConfigError::invalid(
                        key("secret_access_key"),
                        "must not be empty",
                    ));
                }
            }
            (None, None) => {
                if self.session_token.is_some() {
                    return Err(ConfigError::invalid(
                        key("session_token"),
                        "needs access_key_id and secret_access_key in the file",
                    ));
                }
            }
            (Some(_), None) => {
                return Err(ConfigError::invalid(
                    key("secret_access_key"),
                    "set both access_key_id and secret_access_key, or neither",
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError::invalid(
                    key("access_key_id"),
                    "set both access_key_id and secret_access_key, or neither",
                ));
            }
        }
        self.senders(key_prefix)?;
        if let Some(identity) = &self.origination_identity {
            let is_valid = (1..=256).contains(&identity.len())
                && identity.bytes().all(|b| b.is_ascii_alphanumeric() || b"_:/+-".contains(&b));
            if !is_valid {
                return Err(ConfigError::invalid(
                    key("origination_identity"),
                    "must be 1 to 256 letters, digits and _:/+- (a pool id, phone number id or ARN)",
                ));
            }
        }
        if let Some(name) = &self.configuration_set_name {
            let is_valid = (1..=256).contains(&name.len())
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_:/-".contains(&b));
            if !is_valid {
                return Err(ConfigError::invalid(
                    key("configuration_set_name"),
                    "must be 1 to 256 letters, digits and _:/-",
                ));
            }
        }
        for (field, price) in
            [("max_price", &self.max_price), ("max_price_per_minute", &self.max_price_per_minute)]
        {
            if price.as_deref().is_some_and(|price| !is_max_price(price)) {
                return Err(ConfigError::invalid(
                    key(field),
                    "must be a price in USD such as \"0.05\" (up to 2 digits, a dot, 1 to 5 digits)",
                ));
            }
        }
        if self.time_to_live_s.is_some_and(|ttl| !(5..=259_200).contains(&ttl)) {
            return Err(ConfigError::invalid(
                key("time_to_live_s"),
                "must be between 5 and 259200",
            ));
        }
        if let Some(voice) = &self.voice_id
            && !VOICE_IDS.contains(&voice.as_str())
        {
            return Err(ConfigError::invalid(
                key("voice_id"),
                "must be an AWS VoiceId in capitals, such as JOANNA or AMY",
            ));
        }
        self.endpoint(key_prefix)?;
        self.check_shared_fields(key_prefix)?;
        Ok(())
    }

    /// The API root without a trailing `/`.
    pub(crate) fn endpoint(&self, key_prefix: &str) -> Result<String, ConfigError> {
        match &self.endpoint_url {
            Some(url) => crate::url::check_base_url(&format!("{key_prefix}.endpoint_url"), url),
            None => Ok(format!("https://sms-voice.{}.amazonaws.com", self.region)),
        }
    }

    /// The file's credentials, else the environment's (looked up with `env`).
    pub(crate) fn credentials(
        &self,
        key_prefix: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Credentials, ConfigError> {
        if let (Some(id), Some(secret)) = (&self.access_key_id, &self.secret_access_key) {
            return Ok(Credentials {
                access_key_id: id.clone(),
                secret_access_key: secret.clone(),
                session_token: self.session_token.clone(),
            });
        }
        let non_empty = |name: &str| env(name).filter(|value| !value.trim().is_empty());
        match (non_empty("AWS_ACCESS_KEY_ID"), non_empty("AWS_SECRET_ACCESS_KEY")) {
            (Some(id), Some(secret)) => Ok(Credentials {
                access_key_id: id,
                secret_access_key: SecretString::from(secret),
                session_token: non_empty("AWS_SESSION_TOKEN").map(SecretString::from),
            }),
            _ => Err(ConfigError::invalid(
                format!("{key_prefix}.access_key_id"),
                "set access_key_id and secret_access_key, or AWS_ACCESS_KEY_ID and \
                 AWS_SECRET_ACCESS_KEY in the environment (profiles and instance roles are not read)",
            )),
        }
    }
}

/// The model's `MaxPrice` pattern, `[0-9]{0,2}\.[0-9]{1,5}`, length 2 to 8.
fn is_max_price(price: &str) -> bool {
    let Some((units, fraction)) = price.split_once('.') else {
        return false;
    };
    units.len() <= 2
        && (1..=5).contains(&fraction.len())
        && units.bytes().chain(fraction.bytes()).all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &str) -> AwsSmsVoiceConfig {
        serde_json::from_str(&format!(r#"{{"region":"us-east-1"{extra}}}"#)).unwrap()
    }

    fn error(extra: &str) -> String {
        let config = match extra.strip_prefix(r#","region":"#) {
            Some(region) => {
                AwsSmsVoiceConfig { region: region.trim_matches('"').into(), ..parse("") }
            }
            None => parse(extra),
        };
        config.validate("providers.aws").unwrap_err().to_string()
    }

    #[test]
    fn minimal_config_is_valid_and_uses_the_regional_endpoint() {
        let config = parse("");
        assert!(config.validate("p").is_ok());
        assert_eq!(config.endpoint("p").unwrap(), "https://sms-voice.us-east-1.amazonaws.com");
        assert_eq!((config.timeout_ms, config.connect_timeout_ms), (1500, 300));
    }

    #[test]
    fn errors_name_the_key() {
        for (extra, key) in [
            (r#","region":"US EAST""#, "region"),
            (r#","access_key_id":"AKIDEXAMPLE12345""#, "secret_access_key"),
            (r#","secret_access_key":"s""#, "access_key_id"),
            (r#","access_key_id":"has space","secret_access_key":"s""#, "access_key_id"),
            (r#","session_token":"t""#, "session_token"),
            (r#","from":"not a sender!""#, "from"),
            (r#","voice_from":"Acme""#, "voice_from"),
            (r#","origination_identity":"pool id""#, "origination_identity"),
            (r#","configuration_set_name":"a b""#, "configuration_set_name"),
            (r#","max_price":"0.123456""#, "max_price"),
            (r#","max_price_per_minute":"123.1""#, "max_price_per_minute"),
            (r#","max_price":"1""#, "max_price"),
            (r#","time_to_live_s":4"#, "time_to_live_s"),
            (r#","voice_id":"Joanna""#, "voice_id"),
            (r#","endpoint_url":"ftp://x""#, "endpoint_url"),
            (r#","timeout_ms":0"#, "timeout_ms"),
            (r#","timeout_ms":100,"connect_timeout_ms":200"#, "connect_timeout_ms"),
        ] {
            let message = error(extra);
            assert!(message.starts_with(&format!("providers.aws.{key}: ")), "{extra}: {message}");
        }
    }

    #[test]
    fn credentials_come_from_the_file_else_the_environment() {
        let from_file = parse(
            r#","access_key_id":"AKIDFILE00000000","secret_access_key":"file-secret","session_token":"tok""#,
        );
        let credentials = from_file.credentials("p", |_| Some("from-env".into())).unwrap();
        assert_eq!(credentials.access_key_id, "AKIDFILE00000000");
        assert_eq!(credentials.secret_access_key.expose_secret(), "file-secret");
        assert_eq!(credentials.session_token.unwrap().expose_secret(), "tok");
        assert!(!format!("{from_file:?}").contains("file-secret"));

        let env = |name: &str| match name {
            "AWS_ACCESS_KEY_ID" => Some("AKIDENV000000000".to_owned()),
            "AWS_SECRET_ACCESS_KEY" => Some("env-secret".to_owned()),
            _ => None,
        };
        let credentials = parse("").credentials("p", env).unwrap();
        assert_eq!(credentials.access_key_id, "AKIDENV000000000");
        assert!(credentials.session_token.is_none());

        let error = parse("").credentials("providers.aws", |_| None).unwrap_err().to_string();
        assert!(error.starts_with("providers.aws.access_key_id: "), "{error}");
        let blank = |_: &str| Some("  ".to_owned());
        assert!(parse("").credentials("p", blank).is_err());
    }

    #[test]
    fn max_price_follows_the_model_pattern() {
        for (price, valid) in [
            ("0.05", true),
            (".5", true),
            ("12.12345", true),
            ("123.1", false),
            ("1.", false),
            ("1", false),
            ("a.1", false),
        ] {
            assert_eq!(is_max_price(price), valid, "{price}");
        }
    }
}
