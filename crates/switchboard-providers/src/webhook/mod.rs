//! A generic JSON webhook for in-house SMS and voice gateways (`kind = "webhook"`).
//!
//! - `config`: the config struct ([`WebhookConfig`]) and its validation
//! - `request`: the body template and its JSON-escaped placeholders
//! - `sign`: `sha256=<hex>` signatures on our requests and on the gateway's receipts
//! - this module: the adapter, the status classification (configurable per status, so it lives
//!   beside the config it reads) and the receipt reading (JSON pointers from the config)
//!
//! The contract, all of it configurable: switchboard sends one request per message with the
//! configured method, URL, headers and rendered body. The answer is acceptance when its status
//! is in `success_statuses` and, if `success_pointer` is set, the answer's JSON holds
//! `success_value` there; the message id is read at `message_id_pointer` (else the reference is
//! the id). With `signing_secret`, each request carries
//! `X-Switchboard-Signature: sha256=<hex HMAC-SHA256(secret, body)>`.
//!
//! Default error classes by status, overridable per status with `status_classes`:
//! 429 rate limited (with `Retry-After`), 401/403/404 and 3xx our configuration, 402 funds,
//! 504 timeout (possibly accepted), other 5xx transient. 400 and 422 default to `auth_config`
//! and not to `invalid_number`: a generic gateway's 400 more often means the template does not
//! fit its contract than a bad number, and a number-level verdict ends the user's sign-in with
//! no failover, so it must be opted into (`status_classes = { "400" = "invalid_number" }`).
//! Other 4xx are transient.
//!
//! Receipts: with `[receipts]`, the gateway POSTs JSON to `{{callback_url}}`
//! (`{callback_base}/receipt`), signed like the requests (`sha256=<hex>` of the body with the
//! receipts secret); the id and status are read by JSON pointers.

mod config;
mod request;
mod sign;

use std::time::SystemTime;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use switchboard_core::{
    Certainty, Channel, ConfigError, ErrorClass, OutboundMessage, ProviderId, speak_passcode,
};

use self::config::{Checked, CheckedReceipts};
pub use self::config::{ReceiptConfig, WebhookConfig};
use self::request::Placeholder;
use crate::http::RawAnswer;
use crate::refusal::{certainty_for_status, class_for_status};
use crate::{
    Accepted, BuildContext, Callback, CallbackError, CallbackReply, DeliveryState, Provider,
    ProviderError, Receipt,
};

/// The registry's kind string (`kinds!` in `lib.rs` gives every adapter its `KIND`).
const KIND: &str = Webhook::KIND;

/// Where receipts go, below `callback_base`.
const RECEIPT_SUBPATH: &str = "/receipt";

/// One configured gateway.
#[derive(Debug)]
pub struct Webhook {
    id: ProviderId,
    client: reqwest::Client,
    checked: Checked,
    success_statuses: Vec<u16>,
    success: Option<(String, serde_json::Value)>,
    message_id_pointer: Option<String>,
    signing: Option<(reqwest::header::HeaderName, SecretString)>,
    callback_url: Option<String>,
    timeout: std::time::Duration,
}

impl Webhook {
    /// Validates `config` (keys named under `providers.{id}`) and builds the client; receipts
    /// are asked for at `{callback_base}/receipt` when `context` has a callback base.
    pub fn try_new(
        id: ProviderId,
        config: &WebhookConfig,
        context: &BuildContext,
    ) -> Result<Webhook, ConfigError> {
        let key_prefix = format!("providers.{id}");
        let checked = config.check(&key_prefix)?;
        let signing = match &config.signing_secret {
            Some(secret) => Some((
                reqwest::header::HeaderName::from_bytes(config.signature_header.as_bytes())
                    .map_err(|_| {
                        ConfigError::invalid(
                            format!("{key_prefix}.signature_header"),
                            "is not a header name",
                        )
                    })?,
                secret.clone(),
            )),
            None => None,
        };
        let callback_url = context
            .callback_base
            .as_deref()
            .map(|base| format!("{}{RECEIPT_SUBPATH}", base.trim_end_matches('/')));
        Ok(Webhook {
            client: crate::http::client(&key_prefix, config.connect_timeout())?,
            success_statuses: config.success_statuses.clone(),
            success: config.success_pointer.clone().zip(config.success_value.clone()),
            message_id_pointer: config.message_id_pointer.clone(),
            signing,
            callback_url,
            timeout: config.timeout(),
            checked,
            id,
        })
    }

    fn body(&self, message: &OutboundMessage) -> String {
        self.checked.body.render(|placeholder| match placeholder {
            Placeholder::To => message.destination.e164().to_owned(),
            Placeholder::Text => match message.channel {
                Channel::Sms => message.text.expose().to_owned(),
                // A voice gateway reads the script: the digits one by one, twice.
                Channel::Voice => speak_passcode(&message.passcode, message.locale.as_ref())
                    .text
                    .expose()
                    .to_owned(),
            },
            Placeholder::Code => message.passcode.expose().to_owned(),
            Placeholder::Channel => message.channel.as_str().to_owned(),
            Placeholder::Locale => message.locale.as_ref().map(|l| l.tag()).unwrap_or_default(),
            Placeholder::Reference => message.reference.clone(),
            Placeholder::CallbackUrl => self.callback_url.clone().unwrap_or_default(),
        })
    }

