//! Twilio Programmable Messaging and Voice (REST API 2010-04-01).
//!
//! SMS is one `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`; voice is one
//! `POST .../Calls.json` with inline TwiML that reads the code; the probe is
//! `GET /2010-04-01/Accounts/{AccountSid}.json`, which sends nothing. All three use HTTP Basic
//! auth (AccountSid, AuthToken) and form-encoded bodies.
//!
//! - `config`: the raw config struct ([`TwilioConfig`]) and its validation
//! - `request`: the form bodies and TwiML
//! - `classify`: Twilio's answer to acceptance or a classified error
//! - `sign`: `X-Twilio-Signature` on the requests Twilio makes to us
//! - `receipt`: status callbacks to receipts
//!
//! Status callbacks: when the server has a public URL (`BuildContext::callback_base`), every
//! message and call asks Twilio to POST its status to `{callback_base}/status`;
//! [`Provider::handle_callback`] verifies the signature with the auth token and reads the
//! receipt. Without a public URL nothing asks for callbacks.
//!
//! Every request runs under the configured timeout on one `reqwest::Client` per account, so
//! connections are reused across sends. Nothing here retries: a retry after a timeout may put a
//! second SMS on a real person's phone, so that decision belongs to dispatch.

mod classify;
mod config;
mod receipt;
mod request;
mod sign;

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use switchboard_core::{Channel, ConfigError, ErrorClass, OutboundMessage, ProviderId};

pub use self::config::TwilioConfig;
use self::request::SmsSender;
use crate::http::RawAnswer;
use crate::{
    Accepted, BuildContext, Callback, CallbackError, CallbackReply, Provider, ProviderError,
    Senders,
};

/// The registry's kind string (`kinds!` in `lib.rs` gives every adapter its `KIND`).
const KIND: &str = Twilio::KIND;

/// Where status callbacks go, below `callback_base`.
const STATUS_SUBPATH: &str = "/status";

/// One Twilio account.
#[derive(Debug)]
pub struct Twilio {
    id: ProviderId,
    client: reqwest::Client,
    auth_token: SecretString,
    senders: Senders,
    messaging_service_sid: Option<String>,
    /// `{callback_base}/status`, when the server has a public URL.
    status_callback: Option<String>,
    voice: Option<String>,
    validity_period_s: Option<u32>,
    timeout: Duration,
    /// The three URLs, parsed once: parsing a URL on every send was 2% of the hook's CPU.
    messages_url: reqwest::Url,
    calls_url: reqwest::Url,
    account_url: reqwest::Url,
    /// `Authorization: Basic …`, encoded once and marked sensitive (never printed by `Debug`).
    authorization: reqwest::header::HeaderValue,
}

impl Twilio {
    /// Validates `config` (keys named under `providers.{id}`) and builds the account's client,
    /// asking for status callbacks when `context` has a callback base.
    pub fn try_new(
        id: ProviderId,
        config: &TwilioConfig,
        context: &BuildContext,
    ) -> Result<Twilio, ConfigError> {
        let key_prefix = format!("providers.{id}");
        config.validate(&key_prefix)?;
        let senders = config.senders(&key_prefix)?;
        let base_url = config.base_url(&key_prefix)?;
        let client = crate::http::client(&key_prefix, config.connect_timeout())?;
        let account_root = format!("{base_url}/2010-04-01/Accounts/{}", config.account_sid);
        let url = |path: String| {
            reqwest::Url::parse(&path).map_err(|error| {
                ConfigError::invalid(format!("{key_prefix}.base_url"), error.to_string())
            })
        };
        Ok(Twilio {
            id,
            client,
            auth_token: config.auth_token.clone(),
            senders,
            messaging_service_sid: config.messaging_service_sid.clone(),
            status_callback: context
                .callback_base
                .as_deref()
                .map(|base| format!("{}{STATUS_SUBPATH}", base.trim_end_matches('/'))),
            voice: config.voice.clone(),
            validity_period_s: config.validity_period_s,
            timeout: config.timeout(),
            messages_url: url(format!("{account_root}/Messages.json"))?,
            calls_url: url(format!("{account_root}/Calls.json"))?,
            account_url: url(format!("{account_root}.json"))?,
            authorization: basic_authorization(&config.account_sid, &config.auth_token).map_err(
                |detail| ConfigError::invalid(format!("{key_prefix}.auth_token"), detail),
            )?,
        })
    }

