//! Infobip SMS (`POST /sms/3/messages`) and voice text-to-speech (`POST /tts/3/advanced`), on
//! the account's own API host, authenticated with `Authorization: App <api key>`. The probe is
//! `GET /sms/3/logs?limit=1`: it reads a log, has no side effect (unlike the reports endpoints,
//! which hand each report out once) and sends nothing.
//!
//! Delivery reports: Infobip does not sign them (its OpenAPI webhooks carry no signature), so
//! anyone who learns the URL could forge one. Reports are therefore requested only when the
//! operator configures `callback_token`, a random secret that becomes part of the report URL
//! (`{callback_base}/reports/{token}`); a report on any other path is refused as
//! [`CallbackError::BadSignature`]. Keep callback paths out of access logs.
//!
//! - `config`: [`InfobipConfig`] and its validation
//! - `request`: the JSON bodies
//! - `classify`: answers
//! - `receipt`: delivery reports

mod classify;
mod config;
mod receipt;
mod request;

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use switchboard_core::{Channel, ConfigError, OutboundMessage, ProviderId};

pub use self::config::InfobipConfig;
use crate::senders::Senders;
use crate::{
    Accepted, BuildContext, Callback, CallbackError, CallbackReply, Provider, ProviderError,
};

/// The registry's kind string (`kinds!` in `lib.rs` gives every adapter its `KIND`).
const KIND: &str = Infobip::KIND;

/// `send-sms-messages`.
pub const SMS_PATH: &str = "/sms/3/messages";
/// `send-advanced-voice-tts`.
pub const VOICE_PATH: &str = "/tts/3/advanced";
/// `get-outbound-sms-message-logs-v3`, the probe.
pub const PROBE_PATH: &str = "/sms/3/logs";

/// One Infobip account.
#[derive(Debug)]
pub struct Infobip {
    id: ProviderId,
    client: reqwest::Client,
    api_key: SecretString,
    senders: Senders,
    voice: Option<String>,
    validity_period_min: Option<u32>,
    timeout: Duration,
    base_url: String,
    /// `{callback_base}/reports/{token}`: secret, so never printed.
    report_url: Option<SecretString>,
    /// The token alone, to check report paths against.
    callback_token: Option<SecretString>,
}

impl Infobip {
    /// Validates `config` (keys named under `providers.{id}`) and builds the account's client.
    pub fn try_new(
        id: ProviderId,
        config: &InfobipConfig,
        context: &BuildContext,
    ) -> Result<Infobip, ConfigError> {
        let key_prefix = format!("providers.{id}");
        let validated = config.validated(&key_prefix)?;
        let callback_base = context.checked_callback_base(&key_prefix)?;
        let report_url = match (&callback_base, &config.callback_token) {
            (Some(base), Some(token)) => Some(SecretString::from(format!(
                "{base}{}{}",
                receipt::REPORT_PATH,
                token.expose_secret()
            ))),
            _ => None,
        };
        Ok(Infobip {
            client: crate::http::client(&key_prefix, config.connect_timeout())?,
            id,
            api_key: config.api_key.clone(),
            senders: validated.senders,
            voice: config.voice.clone(),
            validity_period_min: config.validity_period_min,
            timeout: config.timeout(),
            base_url: validated.base_url,
            report_url,
            callback_token: config.callback_token.clone(),
        })
    }

    fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        request
            .header(reqwest::header::AUTHORIZATION, format!("App {}", self.api_key.expose_secret()))
            .header(reqwest::header::ACCEPT, "application/json")
    }
}

#[async_trait]
impl Provider for Infobip {
    crate::provider_identity!();

    fn supports(&self, channel: Channel) -> bool {
        // Senders are optional on both channels: Infobip falls back to the account's defaults.
        let _ = channel;
        true
    }

    /// Failures are not logged here: dispatch logs every attempt's outcome once.
    async fn send(&self, message: &OutboundMessage) -> Result<Accepted, ProviderError> {
        let country = message.destination.country();
        let report_url = self.report_url.as_ref().map(ExposeSecret::expose_secret);
        let (path, body) = match message.channel {
            Channel::Sms => (
                SMS_PATH,
                request::sms_body(
                    message,
                    self.senders.for_destination(country, Channel::Sms),
                    self.validity_period_min,
                    report_url,
                ),
            ),
            Channel::Voice => (
                VOICE_PATH,
                request::voice_body(
                    message,
                    self.senders.for_destination(country, Channel::Voice),
                    self.voice.as_deref(),
                    self.validity_period_min,
                    report_url,
                ),
            ),
        };
        let request =
            self.authorized(self.client.post(format!("{}{path}", self.base_url))).json(&body);
        let answer = crate::http::exchange(KIND, request, self.timeout).await?;
        classify::classify_send(&answer, SystemTime::now())
    }

    async fn probe(&self) -> Result<(), ProviderError> {
        let url = format!("{}{PROBE_PATH}?limit=1", self.base_url);
        let answer =
            crate::http::exchange(KIND, self.authorized(self.client.get(url)), self.timeout)
                .await?;
        classify::classify_probe(&answer, SystemTime::now())
    }

    async fn handle_callback(&self, callback: &Callback) -> Result<CallbackReply, CallbackError> {
        Ok(CallbackReply::receipts(receipt::report(callback, self.callback_token.as_ref())?))
    }
}
