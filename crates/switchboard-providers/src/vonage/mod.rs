//! Vonage: SMS through the SMS API (`POST /sms/json`) and calls through the Voice API
//! (`POST /v1/calls` with an inline NCCO), with delivery receipts.
//!
//! - `config`: the operator's settings ([`VonageConfig`]) and their validation
//! - `request`: the SMS form and its `sig`, the call body, the NCCO, the JWT claims
//! - `classify`: Vonage's answers to acceptance or a classified error, receipts to states
//! - `receipt`: verifying and reading the callbacks Vonage makes
//!
//! Auth differs per API: SMS carries `api_key` and `api_secret` in the form (or a `sig` made
//! with the signature secret); Voice takes `Authorization: Bearer` with an RS256 JWT signed by
//! the application's private key, fresh for every call.
//!
//! Receipts are asked for only when the server has a public callback URL *and* the account has
//! a signature secret: Vonage signs SMS receipts (`sig`) and Voice webhooks (an HS256 JWT) with
//! that secret, and an unsigned receipt could be forged by anyone who learns the URL.
//!
//! Nothing here retries: a retry after a timeout may put a second SMS on a real person's phone,
//! so that decision belongs to dispatch.

mod classify;
mod config;
mod receipt;
mod request;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::{ExposeSecret, SecretString};
use switchboard_core::{Channel, ConfigError, ErrorClass, OutboundMessage, ProviderId};

pub use self::config::{SignatureMethod, VonageConfig};
use self::config::{SmsAccount, SmsAuth};
use self::request::{ApplicationClaims, CallSettings, JWT_LIFETIME_S};
use crate::senders::Senders;
use crate::{
    Accepted, BuildContext, Callback, CallbackError, CallbackReply, Provider, ProviderError,
};

/// The registry's kind string (`kinds!` in `lib.rs` gives every adapter its `KIND`).
const KIND: &str = Vonage::KIND;

/// The subpaths below `callback_base` that receipts are asked for at.
const SMS_RECEIPT_PATH: &str = "/sms";
const VOICE_EVENT_PATH: &str = "/voice";

/// One Vonage account.
pub struct Vonage {
    id: ProviderId,
    client: reqwest::Client,
    sms: Option<SmsAccount>,
    voice: Option<VoiceKey>,
    senders: Senders,
    signature: Option<(SecretString, SignatureMethod)>,
    /// `{callback_base}` when receipts are wanted (and verifiable).
    callback_base: Option<String>,
    sms_ttl_ms: Option<u32>,
    ringing_timer_s: u32,
    length_timer_s: u32,
    timeout: Duration,
    sms_url: String,
    balance_url: String,
    calls_url: String,
}

/// The parsed application key. `EncodingKey` has no `Debug`, which keeps it out of logs.
struct VoiceKey {
    application_id: String,
    key: EncodingKey,
}

impl std::fmt::Debug for Vonage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vonage")
            .field("id", &self.id)
            .field("sms", &self.sms)
            .field("application_id", &self.voice.as_ref().map(|voice| &voice.application_id))
            .field("senders", &self.senders)
            .field("callback_base", &self.callback_base)
            .finish_non_exhaustive()
    }
}

impl Vonage {
    /// Validates `config` (keys named under `providers.{id}`), reads and parses the private key
    /// and builds the account's client.
    pub fn try_new(
        id: ProviderId,
        config: &VonageConfig,
        context: &BuildContext,
    ) -> Result<Vonage, ConfigError> {
        let key_prefix = format!("providers.{id}");
        config.validate(&key_prefix)?;
        let voice = match config.voice_account(&key_prefix)? {
            Some(account) => {
                let key =
                    EncodingKey::from_rsa_pem(account.private_key_pem.expose_secret().as_bytes())
                        .map_err(|_| {
                        ConfigError::invalid(
                            format!("{key_prefix}.private_key"),
                            "is not an RSA private key in PEM form",
                        )
                    })?;
                Some(VoiceKey { application_id: account.application_id, key })
            }
            None => None,
        };
        let signature =
            config.signature_secret.clone().map(|secret| (secret, config.signature_method));
        let callback_base = context.callback_base.clone().filter(|_| signature.is_some());
        if context.callback_base.is_some() && callback_base.is_none() {
            tracing::info!(provider = %id, "vonage receipts need signature_secret; not asking for them");
        }
        let sms_base = crate::url::check_base_url(
            &format!("{key_prefix}.sms_base_url"),
            &config.sms_base_url,
        )?;
        let voice_base = crate::url::check_base_url(
            &format!("{key_prefix}.voice_base_url"),
            &config.voice_base_url,
        )?;
        Ok(Vonage {
            client: crate::http::client(&key_prefix, config.connect_timeout())?,
            id,
            sms: config.sms_account(),
            voice,
            senders: config.senders(&key_prefix)?,
            signature,
            callback_base,
            sms_ttl_ms: config.sms_ttl_ms,
            ringing_timer_s: config.ringing_timer_s,
            length_timer_s: config.length_timer_s,
            timeout: config.timeout(),
            sms_url: format!("{sms_base}/sms/json"),
            balance_url: format!("{sms_base}/account/get-balance"),
            calls_url: format!("{voice_base}/v1/calls"),
        })
    }

