//! The real Vonage adapter against `switchboard-sim`'s Vonage emulator, over loopback sockets.

use crate::support;

use std::collections::BTreeMap;
use std::sync::Arc;

use secrecy::SecretString;
use support::{CODE, CallbackServer, scenarios};
use switchboard_core::{Certainty, Channel, ErrorClass, MessageText, OutboundMessage, ProviderId};
use switchboard_providers::vonage::SignatureMethod;
use switchboard_providers::{
    BuildContext, CallbackError, DeliveryState, Provider, ProviderError, Vonage, VonageConfig,
};
use switchboard_sim::vonage::{
    RunningEmulator, SendKind, TEST_PRIVATE_KEY_PEM, TEST_PUBLIC_KEY_PEM, VonageAccount,
    VonageEmulator,
};
use switchboard_sim::{Fault, Faults, Receipts};

pub(crate) const API_KEY: &str = "abcd1234";
pub(crate) const API_SECRET: &str = "emulator-secret";
pub(crate) const SIGNATURE_SECRET: &str = "emulator-signature-secret";
pub(crate) const APP: &str = "aaaaaaaa-bbbb-4ccc-8ddd-0123456789ab";
/// The provider id the adapter is built under, and its callback path.
pub(crate) const ID: &str = "vonage-eu";
const FROM: &str = "+15005550006";
const TO: &str = "+14155550100";

pub(crate) fn account() -> VonageAccount {
    VonageAccount::new(API_KEY, API_SECRET)
        .with_signature_secret(SIGNATURE_SECRET)
        .with_application(APP, TEST_PUBLIC_KEY_PEM)
}

pub(crate) fn config(base_url: &str) -> VonageConfig {
    VonageConfig {
        api_key: Some(API_KEY.into()),
        api_secret: Some(SecretString::from(API_SECRET)),
        signature_secret: None,
        signature_method: SignatureMethod::Md5Hash,
        application_id: Some(APP.into()),
        private_key: Some(SecretString::from(TEST_PRIVATE_KEY_PEM)),
        private_key_file: None,
        from: Some(FROM.into()),
        voice_from: None,
        senders: BTreeMap::new(),
        sms_base_url: base_url.into(),
        voice_base_url: base_url.into(),
        timeout_ms: 2000,
        connect_timeout_ms: 300,
        max_per_second: None,
        sms_ttl_ms: None,
        ringing_timer_s: 45,
        length_timer_s: 90,
    }
}

// Alike in sinch.rs and vonage.rs on purpose: the provider's types over `support`'s harness.
type Harness = support::Harness<switchboard_sim::vonage::Vonage, Vonage>;

fn build(config: &VonageConfig) -> Vonage {
    build_in(config, &BuildContext::default())
}

/// The adapter `config` describes, under [`ID`], built in `context`.
pub(crate) fn build_in(config: &VonageConfig, context: &BuildContext) -> Vonage {
    Vonage::try_new(ProviderId::parse(ID).unwrap(), config, context).unwrap()
}

async fn harness_with(tweak: impl FnOnce(&mut VonageConfig)) -> Harness {
    support::start_tweaked(account(), |base_url| config(&base_url), tweak, build).await
}

async fn harness() -> Harness {
    harness_with(|_| {}).await
}

fn short_timeout(config: &mut VonageConfig) {
    config.timeout_ms = 200;
    config.connect_timeout_ms = 100;
}

fn message(channel: Channel, to: &str, text: &str) -> OutboundMessage {
    OutboundMessage {
        text: MessageText::new(text.into()),
        ..support::message(channel, to, "US", "en-US")
    }
}

fn sms(to: &str) -> OutboundMessage {
    message(Channel::Sms, to, &format!("Your Acme code is {CODE}"))
}

fn call(to: &str) -> OutboundMessage {
    message(Channel::Voice, to, "")
}

fn verdict(error: &ProviderError) -> (ErrorClass, Certainty) {
    support::verdict(error, &[CODE, "4155550100", "5005550", API_SECRET, SIGNATURE_SECRET])
}

