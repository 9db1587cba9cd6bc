//! The real Telesign adapter against `switchboard-sim`'s Telesign emulator, over loopback.

use crate::support;
use crate::support::scenarios;

use std::sync::Arc;

use secrecy::SecretString;
use support::{CODE, CallbackServer};
use switchboard_core::{
    Certainty, Channel, Country, Destination, ErrorClass, OutboundMessage, ProviderId,
};
use switchboard_providers::telesign::TelesignAuth;
use switchboard_providers::{
    BuildContext, CallbackError, DeliveryState, Provider, ProviderError, Telesign, TelesignConfig,
};
use switchboard_sim::telesign::{AuthScheme, SendKind, TelesignAccount};
use switchboard_sim::{Fault, Faults, Receipts};

const CUSTOMER: &str = "FFFFFFFF-EEEE-DDDD-1234-AB1234567890";
/// base64("signing-key-for-tests").
const KEY: &str = "c2lnbmluZy1rZXktZm9yLXRlc3Rz";
const TO: &str = "+447700900123";

fn config(base_url: String) -> TelesignConfig {
    TelesignConfig {
        customer_id: CUSTOMER.into(),
        api_key: SecretString::from(KEY),
        auth: TelesignAuth::Hmac,
        from: None,
        senders: Default::default(),
        voice: None,
        base_url,
        timeout_ms: 2000,
        connect_timeout_ms: 300,
        max_per_second: None,
    }
}

type Harness = support::Harness<switchboard_sim::telesign::Telesign, Arc<Telesign>>;

async fn harness_with(
    account: TelesignAccount,
    context: BuildContext,
    tweak: impl FnOnce(&mut TelesignConfig),
) -> Harness {
    support::start_tweaked(account, config, tweak, |config| {
        let id = ProviderId::parse("telesign-1").unwrap();
        Arc::new(Telesign::try_new(id, config, &context).unwrap())
    })
    .await
}

async fn harness() -> Harness {
    harness_with(TelesignAccount::new(CUSTOMER, KEY), BuildContext::default(), |_| {}).await
}

/// A harness whose adapter has a callback base served by a [`CallbackServer`].
async fn harness_with_callbacks(account: TelesignAccount) -> (Harness, CallbackServer) {
    let callbacks = CallbackServer::bind().await;
    let context = BuildContext { callback_base: Some(callbacks.base("telesign-1")) };
    let harness = harness_with(account, context, |_| {}).await;
    callbacks.attach(harness.provider.clone());
    (harness, callbacks)
}

fn message(channel: Channel, to: &str) -> OutboundMessage {
    support::message(channel, to, "GB", "en-GB")
}

fn sms(to: &str) -> OutboundMessage {
    message(Channel::Sms, to)
}

fn verdict(error: &ProviderError) -> (ErrorClass, Certainty) {
    support::verdict(error, &[CODE, "7700900123", "5005550", KEY])
}

#[tokio::test]
async fn sms_is_one_hmac_signed_messaging_post() {
    let Harness { emulator: telesign, provider } = harness().await;
    let accepted = provider.send(&sms(TO)).await.unwrap();
    assert_eq!(accepted.message_id.len(), 32);

    let received = telesign.received();
    assert_eq!(received.len(), 1, "exactly one request: {received:?}");
    let send = &received[0];
    assert_eq!((send.kind, send.auth_scheme), (SendKind::Message, AuthScheme::Hmac));
    assert!(send.is_authenticated, "the emulator recomputed the signature");
    assert_eq!(send.phone_number.as_deref(), Some("447700900123"));
    assert!(send.message.as_deref().unwrap().contains(CODE));
    assert_eq!(send.message_type.as_deref(), Some("OTP"));
    assert_eq!((send.sender_id.as_deref(), send.callback_url.as_deref()), (None, None));

    // A second send has a fresh nonce (a reused one would be refused with -30012).
    provider.send(&sms(TO)).await.unwrap();
}

#[tokio::test]
async fn basic_auth_and_per_country_senders() {
    let account = TelesignAccount::new(CUSTOMER, KEY);
    let Harness { emulator: telesign, provider } =
        harness_with(account, BuildContext::default(), |config| {
            config.auth = TelesignAuth::Basic;
            config.from = Some("Acme".into());
            config.senders.insert("GB".into(), toml::from_str("sms = \"AcmeUK\"").unwrap());
        })
        .await;
    provider.send(&sms(TO)).await.unwrap();
    let mut us = sms("+14155550100");
    us.destination = Destination::new("+14155550100".into(), Country::parse("US").unwrap());
    provider.send(&us).await.unwrap();
    let received = telesign.received();
    assert!(
        received.iter().all(|send| send.auth_scheme == AuthScheme::Basic && send.is_authenticated)
    );
    assert_eq!(received[0].sender_id.as_deref(), Some("AcmeUK"));
    assert_eq!(received[1].sender_id.as_deref(), Some("Acme"));
}

