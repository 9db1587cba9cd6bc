//! Plivo Messaging (`POST /v1/Account/{auth_id}/Message/`) and Voice
//! (`POST /v1/Account/{auth_id}/Call/`), JSON bodies with HTTP Basic auth (Auth ID, Auth Token).
//! The probe is `GET /v1/Account/{auth_id}/`, which sends nothing.
//!
//! A Plivo call carries no script: Plivo fetches one from the call's `answer_url` when the
//! callee answers. switchboard serves that URL itself, through the server's callback route at
//! `{callback_base}/answer/{token}` (see `answers`), so **voice needs `server.public_base_url`**:
//! without a callback base the account reports `supports(Voice) == false` (SMS still works) and
//! a warning is logged at load if a caller id was configured. This is a capability, not a
//! config error, so one Plivo account can serve SMS in a deployment without a public URL.
//!
//! Every request Plivo makes to us (answer fetch, SMS status, call hangup) must carry a valid V3
//! signature (`signature`); a bad one is refused before anything else is looked at, so it never
//! serves (or burns) a call's script. Receipts: SMS status at `{callback_base}/status`
//! (`MessageUUID`, `Status`, `ErrorCode`), calls at `{callback_base}/hangup` (`RequestUUID`,
//! the id `send` returned, and `CallStatus`).
//!
//! - `config`: [`PlivoConfig`] and its validation
//! - `request`: the message and call bodies, and the call's answer XML
//! - `classify`: answers to acceptance or a classified error, callback statuses to states
//! - `sign`: Plivo's V3 signature on the requests it makes to us
//! - `receipt`: those requests: the signature check first, then the status and hangup receipts
//! - `answers`: the call scripts waiting for Plivo's signed fetch of the answer URL (Plivo's
//!   own: no other provider fetches its script from us). When replicas share state the server
//!   hands the adapter a [`SharedScripts`] store: each script is kept there instead (in the
//!   book only when the store cannot take it), so the fetch may land on any replica, and is
//!   served once, wherever it lands.

mod answers;
mod classify;
mod config;
mod receipt;
mod request;
mod sign;

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use switchboard_core::{Certainty, Channel, ConfigError, ErrorClass, OutboundMessage, ProviderId};

use self::answers::AnswerBook;
use self::classify::Created;
pub use self::config::PlivoConfig;
use crate::senders::Senders;
use crate::{
    Accepted, BuildContext, Callback, CallbackError, CallbackReply, Provider, ProviderError,
    SharedScripts,
};

/// The registry's kind string (`kinds!` in `lib.rs` gives every adapter its `KIND`).
const KIND: &str = Plivo::KIND;

/// One Plivo account.
#[derive(Debug)]
pub struct Plivo {
    id: ProviderId,
    client: reqwest::Client,
    auth_id: String,
    auth_token: SecretString,
    senders: Senders,
    voice: String,
    message_expiry_s: Option<u32>,
    ring_timeout_s: Option<u32>,
    timeout: Duration,
    messages_url: String,
    calls_url: String,
    account_url: String,
    /// `{public_base_url}/callbacks/{id}`; voice is off without it.
    callback_base: Option<String>,
    answers: AnswerBook,
    /// How long a script waits for its fetch (`answer_ttl_s`).
    answer_ttl: Duration,
    /// The server's shared store, when replicas share state: a fetch may land on any of them.
    shared_answers: OnceLock<Arc<dyn SharedScripts>>,
}

impl Plivo {
    /// Validates `config` (keys named under `providers.{id}`) and builds the account's client.
    pub fn try_new(
        id: ProviderId,
        config: &PlivoConfig,
        context: &BuildContext,
    ) -> Result<Plivo, ConfigError> {
        let key_prefix = format!("providers.{id}");
        let validated = config.validated(&key_prefix)?;
        let callback_base = context.checked_callback_base(&key_prefix)?;
        if callback_base.is_none() && validated.senders.supports(Channel::Voice) {
            tracing::warn!(
                provider = %id,
                "plivo voice is off: calls need server.public_base_url to serve their answer URL",
            );
        }
        let account_root = format!("{}/v1/Account/{}", validated.base_url, config.auth_id);
        Ok(Plivo {
            client: crate::http::client(&key_prefix, config.connect_timeout())?,
            id,
            auth_id: config.auth_id.clone(),
            auth_token: config.auth_token.clone(),
            senders: validated.senders,
            voice: config.voice.clone(),
            message_expiry_s: config.message_expiry_s,
            ring_timeout_s: config.ring_timeout_s,
            timeout: config.timeout(),
            messages_url: format!("{account_root}/Message/"),
            calls_url: format!("{account_root}/Call/"),
            account_url: format!("{account_root}/"),
            callback_base,
            answers: AnswerBook::new(
                Duration::from_secs(config.answer_ttl_s),
                config.max_pending_calls,
            ),
            answer_ttl: Duration::from_secs(config.answer_ttl_s),
            shared_answers: OnceLock::new(),
        })
    }

