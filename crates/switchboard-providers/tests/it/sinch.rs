//! The real Sinch adapter against `switchboard-sim`'s Sinch emulator, over loopback sockets.

use crate::support;

use std::collections::BTreeMap;
use std::sync::Arc;

use secrecy::SecretString;
use support::{CODE, CallbackServer, scenarios};
use switchboard_core::{Certainty, Channel, ErrorClass, OutboundMessage, ProviderId};
use switchboard_providers::sinch::VoiceAuth;
use switchboard_providers::{
    BuildContext, CallbackError, DeliveryState, Provider, ProviderError, Sinch, SinchConfig,
};
use switchboard_sim::sinch::{RunningEmulator, SendKind, SinchAccount, SinchEmulator};
use switchboard_sim::{Fault, Faults, Receipts};

const PLAN: &str = "jd63jf88477ll";
const TOKEN: &str = "emulator-api-token";
pub(crate) const APP_KEY: &str = "669E367E-6BBA-48AB-AF15-266871C28135";
pub(crate) const APP_SECRET: &str = "BeIukql3pTKJ8RGL5zo0DA==";
pub(crate) const CALLBACK_TOKEN: &str = "0123456789abcdef-receipts";
/// The provider id the adapter is built under, and its callback path.
pub(crate) const ID: &str = "sinch-us";
const FROM: &str = "+15005550006";
const TO: &str = "+14155550100";

pub(crate) fn account() -> SinchAccount {
    SinchAccount::new(PLAN, TOKEN, APP_KEY, APP_SECRET)
}

pub(crate) fn config(base_url: &str) -> SinchConfig {
    SinchConfig {
        service_plan_id: Some(PLAN.into()),
        api_token: Some(SecretString::from(TOKEN)),
        application_key: Some(APP_KEY.into()),
        application_secret: Some(SecretString::from(APP_SECRET)),
        voice_auth: VoiceAuth::Signed,
        callback_token: None,
        from: Some(FROM.into()),
        voice_from: None,
        senders: BTreeMap::new(),
        sms_base_url: base_url.into(),
        voice_base_url: base_url.into(),
        timeout_ms: 2000,
        connect_timeout_ms: 300,
        max_per_second: None,
    }
}

// Alike in sinch.rs and vonage.rs on purpose: the provider's types over `support`'s harness.
type Harness = support::Harness<switchboard_sim::sinch::Sinch, Sinch>;

fn build(config: &SinchConfig) -> Sinch {
    build_in(config, &BuildContext::default())
}

/// The adapter `config` describes, under [`ID`], built in `context`.
pub(crate) fn build_in(config: &SinchConfig, context: &BuildContext) -> Sinch {
    Sinch::try_new(ProviderId::parse(ID).unwrap(), config, context).unwrap()
}

async fn harness_with(tweak: impl FnOnce(&mut SinchConfig)) -> Harness {
    support::start_tweaked(account(), |base_url| config(&base_url), tweak, build).await
}

async fn harness() -> Harness {
    harness_with(|_| {}).await
}

fn message(channel: Channel, to: &str) -> OutboundMessage {
    support::message(channel, to, "US", "en-US")
}

fn sms(to: &str) -> OutboundMessage {
    message(Channel::Sms, to)
}

fn call(to: &str) -> OutboundMessage {
    message(Channel::Voice, to)
}

fn verdict(error: &ProviderError) -> (ErrorClass, Certainty) {
    support::verdict(error, &[CODE, "4155550100", "5005550", TOKEN, APP_SECRET])
}

#[tokio::test]
async fn sms_is_one_batch_with_the_bearer_token() {
    let Harness { emulator: sinch, provider } = harness().await;
    let accepted = provider.send(&sms(TO)).await.unwrap();
    assert_eq!(accepted.message_id.len(), 26, "a ULID batch id");
    let received = sinch.received();
    assert_eq!(received.len(), 1);
    let batch = &received[0];
    assert_eq!(batch.kind, SendKind::Batch);
    assert!(batch.is_authenticated);
    assert_eq!(batch.service_plan_id.as_deref(), Some(PLAN));
    assert_eq!((batch.to.as_deref(), batch.from.as_deref()), (Some(TO), Some(FROM)));
    assert!(batch.text.as_deref().unwrap().contains(CODE));
    assert_eq!(batch.body["delivery_report"], "none");
    assert!(!format!("{provider:?}").contains(TOKEN));
}