    /// Sends `request` with auth and the timeout.
    async fn exchange(&self, request: reqwest::RequestBuilder) -> Result<RawAnswer, ProviderError> {
        let request = request
            .header(reqwest::header::AUTHORIZATION, self.authorization.clone())
            .timeout(self.timeout);
        crate::http::exchange(KIND, request, self.timeout).await
    }
}

/// HTTP Basic credentials as `reqwest`'s `basic_auth` writes them (RFC 7617), made once.
fn basic_authorization(
    account_sid: &str,
    auth_token: &SecretString,
) -> Result<reqwest::header::HeaderValue, &'static str> {
    use base64::Engine as _;
    let credentials = format!("{account_sid}:{}", auth_token.expose_secret());
    let encoded = base64::engine::general_purpose::STANDARD.encode(credentials);
    let mut value = reqwest::header::HeaderValue::try_from(format!("Basic {encoded}"))
        .map_err(|_| "cannot be sent in an Authorization header")?;
    value.set_sensitive(true);
    Ok(value)
}

/// No sender configured for this destination on this channel: nothing was sent, and another
/// provider may well have one.
fn no_sender(channel: Channel) -> ProviderError {
    let detail = match channel {
        Channel::Sms => "no sms sender for this destination (from, messaging_service_sid, senders)",
        Channel::Voice => "no caller id for this destination (an E.164 from, voice_from, senders)",
    };
    ProviderError::not_sent(KIND, ErrorClass::AuthConfig, detail)
}

#[async_trait]
impl Provider for Twilio {
    crate::provider_identity!();

    fn supports(&self, channel: Channel) -> bool {
        match channel {
            Channel::Sms => self.messaging_service_sid.is_some() || self.senders.supports(channel),
            Channel::Voice => self.senders.supports(channel),
        }
    }

    /// Failures are not logged here: dispatch logs every attempt's outcome once.
    async fn send(&self, message: &OutboundMessage) -> Result<Accepted, ProviderError> {
        let country = message.destination.country();
        let status_callback = self.status_callback.as_deref();
        let request = match message.channel {
            Channel::Sms => {
                let sender = match self.senders.for_destination(country, Channel::Sms) {
                    Some(from) => SmsSender::From(from),
                    None => match &self.messaging_service_sid {
                        Some(service) => SmsSender::MessagingService(service),
                        None => return Err(no_sender(Channel::Sms)),
                    },
                };
                let form =
                    request::message_form(sender, self.validity_period_s, status_callback, message);
                self.client.post(self.messages_url.clone()).form(&form)
            }
            Channel::Voice => {
                let Some(caller_id) = self.senders.for_destination(country, Channel::Voice) else {
                    return Err(no_sender(Channel::Voice));
                };
                let form =
                    request::call_form(caller_id, self.voice.as_deref(), status_callback, message);
                self.client.post(self.calls_url.clone()).form(&form)
            }
        };
        let answer = self.exchange(request).await?;
        classify::classify_send(&answer, SystemTime::now())
    }

    async fn probe(&self) -> Result<(), ProviderError> {
        let answer = self.exchange(self.client.get(self.account_url.clone())).await?;
        classify::classify_probe(&answer, SystemTime::now())
    }

    /// A status callback: verified against `X-Twilio-Signature` before anything is read from it.
    async fn handle_callback(&self, callback: &Callback) -> Result<CallbackReply, CallbackError> {
        if callback.subpath != STATUS_SUBPATH {
            return Err(CallbackError::NotFound);
        }
        if callback.method != "POST" {
            return Err(CallbackError::Malformed("status callbacks are POSTed".into()));
        }
        let signature = callback
            .headers
            .get("x-twilio-signature")
            .and_then(|value| value.to_str().ok())
            .ok_or(CallbackError::BadSignature)?;
        let params: Vec<(String, String)> = serde_urlencoded::from_bytes(&callback.body)
            .map_err(|_| CallbackError::Malformed("body is not a form".into()))?;
        let token = self.auth_token.expose_secret();
        if !sign::is_valid(token, &callback.url, &params, signature) {
            tracing::debug!(provider = %self.id, "twilio callback with a bad signature");
            return Err(CallbackError::BadSignature);
        }
        let receipt = receipt::parse(&params)?;
        Ok(CallbackReply::receipts(vec![receipt]))
    }
}