#[tokio::test]
async fn sms_is_one_form_post_with_the_secret() {
    let Harness { emulator: vonage, provider } = harness().await;
    let accepted = provider.send(&sms(TO)).await.unwrap();
    assert!(accepted.message_id.starts_with("0A") && accepted.message_id.len() == 17);
    let received = vonage.received();
    assert_eq!(received.len(), 1, "exactly one request: {received:?}");
    let send = &received[0];
    assert_eq!(send.kind, SendKind::Sms);
    assert!(send.is_authenticated);
    assert_eq!(send.content_type.as_deref(), Some("application/x-www-form-urlencoded"));
    assert_eq!(
        (send.to.as_deref(), send.from.as_deref()),
        (Some("14155550100"), Some("15005550006"))
    );
    assert!(send.text.as_deref().unwrap().contains(CODE));
    assert_eq!(send.param("type"), Some("text"));
    assert_eq!(send.param("status-report-req"), Some("false"));
    assert_eq!(send.param("callback"), None, "no receipts without a callback base");
    assert!(!format!("{provider:?}").contains(API_SECRET));
}

#[tokio::test]
async fn signed_sms_carries_no_secret_and_unicode_is_flagged() {
    let Harness { emulator: vonage, provider } = harness_with(|config| {
        config.api_secret = None;
        config.signature_secret = Some(SecretString::from(SIGNATURE_SECRET));
    })
    .await;
    provider.send(&message(Channel::Sms, TO, "Votre code : 918273 ✓")).await.unwrap();
    let send = &vonage.received()[0];
    assert!(send.is_authenticated, "the emulator recomputed the sig");
    assert_eq!(send.param("api_secret"), None);
    assert!(send.param("sig").is_some() && send.param("timestamp").is_some());
    assert_eq!(send.param("type"), Some("unicode"));
}

#[tokio::test]
async fn voice_is_one_call_with_a_verified_jwt_and_a_talk_ncco() {
    let Harness { emulator: vonage, provider } = harness().await;
    let accepted = provider.send(&call(TO)).await.unwrap();
    assert_eq!(accepted.message_id.len(), 36);
    let received = vonage.received();
    assert_eq!(received.len(), 1);
    let send = &received[0];
    assert_eq!(send.kind, SendKind::Call);
    assert!(send.is_authenticated, "the emulator verified the RS256 JWT with the public key");
    assert_eq!(
        (send.to.as_deref(), send.from.as_deref()),
        (Some("14155550100"), Some("15005550006"))
    );
    let talk = &send.body["ncco"][0];
    assert_eq!((talk["action"].as_str(), talk["language"].as_str()), (Some("talk"), Some("en-US")));
    assert_eq!(send.text.as_deref().unwrap().matches("9, 1, 8, 2, 7, 3").count(), 2);
    assert!(send.body.get("event_url").is_none());
}

#[tokio::test]
async fn sms_statuses_inside_http_200_map_to_their_classes() {
    let Harness { emulator: vonage, provider } = harness().await;
    for (to, class, code) in [
        ("+15005550001", ErrorClass::InvalidNumber, "6"),
        ("+15005550002", ErrorClass::AuthConfig, "29"),
        ("+15005550003", ErrorClass::AuthConfig, "15"),
        ("+15005550004", ErrorClass::Blocked, "7"),
        ("+15005550005", ErrorClass::Funds, "9"),
        ("+15005550007", ErrorClass::RateLimited, "1"),
        ("+15005550008", ErrorClass::Transient, "5"),
        ("+15005550009", ErrorClass::InvalidNumber, "33"),
    ] {
        let error = provider.send(&sms(to)).await.unwrap_err();
        assert_eq!(verdict(&error), (class, Certainty::NotSent), "sms to {to}");
        assert_eq!(error.provider_code.as_deref(), Some(code), "sms to {to}");
    }
    for (to, class) in
        [("+15005550005", ErrorClass::Funds), ("+15005550007", ErrorClass::RateLimited)]
    {
        let error = provider.send(&call(to)).await.unwrap_err();
        assert_eq!(verdict(&error), (class, Certainty::NotSent), "call to {to}");
    }
    assert_eq!(vonage.received().len(), 10, "one request per send, no retries");
}

#[tokio::test]
async fn an_injected_status_inside_200_is_read_from_the_body() {
    let Harness { emulator: vonage, provider } = harness().await;
    vonage.set_faults(Faults::always(Fault::Status { status: 200, code: Some(7) }));
    let error = provider.send(&sms(TO)).await.unwrap_err();
    assert_eq!(verdict(&error), (ErrorClass::Blocked, Certainty::NotSent));
}

#[tokio::test]
async fn rate_limit_carries_retry_after() {
    let Harness { emulator: vonage, provider } = harness().await;
    scenarios::assert_rate_limited(&provider, &vonage, 7, &[sms(TO), call(TO)], verdict).await;
}