#[tokio::test]
async fn calls_are_signed_tts_callouts_by_default_or_basic() {
    let Harness { emulator: sinch, provider } = harness().await;
    let accepted = provider.send(&call(TO)).await.unwrap();
    assert_eq!(accepted.message_id.len(), 36);
    let callout = &sinch.received()[0];
    assert_eq!(callout.kind, SendKind::Callout);
    assert_eq!(
        callout.auth_scheme.as_deref(),
        Some("signed"),
        "the emulator recomputed the signature"
    );
    assert_eq!((callout.to.as_deref(), callout.from.as_deref()), (Some(TO), Some(FROM)));
    assert_eq!(callout.text.as_deref().unwrap().matches("9, 1, 8, 2, 7, 3").count(), 2);
    assert_eq!(callout.body["ttsCallout"]["locale"], "en-US");
    assert_eq!(callout.body["ttsCallout"]["enableDice"], false);

    let Harness { emulator: sinch, provider } =
        harness_with(|config| config.voice_auth = VoiceAuth::Basic).await;
    provider.send(&call(TO)).await.unwrap();
    assert_eq!(sinch.received()[0].auth_scheme.as_deref(), Some("basic"));
}

#[tokio::test]
async fn refusals_map_to_their_classes() {
    let Harness { emulator: sinch, provider } = harness().await;
    for (to, class, code) in [
        ("+15005550001", ErrorClass::InvalidNumber, "syntax_invalid_parameter_format"),
        ("+15005550003", ErrorClass::AuthConfig, "illegal_number_type"),
        ("+15005550004", ErrorClass::AuthConfig, "blocked_account"),
    ] {
        let error = provider.send(&sms(to)).await.unwrap_err();
        assert_eq!(verdict(&error), (class, Certainty::NotSent), "sms to {to}");
        assert_eq!(error.provider_code.as_deref(), Some(code));
    }
    let error = provider.send(&call("+15005550005")).await.unwrap_err();
    assert_eq!(verdict(&error), (ErrorClass::Funds, Certainty::NotSent));
    assert_eq!(error.provider_code.as_deref(), Some("40200"));
    assert_eq!(sinch.received().len(), 4, "one request per send, no retries");
}

#[tokio::test]
async fn rate_limits_server_errors_hangs_and_resets() {
    let Harness { emulator: sinch, provider } = harness_with(|config| {
        config.timeout_ms = 200;
        config.connect_timeout_ms = 100;
    })
    .await;
    scenarios::assert_rate_limited(&provider, &sinch, 7, &[sms(TO), call(TO)], verdict).await;
    sinch.set_faults(Faults::always(Fault::Status { status: 503, code: Some(50300) }));
    for message in [sms(TO), call(TO)] {
        assert_eq!(
            verdict(&provider.send(&message).await.unwrap_err()),
            (ErrorClass::Transient, Certainty::NotSent)
        );
    }
    sinch.set_faults(Faults::always(Fault::Status { status: 502, code: None }));
    assert_eq!(
        verdict(&provider.send(&sms(TO)).await.unwrap_err()),
        (ErrorClass::Transient, Certainty::NotSent)
    );
    scenarios::assert_hang_is_possibly_accepted(&provider, &sinch, &[sms(TO), call(TO)], verdict)
        .await;
    scenarios::assert_reset_is_possibly_accepted(&provider, &sinch, &sms(TO), verdict).await;
    scenarios::assert_recovers(&provider, &sinch, &sms(TO)).await;
}

#[tokio::test]
async fn a_refused_connection_is_not_sent() {
    let base_url = support::refused_base_url();
    let provider = build(&config(&base_url));
    scenarios::assert_refused_is_not_sent(&provider, &[sms(TO), call(TO)], verdict).await;
}

#[tokio::test]
async fn wrong_credentials_are_auth_config_errors() {
    let Harness { emulator: sinch, provider } = harness_with(|config| {
        config.api_token = Some(SecretString::from("wrong"));
        config.application_secret = Some(SecretString::from("d3Jvbmc="));
    })
    .await;
    for message in [sms(TO), call(TO)] {
        assert_eq!(
            verdict(&provider.send(&message).await.unwrap_err()),
            (ErrorClass::AuthConfig, Certainty::NotSent)
        );
    }
    assert!(sinch.received().iter().all(|send| !send.is_authenticated));
    let error = provider.probe().await.unwrap_err();
    assert_eq!(verdict(&error), (ErrorClass::AuthConfig, Certainty::NotSent));
}

#[tokio::test]
async fn probe_lists_batches_without_sending() {
    let Harness { emulator: sinch, provider } = harness().await;
    provider.probe().await.unwrap();
    assert!(sinch.received().is_empty());
}