    fn classify(
        &self,
        answer: &RawAnswer,
        reference: &str,
        now: SystemTime,
    ) -> Result<Accepted, ProviderError> {
        let status = answer.status;
        if self.success_statuses.contains(&status) {
            let json = serde_json::from_slice::<serde_json::Value>(&answer.body).ok();
            if let Some((pointer, expected)) = &self.success {
                let held = json.as_ref().and_then(|json| json.pointer(pointer));
                if held != Some(expected) {
                    // The gateway answered and said no: nothing was sent.
                    return Err(ProviderError::not_sent(
                        KIND,
                        self.checked
                            .status_classes
                            .get(&status)
                            .copied()
                            .unwrap_or(ErrorClass::Transient),
                        format!("http {status} without the success value"),
                    ));
                }
            }
            return match &self.message_id_pointer {
                None => Ok(Accepted { message_id: reference.to_owned() }),
                Some(pointer) => {
                    let id = json.as_ref().and_then(|json| json.pointer(pointer)).and_then(id_text);
                    id.map(|message_id| Accepted { message_id }).ok_or_else(|| {
                        ProviderError::possibly_accepted(
                            KIND,
                            ErrorClass::Transient,
                            format!("http {status} without a message id"),
                        )
                    })
                }
            };
        }
        // A generic gateway's 400 and 422 mean the template does not fit its contract (see the
        // module docs); every other status takes the shared fallback.
        let class = self.checked.status_classes.get(&status).copied().unwrap_or(match status {
            400 | 422 => ErrorClass::AuthConfig,
            _ => class_for_status(status),
        });
        // A 2xx outside `success_statuses` may still have been taken.
        let certainty = if answer.is_success() {
            Certainty::PossiblyAccepted
        } else {
            certainty_for_status(status)
        };
        Err(ProviderError {
            certainty,
            provider_code: Some(status.to_string()),
            ..crate::refusal::refusal(KIND, answer, class, None, now)
        })
    }

    fn receipt(&self, receipts: &CheckedReceipts, body: &[u8]) -> Result<Receipt, CallbackError> {
        let json: serde_json::Value = serde_json::from_slice(body)
            .map_err(|_| CallbackError::Malformed("receipt is not JSON".into()))?;
        let message_id = json
            .pointer(&receipts.message_id_pointer)
            .and_then(id_text)
            .ok_or_else(|| CallbackError::Malformed("receipt without a message id".into()))?;
        let status = json
            .pointer(&receipts.status_pointer)
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| CallbackError::Malformed("receipt without a status".into()))?;
        let state = if receipts.delivered.iter().any(|word| word == status) {
            DeliveryState::Delivered
        } else if let Some(class) = receipts.failed.get(status) {
            DeliveryState::Undelivered(*class)
        } else {
            DeliveryState::Pending
        };
        let is_word = status.len() <= 64
            && status.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
        Ok(Receipt {
            message_id,
            state,
            provider_code: Some(if is_word { status } else { "unknown" }.to_owned()),
        })
    }
}

/// A message id as text: a string, or a number (some gateways use integer ids).
fn id_text(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(id) if !id.is_empty() && id.len() <= 256 => Some(id.clone()),
        serde_json::Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

#[async_trait]
impl Provider for Webhook {
    crate::provider_identity!();

    fn supports(&self, channel: Channel) -> bool {
        self.checked.channels.contains(&channel)
    }

    /// Failures are not logged here: dispatch logs every attempt's outcome once.
    async fn send(&self, message: &OutboundMessage) -> Result<Accepted, ProviderError> {
        if !self.checked.channels.contains(&message.channel) {
            return Err(ProviderError::not_sent(
                KIND,
                ErrorClass::AuthConfig,
                format!("{} is not among this gateway's channels", message.channel),
            ));
        }
        let body = self.body(message);
        let mut request = self
            .client
            .request(self.checked.method.clone(), self.checked.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .timeout(self.timeout);
        for (name, value) in &self.checked.headers {
            let mut value =
                reqwest::header::HeaderValue::from_str(value.expose_secret()).map_err(|_| {
                    ProviderError::not_sent(KIND, ErrorClass::AuthConfig, "invalid header value")
                })?;
            value.set_sensitive(true);
            request = request.header(name, value);
        }
        if let Some((header, secret)) = &self.signing {
            request = request.header(header, sign::signature(secret, body.as_bytes()));
        }
        let answer = crate::http::exchange(KIND, request.body(body), self.timeout).await?;
        self.classify(&answer, &message.reference, SystemTime::now())
    }

    /// A generic gateway has no side-effect-free endpoint we could know of, so the probe only
    /// checks that a connection opens: it never sends a request that could be a message.
    async fn probe(&self) -> Result<(), ProviderError> {
        let host = self.checked.url.host_str().unwrap_or_default().to_owned();
        let port = self.checked.url.port_or_known_default().unwrap_or(443);
        let connect = tokio::net::TcpStream::connect((host, port));
        match tokio::time::timeout(self.timeout, connect).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => {
                Err(ProviderError::not_sent(KIND, ErrorClass::Transient, "connection failed"))
            }
            Err(_) => Err(ProviderError::not_sent(KIND, ErrorClass::Timeout, "connect timed out")),
        }
    }

    /// A receipt: verified against the receipts secret before anything is read from it.
    async fn handle_callback(&self, callback: &Callback) -> Result<CallbackReply, CallbackError> {
        let Some(receipts) = &self.checked.receipts else {
            return Err(CallbackError::Unsupported);
        };
        if callback.subpath != RECEIPT_SUBPATH {
            return Err(CallbackError::NotFound);
        }
        if callback.method != "POST" {
            return Err(CallbackError::Malformed("receipts are POSTed".into()));
        }
        let header =
            callback.headers.get(&receipts.signature_header).and_then(|value| value.to_str().ok());
        if !sign::is_signed(&receipts.secret, &callback.body, header) {
            return Err(CallbackError::BadSignature);
        }
        Ok(CallbackReply::receipts(vec![self.receipt(receipts, &callback.body)?]))
    }
}