#[tokio::test]
async fn server_errors_are_transient_and_not_sent() {
    let Harness { emulator: vonage, provider } = harness().await;
    vonage.set_faults(Faults::always(Fault::Status { status: 503, code: Some(5) }));
    for message in [sms(TO), call(TO)] {
        let error = provider.send(&message).await.unwrap_err();
        assert_eq!(verdict(&error), (ErrorClass::Transient, Certainty::NotSent));
    }
    vonage.set_faults(Faults::always(Fault::Status { status: 502, code: None }));
    let error = provider.send(&sms(TO)).await.unwrap_err();
    assert_eq!(verdict(&error), (ErrorClass::Transient, Certainty::NotSent));
    assert_eq!(error.provider_code, None);
}

#[tokio::test]
async fn a_hang_times_out_as_possibly_accepted() {
    let Harness { emulator: vonage, provider } = harness_with(short_timeout).await;
    scenarios::assert_hang_is_possibly_accepted(&provider, &vonage, &[sms(TO), call(TO)], verdict)
        .await;
    assert_eq!(vonage.received().len(), 2, "the requests reached the provider");
}

#[tokio::test]
async fn a_reset_after_the_request_is_possibly_accepted() {
    let Harness { emulator: vonage, provider } = harness().await;
    scenarios::assert_reset_is_possibly_accepted(&provider, &vonage, &sms(TO), verdict).await;
    scenarios::assert_recovers(&provider, &vonage, &sms(TO)).await;
}

#[tokio::test]
async fn a_refused_connection_is_not_sent() {
    let base_url = support::refused_base_url();
    let provider = build(&config(&base_url));
    scenarios::assert_refused_is_not_sent(&provider, &[sms(TO), call(TO)], verdict).await;
}

#[tokio::test]
async fn wrong_credentials_are_auth_config_errors() {
    let Harness { emulator: vonage, provider } =
        harness_with(|config| config.api_secret = Some(SecretString::from("wrong"))).await;
    let error = provider.send(&sms(TO)).await.unwrap_err();
    assert_eq!(verdict(&error), (ErrorClass::AuthConfig, Certainty::NotSent));
    assert_eq!(error.provider_code.as_deref(), Some("4"));
    assert!(!vonage.received()[0].is_authenticated);

    let Harness { provider, emulator: _signed } = harness_with(|config| {
        config.signature_secret = Some(SecretString::from("not-the-secret"));
    })
    .await;
    let error = provider.send(&sms(TO)).await.unwrap_err();
    assert_eq!(error.provider_code.as_deref(), Some("14"));

    let Harness { provider, emulator: _other_app } = harness_with(|config| {
        config.application_id = Some("bbbbbbbb-bbbb-4ccc-8ddd-0123456789ab".into());
    })
    .await;
    let error = provider.send(&call(TO)).await.unwrap_err();
    assert_eq!(verdict(&error), (ErrorClass::AuthConfig, Certainty::NotSent));
    assert_eq!(error.provider_code.as_deref(), Some("unauthorized"));
}

#[tokio::test]
async fn probe_checks_credentials_without_sending() {
    let Harness { emulator: vonage, provider } = harness().await;
    provider.probe().await.unwrap();
    assert!(vonage.received().is_empty(), "a probe never sends a message");
    let Harness { provider, emulator: _voice_only } = harness_with(|config| {
        config.api_key = None;
        config.api_secret = None;
    })
    .await;
    assert!(!provider.supports(Channel::Sms) && provider.supports(Channel::Voice));
    provider.probe().await.unwrap();
    let Harness { provider, emulator: _bad } =
        harness_with(|config| config.api_secret = Some(SecretString::from("wrong"))).await;
    let error = provider.probe().await.unwrap_err();
    assert_eq!(verdict(&error), (ErrorClass::AuthConfig, Certainty::NotSent));
}

/// A provider with receipts: the emulator posts them to an endpoint that runs the adapter's
/// `handle_callback`.
async fn with_receipts(adapter_secret: &str) -> (RunningEmulator, Arc<Vonage>, CallbackServer) {
    let vonage = VonageEmulator::start(account()).await.unwrap();
    let endpoint = CallbackServer::bind().await;
    let mut config = config(&vonage.base_url());
    config.signature_secret = Some(SecretString::from(adapter_secret));
    config.api_secret = None;
    let context = BuildContext { callback_base: Some(endpoint.base(ID)) };
    let provider = Arc::new(build_in(&config, &context));
    endpoint.attach(provider.clone());
    (vonage, provider, endpoint)
}

