//! AWS End User Messaging SMS and Voice v2 (`pinpoint-sms-voice-v2`): `SendTextMessage` and
//! `SendVoiceMessage` over the awsJson1_0 protocol, signed with SigV4.
//!
//! - `config`: the config struct ([`AwsSmsVoiceConfig`]), its validation and the credentials
//! - `request`: the JSON bodies and the SSML call script
//! - `sign`: SigV4 through `aws-sigv4`
//! - `classify`: AWS's answer to acceptance or a classified error
//!
//! Receipts: AWS sends delivery events to a configuration set's destinations (CloudWatch,
//! Firehose, SNS, EventBridge), never back to the sender's URL, so this adapter keeps the
//! default [`Provider::handle_callback`] (unsupported). `configuration_set_name` routes the
//! events wherever the operator collects them.
//!
//! The probe is `DescribeAccountAttributes`: signed like a send, so it proves the credentials,
//! the region and the endpoint, and never sends a message.

mod classify;
mod config;
mod request;
mod sign;

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use switchboard_core::{Channel, ConfigError, ErrorClass, OutboundMessage, ProviderId};

pub use self::config::AwsSmsVoiceConfig;
use self::request::Options;
use self::sign::Signer;
use crate::http::RawAnswer;
use crate::{Accepted, BuildContext, Provider, ProviderError, Senders};

/// The registry's kind string (`kinds!` in `lib.rs` gives every adapter its `KIND`).
const KIND: &str = AwsSmsVoice::KIND;

/// `targetPrefix` in the model.
const TARGET_PREFIX: &str = "PinpointSMSVoiceV2";

/// awsJson1_0.
const CONTENT_TYPE: &str = "application/x-amz-json-1.0";

/// One AWS account in one region.
#[derive(Debug)]
pub struct AwsSmsVoice {
    id: ProviderId,
    client: reqwest::Client,
    signer: Signer,
    /// The endpoint URL (`https://sms-voice.us-east-1.amazonaws.com/`).
    url: reqwest::Url,
    /// The `host` header value the request will carry (host, and port when not the default).
    host: String,
    senders: Senders,
    origination_identity: Option<String>,
    options: Options,
    timeout: Duration,
}

impl AwsSmsVoice {
    /// Validates `config` (keys named under `providers.{id}`), resolves credentials from the
    /// config or the process environment, and builds the client. `context` is unused: AWS has
    /// no callbacks (delivery events go to the configuration set's destinations).
    pub fn try_new(
        id: ProviderId,
        config: &AwsSmsVoiceConfig,
        context: &BuildContext,
    ) -> Result<AwsSmsVoice, ConfigError> {
        AwsSmsVoice::try_new_with_env(id, config, context, |name| std::env::var(name).ok())
    }

    /// As [`AwsSmsVoice::try_new`], reading environment variables through `env` (tests pass a
    /// fixed environment instead of the process's).
    pub fn try_new_with_env(
        id: ProviderId,
        config: &AwsSmsVoiceConfig,
        context: &BuildContext,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<AwsSmsVoice, ConfigError> {
        let _ = context;
        let key_prefix = format!("providers.{id}");
        config.validate(&key_prefix)?;
        let credentials = config.credentials(&key_prefix, env)?;
        let endpoint_key = format!("{key_prefix}.endpoint_url");
        let url = reqwest::Url::parse(&format!("{}/", config.endpoint(&key_prefix)?))
            .map_err(|_| ConfigError::invalid(&endpoint_key, "must be a URL"))?;
        let host = match (url.host_str(), url.port()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_owned(),
            (None, _) => return Err(ConfigError::invalid(endpoint_key, "must have a host")),
        };
        Ok(AwsSmsVoice {
            client: crate::http::client(&key_prefix, config.connect_timeout())?,
            signer: Signer::new(credentials, config.region.clone()),
            url,
            host,
            senders: config.senders(&key_prefix)?,
            origination_identity: config.origination_identity.clone(),
            options: Options {
                configuration_set_name: config.configuration_set_name.clone(),
                max_price: config.max_price.clone(),
                max_price_per_minute: config.max_price_per_minute.clone(),
                time_to_live_s: config.time_to_live_s,
                voice_id: config.voice_id.clone(),
            },
            timeout: config.timeout(),
            id,
        })
    }

    /// One signed awsJson1_0 call of `operation`.
    async fn call(
        &self,
        operation: &str,
        body: &serde_json::Value,
    ) -> Result<RawAnswer, ProviderError> {
        let body = serde_json::to_vec(body).map_err(|_| {
            ProviderError::not_sent(KIND, ErrorClass::AuthConfig, "request could not be encoded")
        })?;
        let target = format!("{TARGET_PREFIX}.{operation}");
        let headers = [
            ("content-type", CONTENT_TYPE),
            ("host", self.host.as_str()),
            ("x-amz-target", &target),
        ];
        let signed = self
            .signer
            .sign(self.url.as_str(), &headers, &body, SystemTime::now())
            .map_err(|_| {
                ProviderError::not_sent(KIND, ErrorClass::AuthConfig, "request could not be signed")
            })?;
        let mut request = self
            .client
            .post(self.url.clone())
            .header("content-type", CONTENT_TYPE)
            .header("x-amz-target", &target)
            .timeout(self.timeout)
            .body(body);
        for (name, value) in signed {
            request = request.header(name, value);
        }
        crate::http::exchange(KIND, request, self.timeout).await
    }
}

#[async_trait]
impl Provider for AwsSmsVoice {
    crate::provider_identity!();

    fn supports(&self, channel: Channel) -> bool {
        match channel {
            // Without an identity AWS picks one of the account's.
            Channel::Sms => true,
            Channel::Voice => self.origination_identity.is_some() || self.senders.supports(channel),
        }
    }

    /// Failures are not logged here: dispatch logs every attempt's outcome once.
    async fn send(&self, message: &OutboundMessage) -> Result<Accepted, ProviderError> {
        let country = message.destination.country();
        let identity = self
            .senders
            .for_destination(country, message.channel)
            .or(self.origination_identity.as_deref());
        let (operation, body) = match message.channel {
            Channel::Sms => {
                ("SendTextMessage", request::text_message(identity, &self.options, message))
            }
            Channel::Voice => {
                let Some(identity) = identity else {
                    return Err(ProviderError::not_sent(
                        KIND,
                        ErrorClass::AuthConfig,
                        "no caller id for this destination (voice_from, an E.164 from, senders, origination_identity)",
                    ));
                };
                ("SendVoiceMessage", request::voice_message(identity, &self.options, message))
            }
        };
        let answer = self.call(operation, &body).await?;
        classify::classify_send(&answer, SystemTime::now())
    }

    async fn probe(&self) -> Result<(), ProviderError> {
        let answer = self.call("DescribeAccountAttributes", &serde_json::json!({})).await?;
        classify::classify_probe(&answer, SystemTime::now())
    }
}