async fn with_receipts() -> (RunningEmulator, Arc<Sinch>, CallbackServer) {
    let sinch = SinchEmulator::start(account()).await.unwrap();
    let endpoint = CallbackServer::bind().await;
    let mut config = config(&sinch.base_url());
    config.callback_token = Some(SecretString::from(CALLBACK_TOKEN));
    let context = BuildContext { callback_base: Some(endpoint.base(ID)) };
    let provider = Arc::new(build_in(&config, &context));
    endpoint.attach(provider.clone());
    // The application's callback URL is a dashboard setting; the operator points it here.
    sinch.set_voice_callback_url(Some(format!("{}/voice", endpoint.base(ID))));
    (sinch, provider, endpoint)
}

#[tokio::test]
async fn delivery_reports_arrive_at_the_secret_url_and_are_read() {
    let (sinch, provider, mut endpoint) = with_receipts().await;
    sinch.set_receipts(Receipts::delivered());
    let accepted = provider.send(&sms(TO)).await.unwrap();
    let batch = &sinch.received()[0].body;
    assert_eq!(batch["delivery_report"], "per_recipient");
    assert_eq!(batch["callback_url"], format!("{}/sms/{CALLBACK_TOKEN}", endpoint.base(ID)));
    let receipts = endpoint.next().await.outcome.unwrap().receipts;
    assert_eq!(receipts[0].message_id, accepted.message_id);
    assert_eq!(receipts[0].state, DeliveryState::Delivered);

    sinch.set_receipts(Receipts::undelivered("402"));
    provider.send(&sms(TO)).await.unwrap();
    let receipts = endpoint.next().await.outcome.unwrap().receipts;
    assert_eq!(receipts[0].state, DeliveryState::Undelivered(ErrorClass::InvalidNumber));
}

#[tokio::test]
async fn signed_dice_events_arrive_and_are_read() {
    let (sinch, provider, mut endpoint) = with_receipts().await;
    sinch.set_receipts(Receipts::delivered());
    let accepted = provider.send(&call(TO)).await.unwrap();
    assert_eq!(sinch.received()[0].body["ttsCallout"]["enableDice"], true);
    let receipts = endpoint.next().await.outcome.unwrap().receipts;
    assert_eq!(receipts[0].message_id, accepted.message_id);
    assert_eq!(receipts[0].state, DeliveryState::Delivered);
    sinch.set_receipts(Receipts::undelivered("NOANSWER"));
    provider.send(&call(TO)).await.unwrap();
    let receipts = endpoint.next().await.outcome.unwrap().receipts;
    assert_eq!(receipts[0].state, DeliveryState::Undelivered(ErrorClass::Transient));
}

#[tokio::test]
async fn forged_callbacks_are_refused() {
    let (sinch, provider, mut endpoint) = with_receipts().await;
    let accepted = provider.send(&sms(TO)).await.unwrap();
    drop(sinch);
    let report = serde_json::json!({
        "type": "recipient_delivery_report_sms", "batch_id": accepted.message_id,
        "recipient": TO, "code": 402, "status": "Failed", "at": "2026-01-01T00:00:00.000Z",
    });
    let client = reqwest::Client::new();
    let wrong_token = client
        .post(format!("{}/sms/not-the-callback-token", endpoint.base(ID)))
        .json(&report)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_token.status(), 401);
    assert_eq!(endpoint.next().await.outcome, Err(CallbackError::BadSignature));
    let dice = serde_json::json!({"event": "dice", "callid": "c", "result": "ANSWERED"});
    let unsigned =
        client.post(format!("{}/voice", endpoint.base(ID))).json(&dice).send().await.unwrap();
    assert_eq!(unsigned.status(), 401);
    assert_eq!(endpoint.next().await.outcome, Err(CallbackError::BadSignature));
}

#[tokio::test]
async fn without_a_callback_token_no_sms_reports_are_asked_for() {
    let sinch = SinchEmulator::start(account()).await.unwrap();
    let context = BuildContext { callback_base: Some("https://hook.example/callbacks/s".into()) };
    let provider =
        Sinch::try_new(ProviderId::parse("s").unwrap(), &config(&sinch.base_url()), &context)
            .unwrap();
    provider.send(&sms(TO)).await.unwrap();
    let batch = &sinch.received()[0].body;
    assert_eq!(batch["delivery_report"], "none");
    assert!(batch.get("callback_url").is_none());
}
