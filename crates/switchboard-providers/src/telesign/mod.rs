//! Telesign Messaging (`POST /v1/messaging`) and Voice (`POST /v1/voice`), self-service REST API.
//!
//! Both are form-encoded POSTs authenticated with either Telesign's HMAC scheme (default: the key
//! never crosses the wire, and a captured request cannot be replayed with another body) or HTTP
//! Basic, as configured. The probe is `GET /v1/messaging/{reference_id}` for a made-up id: it
//! authenticates like a send and sends nothing.
//!
//! Receipts: SMS sends carry `callback_url={callback_base}/status` when the server has a public
//! base URL. Voice receipts arrive on the account's callback URL, which the operator sets in the
//! Telesign portal to the same address (the voice API's `callback_url` parameter is unverified,
//! so it is not sent). Telesign signs callbacks with `Authorization: TSA {customer_id}:{sig}`,
//! `sig = base64(HMAC-SHA256(base64decode(api_key), raw body))` (SDK
//! `util.verify_telesign_callback_signature`, the SDK's PHP callback example).
//!
//! - `config`: [`TelesignConfig`] and its validation
//! - `request`: form bodies and request signing
//! - `classify`: answers
//! - `receipt`: signed transaction callbacks and their status codes

mod classify;
mod config;
mod receipt;
mod request;

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use switchboard_core::{Channel, ConfigError, OutboundMessage, ProviderId};

use self::config::SecretBytes;
pub use self::config::{TelesignAuth, TelesignConfig};
use crate::http::RawAnswer;
use crate::senders::Senders;
use crate::{
    Accepted, BuildContext, Callback, CallbackError, CallbackReply, Provider, ProviderError,
};

/// The registry's kind string (`kinds!` in `lib.rs` gives every adapter its `KIND`).
const KIND: &str = Telesign::KIND;

const MESSAGING_PATH: &str = "/v1/messaging";
const VOICE_PATH: &str = "/v1/voice";

/// One Telesign account.
#[derive(Debug)]
pub struct Telesign {
    id: ProviderId,
    client: reqwest::Client,
    customer_id: String,
    api_key: SecretString,
    /// The decoded API key: signs requests and verifies callbacks.
    signing_key: SecretBytes,
    auth: TelesignAuth,
    senders: Senders,
    voice: Option<String>,
    timeout: Duration,
    base_url: String,
    /// `{callback_base}/status`, when the server has a public URL.
    callback_url: Option<String>,
}

impl Telesign {
    /// Validates `config` (keys named under `providers.{id}`) and builds the account's client.
    pub fn try_new(
        id: ProviderId,
        config: &TelesignConfig,
        context: &BuildContext,
    ) -> Result<Telesign, ConfigError> {
        let key_prefix = format!("providers.{id}");
        let validated = config.validated(&key_prefix)?;
        let callback_url = context
            .checked_callback_base(&key_prefix)?
            .map(|base| format!("{base}{}", receipt::STATUS_PATH));
        Ok(Telesign {
            client: crate::http::client(&key_prefix, config.connect_timeout())?,
            id,
            customer_id: config.customer_id.clone(),
            api_key: config.api_key.clone(),
            signing_key: validated.signing_key,
            auth: config.auth,
            senders: validated.senders,
            voice: config.voice.clone(),
            timeout: config.timeout(),
            base_url: validated.base_url,
            callback_url,
        })
    }

    /// Authenticates and sends one request to `resource` with `body` (form, for POST).
    async fn exchange(
        &self,
        method: reqwest::Method,
        resource: &str,
        body: Option<String>,
    ) -> Result<RawAnswer, ProviderError> {
        let url = format!("{}{resource}", self.base_url);
        let content_type = if body.is_some() { request::FORM } else { "" };
        let date = httpdate::fmt_http_date(SystemTime::now());
        let nonce = request::nonce();
        let mut builder = self
            .client
            .request(method.clone(), &url)
            .header("Date", &date)
            .header("x-ts-nonce", &nonce);
        builder = match self.auth {
            TelesignAuth::Hmac => {
                let signing = request::Signing {
                    method: method.as_str(),
                    content_type,
                    date: &date,
                    nonce: &nonce,
                    body: body.as_deref().unwrap_or(""),
                    resource,
                };
                builder.header("x-ts-auth-method", request::HMAC_METHOD).header(
                    reqwest::header::AUTHORIZATION,
                    signing.authorization(&self.customer_id, &self.signing_key.0),
                )
            }
            TelesignAuth::Basic => builder
                .header("x-ts-auth-method", "Basic")
                .basic_auth(&self.customer_id, Some(self.api_key.expose_secret().trim())),
        };
        if let Some(body) = body {
            builder = builder.header(reqwest::header::CONTENT_TYPE, content_type).body(body);
        }
        crate::http::exchange(KIND, builder, self.timeout).await
    }
}

#[async_trait]
impl Provider for Telesign {
    crate::provider_identity!();

    fn supports(&self, channel: Channel) -> bool {
        // Sender ids are optional and Telesign picks the caller id: every channel works.
        let _ = channel;
        true
    }

    /// Failures are not logged here: dispatch logs every attempt's outcome once.
    async fn send(&self, message: &OutboundMessage) -> Result<Accepted, ProviderError> {
        let (resource, form) = match message.channel {
            Channel::Sms => {
                let sender =
                    self.senders.for_destination(message.destination.country(), Channel::Sms);
                (
                    MESSAGING_PATH,
                    request::messaging_form(message, sender, self.callback_url.as_deref()),
                )
            }
            Channel::Voice => (VOICE_PATH, request::voice_form(message, self.voice.as_deref())),
        };
        let answer = self.exchange(reqwest::Method::POST, resource, Some(form)).await?;
        classify::classify_send(&answer, SystemTime::now())
    }

    async fn probe(&self) -> Result<(), ProviderError> {
        // A well-formed reference id that no transaction has: authenticates, sends nothing.
        let resource = format!("{MESSAGING_PATH}/{}", "0".repeat(32));
        let answer = self.exchange(reqwest::Method::GET, &resource, None).await?;
        classify::classify_probe(&answer, SystemTime::now())
    }

    async fn handle_callback(&self, callback: &Callback) -> Result<CallbackReply, CallbackError> {
        let receipt = receipt::status(callback, &self.customer_id, &self.signing_key.0)?;
        Ok(CallbackReply::receipts(vec![receipt]))
    }
}
