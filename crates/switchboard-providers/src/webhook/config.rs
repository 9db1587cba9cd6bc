//! `[providers.NAME]` with `kind = "webhook"`: the raw serde struct and its validation.

use std::collections::BTreeMap;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use switchboard_core::{Channel, ConfigError, ErrorClass};

use super::request::BodyTemplate;

crate::fields::provider_config! {
    /// An in-house gateway as written in the config file.
    #[derive(Clone, Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct WebhookConfig {
        /// Where each message is sent (http or https).
        pub url: String,
        /// `POST` (default) or `PUT`.
        #[serde(default = "default_method")]
        pub method: String,
        /// Channels the gateway delivers on (`["sms"]` by default).
        #[serde(default = "default_channels")]
        pub channels: Vec<String>,
        /// Extra request headers; values may hold credentials, so `Debug` prints `***`.
        #[serde(default)]
        pub headers: BTreeMap<String, SecretString>,
        /// The JSON body, with `{{to}}`, `{{text}}`, `{{code}}`, `{{channel}}`, `{{locale}}`,
        /// `{{reference}}` and `{{callback_url}}` inside JSON strings; values are JSON-escaped.
        pub body: String,
        /// HTTP statuses that mean "accepted" (default 200, 201, 202).
        #[serde(default = "default_success_statuses")]
        pub success_statuses: Vec<u16>,
        /// A JSON pointer into the answer that must equal `success_value` for acceptance.
        pub success_pointer: Option<String>,
        /// The value `success_pointer` must hold (compared as JSON: `"ok"`, `true`, `0`).
        pub success_value: Option<serde_json::Value>,
        /// A JSON pointer to the gateway's message id in the answer; unset uses the reference
        /// (`{{reference}}`) as the id.
        pub message_id_pointer: Option<String>,
        /// Error classes by HTTP status, overriding the defaults (`"400" = "invalid_number"`).
        #[serde(default)]
        pub status_classes: BTreeMap<String, String>,
        /// When set, each request carries `{signature_header}: sha256=<hex HMAC-SHA256(body)>`.
        pub signing_secret: Option<SecretString>,
        /// The header for `signing_secret` (default `X-Switchboard-Signature`).
        #[serde(default = "default_signature_header")]
        pub signature_header: String,
        /// Delivery receipts the gateway POSTs to `{callback_url}`; unset refuses receipts.
        pub receipts: Option<ReceiptConfig>,
    }
    default_timeout_ms = 1500;
}

/// `[providers.NAME.receipts]`: how to read and verify the gateway's delivery receipts.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiptConfig {
    /// The HMAC-SHA256 key receipts are signed with (required: an unsigned receipt endpoint
    /// would let anyone feed provider health).
    pub secret: SecretString,
    /// The header carrying `sha256=<hex HMAC-SHA256(body)>` (default `X-Signature`).
    #[serde(default = "default_receipt_signature_header")]
    pub signature_header: String,
    /// JSON pointer to the message id (as returned by the send, or the reference).
    pub message_id_pointer: String,
    /// JSON pointer to the status word.
    pub status_pointer: String,
    /// Status words that mean delivered.
    pub delivered: Vec<String>,
    /// Status words that mean undelivered, each with its error class
    /// (`undelivered = "transient"`, `invalid = "invalid_number"`). Other words are pending.
    pub failed: BTreeMap<String, String>,
}

fn default_method() -> String {
    "POST".to_owned()
}

fn default_channels() -> Vec<String> {
    vec!["sms".to_owned()]
}

fn default_success_statuses() -> Vec<u16> {
    vec![200, 201, 202]
}

fn default_signature_header() -> String {
    "X-Switchboard-Signature".to_owned()
}

fn default_receipt_signature_header() -> String {
    "X-Signature".to_owned()
}

/// The class names accepted in config, as [`ErrorClass::as_str`] spells them.
pub(crate) fn parse_class(name: &str) -> Option<ErrorClass> {
    ErrorClass::ALL.into_iter().find(|class| class.as_str() == name)
}

/// Validated settings the adapter runs on.
#[derive(Debug)]
pub(crate) struct Checked {
    pub(crate) method: reqwest::Method,
    pub(crate) url: reqwest::Url,
    pub(crate) channels: Vec<Channel>,
    pub(crate) headers: Vec<(reqwest::header::HeaderName, SecretString)>,
    pub(crate) body: BodyTemplate,
    pub(crate) status_classes: BTreeMap<u16, ErrorClass>,
    pub(crate) receipts: Option<CheckedReceipts>,
}

/// Validated receipt settings.
#[derive(Debug)]
pub(crate) struct CheckedReceipts {
    pub(crate) secret: SecretString,
    pub(crate) signature_header: reqwest::header::HeaderName,
    pub(crate) message_id_pointer: String,
    pub(crate) status_pointer: String,
    pub(crate) delivered: Vec<String>,
    pub(crate) failed: BTreeMap<String, ErrorClass>,
}

impl WebhookConfig {
    /// Checks every field; errors name the key under `key_prefix` (`providers.gateway`).
    pub fn validate(&self, key_prefix: &str) -> Result<(), ConfigError> {
        self.check(key_prefix).map(|_| ())
    }