#[tokio::test]
async fn voice_is_one_call_that_spells_the_digits() {
    let Harness { emulator: telesign, provider } = harness().await;
    assert!(provider.supports(Channel::Voice));
    let accepted = provider.send(&message(Channel::Voice, TO)).await.unwrap();
    assert_eq!(accepted.message_id.len(), 32);
    let call = &telesign.received()[0];
    assert_eq!(call.kind, SendKind::Call);
    assert!(call.is_authenticated);
    assert_eq!(call.voice.as_deref(), Some("f-en-GB"));
    let script = call.message.as_deref().unwrap();
    assert_eq!(script.matches("9, 1, 8, 2, 7, 3").count(), 2, "{script}");
}

#[tokio::test]
async fn magic_numbers_map_to_their_error_classes() {
    let Harness { emulator: telesign, provider } = harness().await;
    for (to, channel, class, code) in [
        ("+15005550001", Channel::Sms, ErrorClass::InvalidNumber, "11000"),
        ("+15005550002", Channel::Sms, ErrorClass::InvalidNumber, "11001"),
        ("+15005550004", Channel::Sms, ErrorClass::Blocked, "230"),
        ("+15005550005", Channel::Sms, ErrorClass::FraudBlock, "233"),
        ("+15005550004", Channel::Voice, ErrorClass::Blocked, "130"),
        ("+15005550006", Channel::Sms, ErrorClass::Funds, "-30001"),
        ("+15005550007", Channel::Voice, ErrorClass::AuthConfig, "-20002"),
    ] {
        let error = provider.send(&message(channel, to)).await.unwrap_err();
        assert_eq!(verdict(&error), (class, Certainty::NotSent), "{channel} to {to}");
        assert_eq!(error.provider_code.as_deref(), Some(code), "{channel} to {to}");
    }
    assert_eq!(telesign.received().len(), 7, "one request per send, no retries");
}

#[tokio::test]
async fn rate_limit_carries_retry_after() {
    let Harness { emulator: telesign, provider } = harness().await;
    scenarios::assert_rate_limited(&*provider, &telesign, 7, &[sms(TO)], verdict).await;
}

#[tokio::test]
async fn server_errors_are_transient_and_not_sent() {
    let Harness { emulator: telesign, provider } = harness().await;
    telesign.set_faults(Faults::always(Fault::Status { status: 503, code: Some(503) }));
    let error = provider.send(&sms(TO)).await.unwrap_err();
    assert_eq!(verdict(&error), (ErrorClass::Transient, Certainty::NotSent));
    telesign.set_faults(Faults::always(Fault::Status { status: 502, code: None }));
    let error = provider.send(&message(Channel::Voice, TO)).await.unwrap_err();
    assert_eq!(verdict(&error), (ErrorClass::Transient, Certainty::NotSent));
    assert_eq!(error.provider_code, None);
}

#[tokio::test]
async fn a_hang_times_out_as_possibly_accepted() {
    let account = TelesignAccount::new(CUSTOMER, KEY);
    let Harness { emulator: telesign, provider } =
        harness_with(account, BuildContext::default(), |config| {
            config.timeout_ms = 200;
            config.connect_timeout_ms = 100;
        })
        .await;
    scenarios::assert_hang_is_possibly_accepted(&*provider, &telesign, &[sms(TO)], verdict).await;
    assert_eq!(telesign.received().len(), 1, "the request reached the provider");
    assert_eq!(provider.probe().await.unwrap_err().class, ErrorClass::Timeout);
}

#[tokio::test]
async fn a_reset_after_the_request_is_possibly_accepted() {
    let Harness { emulator: telesign, provider } = harness().await;
    scenarios::assert_reset_is_possibly_accepted(&*provider, &telesign, &sms(TO), verdict).await;
    scenarios::assert_recovers(&*provider, &telesign, &sms(TO)).await;
}

#[tokio::test]
async fn a_refused_connection_is_not_sent() {
    let base_url = support::refused_base_url();
    let provider = Telesign::try_new(
        ProviderId::parse("telesign-1").unwrap(),
        &config(base_url),
        &BuildContext::default(),
    )
    .unwrap();
    scenarios::assert_refused_is_not_sent(&provider, &[sms(TO)], verdict).await;
}

