//! Sinch: SMS through the REST "xms" API (`POST /xms/v1/{service_plan_id}/batches`, Bearer API
//! token) and calls through the Voice API (`POST /calling/v1/callouts`, a `ttsCallout`), with
//! delivery receipts.
//!
//! - `config`: the operator's settings ([`SinchConfig`]) and their validation
//! - `request`: the batch and callout bodies
//! - `sign`: Sinch's application signing (our call requests, Sinch's callbacks)
//! - `classify`: Sinch's answers to acceptance or a classified error, reports to states
//! - `receipt`: verifying and reading the callbacks Sinch makes
//!
//! Call requests are signed (`Authorization: Application key:signature`, `x-timestamp`) by
//! default: the spec's security scheme is Basic, which Sinch's docs call fit for prototypes
//! only, and the signing scheme is the one its callbacks use anyway; `voice_auth = "basic"`
//! switches to Basic.
//!
//! Receipts: SMS delivery reports go to `{callback_base}/sms/{callback_token}`. Sinch does not
//! sign them, so the secret token in the path is what authenticates them; without a token none
//! are asked for. Calls report through DiCE events, which Sinch sends, signed with the
//! application secret, to the application's callback URL as set in Sinch's dashboard (a
//! callout cannot name one): point it at `{callback_base}/voice`.
//!
//! Nothing here retries: a retry after a timeout may put a second SMS on a real person's phone,
//! so that decision belongs to dispatch.

mod classify;
mod config;
mod receipt;
mod request;
mod sign;

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use switchboard_core::{Channel, ConfigError, ErrorClass, OutboundMessage, ProviderId};

pub use self::config::{SinchConfig, VoiceAuth};
use crate::senders::Senders;
use crate::{
    Accepted, BuildContext, Callback, CallbackError, CallbackReply, Provider, ProviderError,
};

/// The registry's kind string (`kinds!` in `lib.rs` gives every adapter its `KIND`).
const KIND: &str = Sinch::KIND;

/// The subpaths below `callback_base`.
const SMS_REPORT_PATH: &str = "/sms/";
const VOICE_EVENT_PATH: &str = "/voice";

/// The `Content-Type` our signed call requests carry (and sign).
const JSON: &str = "application/json";

/// One Sinch account.
#[derive(Debug)]
pub struct Sinch {
    id: ProviderId,
    client: reqwest::Client,
    sms: Option<SmsAccount>,
    voice: Option<VoiceAccount>,
    senders: Senders,
    /// `{callback_base}/sms/{token}` when SMS receipts are wanted; secret, as it holds the token.
    sms_callback_url: Option<SecretString>,
    /// Whether calls ask for DiCE events (the server has a public callback URL).
    wants_call_events: bool,
    timeout: Duration,
}

#[derive(Debug)]
struct SmsAccount {
    api_token: SecretString,
    callback_token: Option<SecretString>,
    batches_url: String,
}

#[derive(Debug)]
struct VoiceAccount {
    application_key: String,
    application_secret: SecretString,
    auth: VoiceAuth,
    callouts_url: String,
    /// The path (and query) signed, as sent.
    callouts_path: String,
}

impl Sinch {
    /// Validates `config` (keys named under `providers.{id}`) and builds the account's client.
    pub fn try_new(
        id: ProviderId,
        config: &SinchConfig,
        context: &BuildContext,
    ) -> Result<Sinch, ConfigError> {
        let key_prefix = format!("providers.{id}");
        config.validate(&key_prefix)?;
        let sms_base = crate::url::check_base_url(
            &format!("{key_prefix}.sms_base_url"),
            &config.sms_base_url,
        )?;
        let voice_base = crate::url::check_base_url(
            &format!("{key_prefix}.voice_base_url"),
            &config.voice_base_url,
        )?;
        let sms = match (&config.service_plan_id, &config.api_token) {
            (Some(plan), Some(token)) => Some(SmsAccount {
                api_token: token.clone(),
                callback_token: config.callback_token.clone(),
                batches_url: format!("{sms_base}/xms/v1/{plan}/batches"),
            }),
            _ => None,
        };
        let voice = match (&config.application_key, &config.application_secret) {
            (Some(key), Some(secret)) => {
                let callouts_url = format!("{voice_base}/calling/v1/callouts");
                let callouts_path = reqwest::Url::parse(&callouts_url)
                    .map(|url| url.path().to_owned())
                    .map_err(|_| {
                        ConfigError::invalid(
                            format!("{key_prefix}.voice_base_url"),
                            "must be a URL",
                        )
                    })?;
                Some(VoiceAccount {
                    application_key: key.clone(),
                    application_secret: secret.clone(),
                    auth: config.voice_auth,
                    callouts_url,
                    callouts_path,
                })
            }
            _ => None,
        };
        let sms_callback_url = match (
            &context.callback_base,
            sms.as_ref().and_then(|sms| sms.callback_token.as_ref()),
        ) {
            (Some(base), Some(token)) => Some(SecretString::from(format!(
                "{base}{SMS_REPORT_PATH}{}",
                token.expose_secret()
            ))),
            (Some(_), None) if sms.is_some() => {
                tracing::info!(provider = %id, "sinch sms receipts need callback_token; not asking for them");
                None
            }
            _ => None,
        };
        Ok(Sinch {
            client: crate::http::client(&key_prefix, config.connect_timeout())?,
            id,
            sms,
            voice,
            senders: config.senders(&key_prefix)?,
            sms_callback_url,
            wants_call_events: context.callback_base.is_some(),
            timeout: config.timeout(),
        })
    }