    pub(crate) fn check(&self, key_prefix: &str) -> Result<Checked, ConfigError> {
        let key = |field: &str| format!("{key_prefix}.{field}");
        let url = reqwest::Url::parse(&self.url)
            .ok()
            .filter(|url| matches!(url.scheme(), "http" | "https") && url.host().is_some())
            .ok_or_else(|| ConfigError::invalid(key("url"), "must be an http or https URL"))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(ConfigError::invalid(
                key("url"),
                "must not carry credentials (use headers)",
            ));
        }
        let method = match self.method.to_ascii_uppercase().as_str() {
            "POST" => reqwest::Method::POST,
            "PUT" => reqwest::Method::PUT,
            _ => return Err(ConfigError::invalid(key("method"), "must be POST or PUT")),
        };
        let mut channels = Vec::new();
        for (index, name) in self.channels.iter().enumerate() {
            let channel = Channel::parse(name).ok_or_else(|| {
                ConfigError::invalid(
                    format!("{key_prefix}.channels[{index}]"),
                    "must be sms or voice",
                )
            })?;
            if !channels.contains(&channel) {
                channels.push(channel);
            }
        }
        if channels.is_empty() {
            return Err(ConfigError::invalid(key("channels"), "must name at least one channel"));
        }
        let mut headers = Vec::new();
        for (name, value) in &self.headers {
            let header_key = format!("{key_prefix}.headers.{name}");
            let header_name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| ConfigError::invalid(&header_key, "is not a header name"))?;
            if matches!(header_name.as_str(), "content-type" | "content-length" | "host") {
                return Err(ConfigError::invalid(header_key, "is set by switchboard"));
            }
            if reqwest::header::HeaderValue::from_str(value.expose_secret()).is_err() {
                return Err(ConfigError::invalid(header_key, "is not a valid header value"));
            }
            headers.push((header_name, value.clone()));
        }
        let body = BodyTemplate::parse(&key("body"), &self.body)?;
        if self.success_statuses.is_empty()
            || self.success_statuses.iter().any(|status| !(200..300).contains(status))
        {
            return Err(ConfigError::invalid(
                key("success_statuses"),
                "must list one or more 2xx statuses",
            ));
        }
        match (&self.success_pointer, &self.success_value) {
            (Some(pointer), Some(_)) => check_pointer(&key("success_pointer"), pointer)?,
            (None, None) => {}
            _ => {
                return Err(ConfigError::invalid(
                    key("success_value"),
                    "set success_pointer and success_value together",
                ));
            }
        }
        if let Some(pointer) = &self.message_id_pointer {
            check_pointer(&key("message_id_pointer"), pointer)?;
        }
        let mut status_classes = BTreeMap::new();
        for (status, class) in &self.status_classes {
            let class_key = format!("{key_prefix}.status_classes.{status}");
            let status = status
                .parse::<u16>()
                .ok()
                .filter(|status| (300..600).contains(status))
                .ok_or_else(|| {
                    ConfigError::invalid(&class_key, "must be an HTTP status from 300 to 599")
                })?;
            let class = parse_class(class).ok_or_else(|| {
                ConfigError::invalid(
                    &class_key,
                    "must be an error class such as invalid_number or transient",
                )
            })?;
            status_classes.insert(status, class);
        }
        if let Some(secret) = &self.signing_secret
            && secret.expose_secret().is_empty()
        {
            return Err(ConfigError::invalid(key("signing_secret"), "must not be empty"));
        }
        reqwest::header::HeaderName::from_bytes(self.signature_header.as_bytes())
            .map_err(|_| ConfigError::invalid(key("signature_header"), "is not a header name"))?;
        let receipts =
            self.receipts.as_ref().map(|receipts| receipts.check(&key("receipts"))).transpose()?;
        self.check_shared_fields(key_prefix)?;
        Ok(Checked { method, url, channels, headers, body, status_classes, receipts })
    }
}

impl ReceiptConfig {
    fn check(&self, key_prefix: &str) -> Result<CheckedReceipts, ConfigError> {
        let key = |field: &str| format!("{key_prefix}.{field}");
        if self.secret.expose_secret().is_empty() {
            return Err(ConfigError::invalid(key("secret"), "must not be empty"));
        }
        let signature_header = reqwest::header::HeaderName::from_bytes(
            self.signature_header.as_bytes(),
        )
        .map_err(|_| ConfigError::invalid(key("signature_header"), "is not a header name"))?;
        check_pointer(&key("message_id_pointer"), &self.message_id_pointer)?;
        check_pointer(&key("status_pointer"), &self.status_pointer)?;
        if self.delivered.is_empty() {
            return Err(ConfigError::invalid(key("delivered"), "must list at least one status"));
        }
        let mut failed = BTreeMap::new();
        for (status, class) in &self.failed {
            let class = parse_class(class).ok_or_else(|| {
                ConfigError::invalid(
                    format!("{key_prefix}.failed.{status}"),
                    "must be an error class such as transient",
                )
            })?;
            if self.delivered.contains(status) {
                return Err(ConfigError::invalid(
                    format!("{key_prefix}.failed.{status}"),
                    "is also listed as delivered",
                ));
            }
            failed.insert(status.clone(), class);
        }
        Ok(CheckedReceipts {
            secret: self.secret.clone(),
            signature_header,
            message_id_pointer: self.message_id_pointer.clone(),
            status_pointer: self.status_pointer.clone(),
            delivered: self.delivered.clone(),
            failed,
        })
    }
}

/// RFC 6901: empty (the whole document) or `/`-separated tokens.
fn check_pointer(key: &str, pointer: &str) -> Result<(), ConfigError> {
    if pointer.is_empty() || pointer.starts_with('/') {
        Ok(())
    } else {
        Err(ConfigError::invalid(key, "must be a JSON pointer such as /data/id"))
    }
}