#[tokio::test]
async fn wrong_credentials_are_auth_config_errors() {
    // base64("another-key") signs validly but with the wrong key.
    for (auth, customer, key, code) in [
        (TelesignAuth::Hmac, CUSTOMER, "YW5vdGhlci1rZXk=", "-30006"),
        (TelesignAuth::Hmac, "00000000-0000", KEY, "-30000"),
        (TelesignAuth::Basic, CUSTOMER, "YW5vdGhlci1rZXk=", "-30015"),
    ] {
        let account = TelesignAccount::new(CUSTOMER, KEY);
        let Harness { emulator: telesign, provider } =
            harness_with(account, BuildContext::default(), |config| {
                config.auth = auth;
                config.customer_id = customer.into();
                config.api_key = SecretString::from(key);
            })
            .await;
        let error = provider.send(&sms(TO)).await.unwrap_err();
        assert_eq!(verdict(&error), (ErrorClass::AuthConfig, Certainty::NotSent), "{auth:?}");
        assert_eq!(error.provider_code.as_deref(), Some(code));
        assert!(!telesign.received()[0].is_authenticated);
        assert_eq!(provider.probe().await.unwrap_err().class, ErrorClass::AuthConfig);
        assert!(!format!("{provider:?}").contains(key), "the key never prints");
    }
}

#[tokio::test]
async fn probe_authenticates_without_sending() {
    let Harness { emulator: telesign, provider } = harness().await;
    provider.probe().await.unwrap();
    assert!(telesign.received().is_empty(), "a probe never sends a message");
}

#[tokio::test]
async fn signed_receipts_become_delivery_states() {
    let (Harness { emulator: telesign, provider }, mut callbacks) =
        harness_with_callbacks(TelesignAccount::new(CUSTOMER, KEY)).await;

    telesign.set_receipts(Receipts::delivered());
    let accepted = provider.send(&sms(TO)).await.unwrap();
    let sent = &telesign.received()[0];
    assert_eq!(
        sent.callback_url.as_deref(),
        Some(format!("{}/status", callbacks.base("telesign-1")).as_str())
    );
    let reply = callbacks.next().await.outcome.unwrap();
    assert_eq!(reply.receipts.len(), 1);
    assert_eq!(reply.receipts[0].message_id, accepted.message_id);
    assert_eq!(reply.receipts[0].state, DeliveryState::Delivered);
    assert_eq!(telesign.wait_for_callbacks(1).await[0].status, Some(200));

    telesign.set_receipts(Receipts::undelivered(211));
    let accepted = provider.send(&sms(TO)).await.unwrap();
    let reply = callbacks.next().await.outcome.unwrap();
    assert_eq!(reply.receipts[0].message_id, accepted.message_id);
    assert_eq!(reply.receipts[0].state, DeliveryState::Undelivered(ErrorClass::InvalidNumber));
    assert_eq!(reply.receipts[0].provider_code.as_deref(), Some("211"));
}

#[tokio::test]
async fn voice_receipts_arrive_on_the_accounts_callback_url() {
    let callbacks_probe = CallbackServer::bind().await;
    let account = TelesignAccount::new(CUSTOMER, KEY)
        .with_callback_url(format!("{}/status", callbacks_probe.base("telesign-1")));
    let context = BuildContext { callback_base: Some(callbacks_probe.base("telesign-1")) };
    let Harness { emulator: telesign, provider } = harness_with(account, context, |_| {}).await;
    let mut callbacks = callbacks_probe;
    callbacks.attach(provider.clone());
    telesign.set_receipts(Receipts::undelivered(107));
    let accepted = provider.send(&message(Channel::Voice, TO)).await.unwrap();
    let reply = callbacks.next().await.outcome.unwrap();
    assert_eq!(reply.receipts[0].message_id, accepted.message_id);
    assert_eq!(reply.receipts[0].state, DeliveryState::Undelivered(ErrorClass::Transient));
}

#[tokio::test]
async fn forged_receipts_are_refused() {
    let (Harness { emulator: _telesign, provider }, mut callbacks) =
        harness_with_callbacks(TelesignAccount::new(CUSTOMER, KEY)).await;
    let url = format!("{}/status", callbacks.base("telesign-1"));
    let body = r#"{"reference_id":"0123456789ABCDEF0123456789ABCDEF","status":{"code":200}}"#;
    let client = reqwest::Client::new();
    for authorization in [
        None,
        Some(format!("TSA {CUSTOMER}:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")),
        Some(format!("Basic {KEY}")),
    ] {
        let mut request = client.post(&url).body(body);
        if let Some(value) = &authorization {
            request = request.header("Authorization", value);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401, "{authorization:?}");
        assert_eq!(callbacks.next().await.outcome.unwrap_err(), CallbackError::BadSignature);
    }
    // A valid signature over another body does not carry over.
    use base64::Engine;
    use hmac::Mac;
    let key = base64::engine::general_purpose::STANDARD.decode(KEY).unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(body.as_bytes());
    let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let tampered = body.replace("200", "211");
    let response = client
        .post(&url)
        .header("Authorization", format!("TSA {CUSTOMER}:{signature}"))
        .body(tampered)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(callbacks.next().await.outcome.unwrap_err(), CallbackError::BadSignature);
    // The genuine body with that signature is accepted.
    let response = client
        .post(&url)
        .header("Authorization", format!("TSA {CUSTOMER}:{signature}"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(callbacks.next().await.outcome.unwrap().receipts[0].state, DeliveryState::Delivered);
    let _ = provider;
}