    fn unsupported(detail: &'static str) -> ProviderError {
        ProviderError::not_sent(KIND, ErrorClass::AuthConfig, detail)
    }
}

/// Adds Basic auth, or the application signature over exactly the bytes sent.
fn authorise_callout(
    request: reqwest::RequestBuilder,
    voice: &VoiceAccount,
    body: &[u8],
) -> Result<reqwest::RequestBuilder, ProviderError> {
    let secret = voice.application_secret.expose_secret();
    match voice.auth {
        VoiceAuth::Basic => Ok(request.basic_auth(&voice.application_key, Some(secret))),
        VoiceAuth::Signed => {
            let timestamp = sign::timestamp_now();
            let text = sign::string_to_sign("POST", body, JSON, &timestamp, &voice.callouts_path);
            let signature = sign::signature(secret, &text)
                .ok_or_else(|| Sinch::unsupported("application_secret is not base64"))?;
            Ok(request
                .header(
                    reqwest::header::AUTHORIZATION,
                    format!("Application {}:{signature}", voice.application_key),
                )
                .header("x-timestamp", timestamp))
        }
    }
}

#[async_trait]
impl Provider for Sinch {
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
                let Some(sms) = &self.sms else {
                    return Err(Self::unsupported("sms needs service_plan_id and api_token"));
                };
                let Some(sender) = self.senders.for_destination(country, Channel::Sms) else {
                    return Err(Self::unsupported("no sms sender for this country"));
                };
                let body = request::batch_body(
                    sender,
                    self.sms_callback_url.as_ref().map(|url| url.expose_secret()),
                    message,
                );
                let request = self
                    .client
                    .post(&sms.batches_url)
                    .bearer_auth(sms.api_token.expose_secret())
                    .json(&body);
                let answer = crate::http::exchange(KIND, request, self.timeout).await?;
                classify::classify_batch(&answer, SystemTime::now())
            }
            Channel::Voice => {
                let Some(voice) = &self.voice else {
                    return Err(Self::unsupported(
                        "voice needs application_key and application_secret",
                    ));
                };
                let Some(caller_id) = self.senders.for_destination(country, Channel::Voice) else {
                    return Err(Self::unsupported("no caller id for this country"));
                };
                let body = request::callout_body(caller_id, self.wants_call_events, message);
                let bytes = serde_json::to_vec(&body)
                    .map_err(|_| Self::unsupported("could not encode the callout"))?;
                let request = self.client.post(&voice.callouts_url);
                let request = authorise_callout(request, voice, &bytes)?
                    .header(reqwest::header::CONTENT_TYPE, JSON)
                    .body(bytes);
                let answer = crate::http::exchange(KIND, request, self.timeout).await?;
                classify::classify_callout(&answer, SystemTime::now())
            }
        }
    }

    /// A one-batch listing of the service plan (`GET .../batches?page_size=1`). The Voice API
    /// has no cheap read on the callouts host, so a voice-only account answers without a
    /// request.
    async fn probe(&self) -> Result<(), ProviderError> {
        let Some(sms) = &self.sms else {
            return Ok(());
        };
        let request = self
            .client
            .get(&sms.batches_url)
            .query(&[("page_size", "1")])
            .bearer_auth(sms.api_token.expose_secret());
        let answer = crate::http::exchange(KIND, request, self.timeout).await?;
        classify::classify_probe(&answer, SystemTime::now())
    }

    async fn handle_callback(&self, callback: &Callback) -> Result<CallbackReply, CallbackError> {
        if let Some(token) = callback.subpath.strip_prefix(SMS_REPORT_PATH) {
            let expected = self.sms.as_ref().and_then(|sms| sms.callback_token.as_ref());
            crate::secret::check_path_token(token, expected)?;
            return Ok(CallbackReply::receipts(receipt::delivery_report(callback)?));
        }
        if callback.subpath == VOICE_EVENT_PATH {
            let Some(voice) = &self.voice else {
                return Err(CallbackError::BadSignature);
            };
            receipt::verify_signed(
                callback,
                &voice.application_key,
                voice.application_secret.expose_secret(),
                SystemTime::now(),
            )?;
            return Ok(CallbackReply::receipts(receipt::call_event(callback)?));
        }
        Err(CallbackError::NotFound)
    }
}