#[tokio::test]
async fn signed_sms_receipts_arrive_and_are_read() {
    let (vonage, provider, mut endpoint) = with_receipts(SIGNATURE_SECRET).await;
    vonage.set_receipts(Receipts::delivered());
    let accepted = provider.send(&sms(TO)).await.unwrap();
    let sent = &vonage.received()[0];
    assert_eq!(sent.param("status-report-req"), Some("true"));
    assert_eq!(sent.param("callback"), Some(format!("{}/sms", endpoint.base(ID)).as_str()));
    let arrival = endpoint.next().await;
    let receipts = arrival.outcome.unwrap().receipts;
    assert_eq!(receipts.len(), 1);
    assert_eq!(receipts[0].message_id, accepted.message_id);
    assert_eq!(receipts[0].state, DeliveryState::Delivered);

    vonage.set_receipts(Receipts::undelivered("6"));
    let accepted = provider.send(&sms(TO)).await.unwrap();
    let receipts = endpoint.next().await.outcome.unwrap().receipts;
    assert_eq!(receipts[0].message_id, accepted.message_id);
    assert_eq!(receipts[0].state, DeliveryState::Undelivered(ErrorClass::Blocked));
    assert_eq!(receipts[0].provider_code.as_deref(), Some("6"));
}

#[tokio::test]
async fn signed_call_events_arrive_and_are_read() {
    let (vonage, provider, mut endpoint) = with_receipts(SIGNATURE_SECRET).await;
    vonage.set_receipts(Receipts::delivered());
    let accepted = provider.send(&call(TO)).await.unwrap();
    let event_url = vonage.received()[0].body["event_url"][0].as_str().unwrap().to_owned();
    assert_eq!(event_url, format!("{}/voice", endpoint.base(ID)));
    let receipts = endpoint.next().await.outcome.unwrap().receipts;
    assert_eq!(receipts[0].message_id, accepted.message_id);
    assert_eq!(receipts[0].state, DeliveryState::Delivered);

    vonage.set_receipts(Receipts::undelivered("busy"));
    provider.send(&call(TO)).await.unwrap();
    let receipts = endpoint.next().await.outcome.unwrap().receipts;
    assert_eq!(receipts[0].state, DeliveryState::Undelivered(ErrorClass::Transient));
}

#[tokio::test]
async fn receipts_signed_with_another_secret_are_refused() {
    // The adapter signs its SMS with a secret the emulator does not know, so use the secret
    // auth for sends and a wrong signature secret only for verifying receipts.
    let vonage = VonageEmulator::start(account()).await.unwrap();
    let mut endpoint = CallbackServer::bind().await;
    let mut config = config(&vonage.base_url());
    config.signature_secret = Some(SecretString::from("a-different-secret"));
    let context = BuildContext { callback_base: Some(endpoint.base(ID)) };
    let provider = Arc::new(build_in(&config, &context));
    endpoint.attach(provider.clone());
    vonage.set_receipts(Receipts::delivered());
    // Signed with the wrong secret, the SMS itself is refused (status 14): use a call.
    provider.send(&call(TO)).await.unwrap();
    let arrival = endpoint.next().await;
    assert_eq!(arrival.outcome, Err(CallbackError::BadSignature));
    assert!(arrival.callback.headers.contains_key("authorization"));
}

#[tokio::test]
async fn forged_sms_receipts_are_refused() {
    let (vonage, provider, mut endpoint) = with_receipts(SIGNATURE_SECRET).await;
    let accepted = provider.send(&sms(TO)).await.unwrap();
    drop(vonage);
    let forged = serde_json::json!({
        "messageId": accepted.message_id, "status": "failed", "err-code": "6",
        "timestamp": "1700000000", "nonce": "n", "sig": "00000000000000000000000000000000",
    });
    let response = reqwest::Client::new()
        .post(format!("{}/sms", endpoint.base(ID)))
        .json(&forged)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(endpoint.next().await.outcome, Err(CallbackError::BadSignature));
}

#[tokio::test]
async fn without_a_signature_secret_no_receipts_are_asked_for() {
    let vonage = VonageEmulator::start(account()).await.unwrap();
    let context = BuildContext { callback_base: Some("https://hook.example/callbacks/v".into()) };
    let provider =
        Vonage::try_new(ProviderId::parse("v").unwrap(), &config(&vonage.base_url()), &context)
            .unwrap();
    provider.send(&sms(TO)).await.unwrap();
    provider.send(&call(TO)).await.unwrap();
    let received = vonage.received();
    assert_eq!(received[0].param("callback"), None);
    assert!(received[1].body.get("event_url").is_none());
}