    async fn post(
        &self,
        url: &str,
        body: &serde_json::Value,
        created: Created,
    ) -> Result<Accepted, ProviderError> {
        let request = self
            .client
            .post(url)
            .basic_auth(&self.auth_id, Some(self.auth_token.expose_secret()))
            .json(body);
        let answer = crate::http::exchange(KIND, request, self.timeout).await?;
        classify::classify_send(&answer, created, SystemTime::now())
    }
}

#[async_trait]
impl Provider for Plivo {
    crate::provider_identity!();

    fn supports(&self, channel: Channel) -> bool {
        match channel {
            Channel::Sms => self.senders.supports(Channel::Sms),
            Channel::Voice => self.callback_base.is_some() && self.senders.supports(Channel::Voice),
        }
    }

    /// Failures are not logged here: dispatch logs every attempt's outcome once.
    async fn send(&self, message: &OutboundMessage) -> Result<Accepted, ProviderError> {
        let country = message.destination.country();
        let Some(sender) = self.senders.for_destination(country, message.channel) else {
            return Err(ProviderError::not_sent(
                KIND,
                ErrorClass::AuthConfig,
                format!("no {} sender for {country}", message.channel),
            ));
        };
        match message.channel {
            Channel::Sms => {
                let status_url = self.callback_base.as_ref().map(|base| format!("{base}/status"));
                let body = request::message_body(
                    message,
                    sender,
                    self.message_expiry_s,
                    status_url.as_deref(),
                );
                self.post(&self.messages_url, &body, Created::Message).await
            }
            Channel::Voice => {
                let Some(base) = &self.callback_base else {
                    return Err(ProviderError::not_sent(
                        KIND,
                        ErrorClass::AuthConfig,
                        "voice needs server.public_base_url for the answer URL",
                    ));
                };
                let xml = request::answer_xml(message, &self.voice);
                let shared = self.shared_answers.get().map(|scripts| (scripts, xml.clone()));
                let token = self.answers.insert(xml, Instant::now()).map_err(|_| {
                    ProviderError::not_sent(
                        KIND,
                        ErrorClass::Transient,
                        "too many calls awaiting their answer fetch",
                    )
                })?;
                // Shared, it is served by whichever replica Plivo's fetch lands on, and only
                // there; kept here only when the shared store could not take it.
                if let Some((scripts, xml)) = &shared
                    && scripts.keep(&token, xml, self.answer_ttl).await
                {
                    self.answers.remove(&token);
                }
                let answer_url = format!("{base}/answer/{token}");
                let hangup_url = format!("{base}/hangup");
                let body = request::call_body(
                    message,
                    sender,
                    &answer_url,
                    &hangup_url,
                    self.ring_timeout_s,
                );
                let outcome = self.post(&self.calls_url, &body, Created::Call).await;
                // A call that certainly was not placed will never fetch its script; one that may
                // have been placed still might, so its script stays until it expires.
                if outcome.as_ref().is_err_and(|error| error.certainty == Certainty::NotSent) {
                    self.answers.remove(&token);
                    if let Some((scripts, _)) = &shared {
                        scripts.forget(&token);
                    }
                }
                outcome
            }
        }
    }

    async fn probe(&self) -> Result<(), ProviderError> {
        let request = self
            .client
            .get(&self.account_url)
            .basic_auth(&self.auth_id, Some(self.auth_token.expose_secret()));
        let answer = crate::http::exchange(KIND, request, self.timeout).await?;
        classify::classify_probe(&answer, SystemTime::now())
    }

    async fn handle_callback(&self, callback: &Callback) -> Result<CallbackReply, CallbackError> {
        let subpath = callback.subpath.as_str();
        let is_known =
            subpath == "/status" || subpath == "/hangup" || subpath.starts_with("/answer/");
        if !is_known {
            return Err(CallbackError::NotFound);
        }
        // The signature first: nothing about a forged request is looked up or consumed.
        let params = receipt::verified_params(&self.auth_token, callback)?;
        if let Some(token) = subpath.strip_prefix("/answer/") {
            let xml = match (self.answers.take(token, Instant::now()), self.shared_answers.get()) {
                // Kept here because sharing it failed; a shared copy that landed after all must
                // not serve a second fetch elsewhere.
                (Some(xml), Some(scripts)) => {
                    scripts.forget(token);
                    xml
                }
                (Some(xml), None) => xml,
                // Shared (by this replica or another): taken once, fleet-wide.
                (None, Some(scripts)) => {
                    scripts.take(token).await.ok_or(CallbackError::NotFound)?
                }
                (None, None) => return Err(CallbackError::NotFound),
            };
            return Ok(CallbackReply {
                receipts: Vec::new(),
                status: 200,
                content_type: "application/xml",
                body: xml.expose().to_owned(),
            });
        }
        let receipt = if subpath == "/status" {
            receipt::message_receipt(&params)?
        } else {
            receipt::call_receipt(&params)?
        };
        Ok(CallbackReply::receipts(vec![receipt]))
    }

    fn share_scripts(&self, scripts: Arc<dyn SharedScripts>) {
        // Set once: a reload builds a new adapter, which is handed the store again.
        let _ = self.shared_answers.set(scripts);
    }
}