    fn unsupported(detail: &'static str) -> ProviderError {
        ProviderError::not_sent(KIND, ErrorClass::AuthConfig, detail)
    }

    /// A fresh application JWT.
    fn application_jwt(&self, voice: &VoiceKey) -> Result<String, ProviderError> {
        let iat = unix_now();
        let claims = ApplicationClaims {
            application_id: &voice.application_id,
            iat,
            exp: iat + JWT_LIFETIME_S,
            jti: crate::secret::random_uuid(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &voice.key)
            .map_err(|_| Self::unsupported("could not sign the application jwt"))
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_secs())
}

#[async_trait]
impl Provider for Vonage {
    crate::provider_identity!();

    fn supports(&self, channel: Channel) -> bool {
        let has_account = match channel {
            Channel::Sms => self.sms.is_some(),
            Channel::Voice => self.voice.is_some(),
        };
        has_account && self.senders.supports(channel)
    }

    /// Failures are not logged here: dispatch logs every attempt's outcome once.
    async fn send(&self, message: &OutboundMessage) -> Result<Accepted, ProviderError> {
        let country = message.destination.country();
        match message.channel {
            Channel::Sms => {
                let Some(account) = &self.sms else {
                    return Err(Self::unsupported("sms needs api_key"));
                };
                let Some(sender) = self.senders.for_destination(country, Channel::Sms) else {
                    return Err(Self::unsupported("no sms sender for this country"));
                };
                let callback =
                    self.callback_base.as_ref().map(|base| format!("{base}{SMS_RECEIPT_PATH}"));
                let form = request::sms_form(
                    account,
                    sender,
                    self.sms_ttl_ms,
                    callback.as_deref(),
                    message,
                    unix_now(),
                );
                let answer = crate::http::exchange(
                    KIND,
                    self.client.post(&self.sms_url).form(&form),
                    self.timeout,
                )
                .await?;
                classify::classify_sms(&answer, SystemTime::now())
            }
            Channel::Voice => {
                let Some(voice) = &self.voice else {
                    return Err(Self::unsupported("voice needs application_id and private_key"));
                };
                let Some(caller_id) = self.senders.for_destination(country, Channel::Voice) else {
                    return Err(Self::unsupported("no caller id for this country"));
                };
                let event_url =
                    self.callback_base.as_ref().map(|base| format!("{base}{VOICE_EVENT_PATH}"));
                let settings = CallSettings {
                    caller_id,
                    event_url: event_url.as_deref(),
                    ringing_timer_s: self.ringing_timer_s,
                    length_timer_s: self.length_timer_s,
                };
                let body = request::call_body(&settings, message);
                let token = self.application_jwt(voice)?;
                let request = self.client.post(&self.calls_url).bearer_auth(token).json(&body);
                let answer = crate::http::exchange(KIND, request, self.timeout).await?;
                classify::classify_call(&answer, SystemTime::now())
            }
        }
    }

    /// The account balance (Account API, Basic auth) when SMS has an `api_secret`, else a
    /// one-record call listing (Voice API, `GET /v1/calls?page_size=1`). An SMS-only account
    /// that signs instead of sending its secret has no documented cheap check; its probe
    /// answers without a request.
    async fn probe(&self) -> Result<(), ProviderError> {
        let request = match (&self.sms, &self.voice) {
            (Some(SmsAccount { api_key, auth: SmsAuth::Secret(secret) }), _) => {
                self.client.get(&self.balance_url).basic_auth(api_key, Some(secret.expose_secret()))
            }
            (_, Some(voice)) => self
                .client
                .get(&self.calls_url)
                .query(&[("page_size", "1")])
                .bearer_auth(self.application_jwt(voice)?),
            _ => return Ok(()),
        };
        let answer = crate::http::exchange(KIND, request, self.timeout).await?;
        classify::classify_probe(&answer, SystemTime::now())
    }

    async fn handle_callback(&self, callback: &Callback) -> Result<CallbackReply, CallbackError> {
        let Some((secret, method)) = &self.signature else {
            // Nothing Vonage sends us could be verified.
            return Err(CallbackError::BadSignature);
        };
        let receipts = match callback.subpath.as_str() {
            SMS_RECEIPT_PATH => receipt::sms_receipt(callback, secret.expose_secret(), *method)?,
            VOICE_EVENT_PATH => {
                let api_key = self.sms.as_ref().map(|sms| sms.api_key.as_str());
                receipt::call_event(callback, secret.expose_secret(), api_key)?
            }
            _ => return Err(CallbackError::NotFound),
        };
        Ok(CallbackReply::receipts(receipts))
    }
}
