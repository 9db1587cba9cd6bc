//! The real Plivo adapter against `switchboard-sim`'s Plivo emulator, over loopback: sends,
//! classification, receipts, and the answer URL Plivo fetches a call's script from.

use crate::support;
use crate::support::scenarios;

use std::sync::Arc;

use base64::Engine;
use hmac::Mac;
use secrecy::SecretString;
use support::{CODE, CallbackServer};
use switchboard_core::{Certainty, Channel, ErrorClass, OutboundMessage, ProviderId};
use switchboard_providers::{
    BuildContext, CallbackError, DeliveryState, Plivo, PlivoConfig, Provider, ProviderError,
};
use switchboard_sim::plivo::{PlivoAccount, SendKind};
use switchboard_sim::{CallbackKind, Fault, Faults, Receipts};

const AUTH_ID: &str = "MAXXXXXXXXXXXXXXXXXX";
const TOKEN: &str = "emulator-auth-token";
const FROM: &str = "+15005550006";
const TO: &str = "+14155550100";

fn config(base_url: String) -> PlivoConfig {
    PlivoConfig {
        auth_id: AUTH_ID.into(),
        auth_token: SecretString::from(TOKEN),
        from: Some(FROM.into()),
        voice_from: None,
        senders: Default::default(),
        voice: "WOMAN".into(),
        message_expiry_s: None,
        ring_timeout_s: None,
        answer_ttl_s: 120,
        max_pending_calls: 100,
        base_url,
        timeout_ms: 2000,
        connect_timeout_ms: 300,
        max_per_second: None,
    }
}

type Harness = support::Harness<switchboard_sim::plivo::Plivo, Arc<Plivo>>;

async fn harness_with(context: BuildContext, tweak: impl FnOnce(&mut PlivoConfig)) -> Harness {
    support::start_tweaked(PlivoAccount::new(AUTH_ID, TOKEN), config, tweak, |config| {
        Arc::new(Plivo::try_new(ProviderId::parse("plivo-1").unwrap(), config, &context).unwrap())
    })
    .await
}

async fn harness() -> Harness {
    harness_with(BuildContext::default(), |_| {}).await
}

async fn harness_with_callbacks() -> (Harness, CallbackServer) {
    let callbacks = CallbackServer::bind().await;
    let context = BuildContext { callback_base: Some(callbacks.base("plivo-1")) };
    let harness = harness_with(context, |_| {}).await;
    callbacks.attach(harness.provider.clone());
    (harness, callbacks)
}

fn message(channel: Channel, to: &str) -> OutboundMessage {
    support::message(channel, to, "US", "en-US")
}

fn sms(to: &str) -> OutboundMessage {
    message(Channel::Sms, to)
}

fn verdict(error: &ProviderError) -> (ErrorClass, Certainty) {
    support::verdict(error, &[CODE, "4155550100", "5005550", TOKEN])
}

/// Plivo's V3 signature, computed here independently of both the adapter and the emulator.
fn sign(url: &str, params: &[(&str, &str)], nonce: &str) -> String {
    let mut sorted: Vec<_> = params.to_vec();
    sorted.sort();
    let mut base = url.to_owned();
    if !params.is_empty() {
        base.push('?');
        for (key, value) in sorted {
            base.push_str(key);
            base.push_str(value);
        }
    }
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(TOKEN.as_bytes()).unwrap();
    mac.update(format!("{base}.{nonce}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

async fn post_signed(url: &str, params: &[(&str, &str)], signature: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(url)
        .header("X-Plivo-Signature-V3", signature)
        .header("X-Plivo-Signature-V3-Nonce", "0123456789")
        .form(params)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn sms_is_one_authenticated_message_post() {
    let Harness { emulator: plivo, provider } = harness().await;
    let accepted = provider.send(&sms(TO)).await.unwrap();
    assert_eq!(accepted.message_id.len(), 36);
    let received = plivo.received();
    assert_eq!(received.len(), 1);
    let send = &received[0];
    assert_eq!(send.kind, SendKind::Message);
    assert!(send.is_authenticated);
    assert_eq!((send.from.as_deref(), send.to.as_deref()), (Some(FROM), Some(TO)));
    assert!(send.text.as_deref().unwrap().contains(CODE));
    assert_eq!(send.body["type"], "sms");
    assert_eq!(send.callback_url, None, "no status URL without a callback base");
}

#[tokio::test]
async fn voice_without_a_public_url_is_refused_up_front() {
    let Harness { emulator: plivo, provider } = harness().await;
    assert!(provider.supports(Channel::Sms));
    assert!(!provider.supports(Channel::Voice), "no answer URL can be served");
    let error = provider.send(&message(Channel::Voice, TO)).await.unwrap_err();
    assert_eq!(verdict(&error), (ErrorClass::AuthConfig, Certainty::NotSent));
    assert!(plivo.received().is_empty());
}

#[tokio::test]
async fn a_call_fetches_its_script_once_from_the_answer_url() {
    let (Harness { emulator: plivo, provider }, mut callbacks) = harness_with_callbacks().await;
    assert!(provider.supports(Channel::Voice));
    let accepted = provider.send(&message(Channel::Voice, TO)).await.unwrap();
    let call = &plivo.received()[0];
    assert_eq!(call.kind, SendKind::Call);
    assert!(call.is_authenticated);
    let answer_url = call.answer_url.clone().unwrap();
    let prefix = format!("{}/answer/", callbacks.base("plivo-1"));
    assert!(answer_url.starts_with(&prefix), "{answer_url}");
    assert_eq!(answer_url.len() - prefix.len(), 43, "a 256-bit token");
    assert_eq!(call.body["answer_method"], "POST");

    // Plivo (the emulator) fetches the answer URL with a V3 signature and gets the script.
    let served = callbacks.next().await.outcome.unwrap();
    assert_eq!(served.content_type, "application/xml");
    let fetched = plivo.wait_for_callbacks(1).await;
    assert_eq!(fetched[0].kind, CallbackKind::AnswerFetch);
    assert_eq!(fetched[0].message_id, accepted.message_id);
    assert_eq!(fetched[0].status, Some(200));
    let xml = &fetched[0].response_body;
    assert!(xml.starts_with("<Response>") && xml.contains("language=\"en-US\""), "{xml}");
    assert_eq!(xml.matches("9, 1, 8, 2, 7, 3").count(), 2, "{xml}");

    // A second, correctly signed fetch gets nothing: the script was served once.
    let params = [("CallUUID", "c1"), ("CallStatus", "in-progress")];
    let response =
        post_signed(&answer_url, &params, &sign(&answer_url, &params, "0123456789")).await;
    assert_eq!(response.status(), 404);
    assert_eq!(callbacks.next().await.outcome.unwrap_err(), CallbackError::NotFound);
}

#[tokio::test]
async fn a_bad_signature_never_serves_or_burns_the_script() {
    let (Harness { emulator: plivo, provider }, mut callbacks) = harness_with_callbacks().await;
    // "Undelivered": the callee never answers, so the emulator does not fetch the script.
    plivo.set_receipts(Receipts::undelivered(3010));
    provider.send(&message(Channel::Voice, TO)).await.unwrap();
    let hangup = callbacks.next().await.outcome.unwrap();
    assert_eq!(hangup.receipts[0].state, DeliveryState::Undelivered(ErrorClass::Transient));
    let answer_url = plivo.received()[0].answer_url.clone().unwrap();

    let params = [("CallUUID", "c1"), ("CallStatus", "in-progress")];
    let good = sign(&answer_url, &params, "0123456789");
    for signature in [
        "",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        &sign(&answer_url, &params[..1], "0123456789"),
    ] {
        let response = post_signed(&answer_url, &params, signature).await;
        assert_eq!(response.status(), 401, "{signature:?}");
        assert!(response.text().await.unwrap().is_empty(), "no script in a refusal");
        assert_eq!(callbacks.next().await.outcome.unwrap_err(), CallbackError::BadSignature);
    }
    let response = reqwest::Client::new().post(&answer_url).form(&params).send().await.unwrap();
    assert_eq!(response.status(), 401, "unsigned");
    assert_eq!(callbacks.next().await.outcome.unwrap_err(), CallbackError::BadSignature);

    // The script is still there for the genuine fetch, and only once.
    let response = post_signed(&answer_url, &params, &format!("bogus,{good}")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap().matches("9, 1, 8, 2, 7, 3").count(), 2);
    callbacks.next().await.outcome.unwrap();
    assert_eq!(post_signed(&answer_url, &params, &good).await.status(), 404);
}

#[tokio::test]
async fn receipts_become_delivery_states() {
    let (Harness { emulator: plivo, provider }, mut callbacks) = harness_with_callbacks().await;
    plivo.set_receipts(Receipts::delivered());
    let accepted = provider.send(&sms(TO)).await.unwrap();
    assert_eq!(
        plivo.received()[0].callback_url,
        Some(format!("{}/status", callbacks.base("plivo-1")))
    );
    let reply = callbacks.next().await.outcome.unwrap();
    assert_eq!(reply.receipts[0].message_id, accepted.message_id);
    assert_eq!(reply.receipts[0].state, DeliveryState::Delivered);

    plivo.set_receipts(Receipts::undelivered(50));
    let accepted = provider.send(&sms(TO)).await.unwrap();
    let reply = callbacks.next().await.outcome.unwrap();
    assert_eq!(reply.receipts[0].message_id, accepted.message_id);
    assert_eq!(reply.receipts[0].state, DeliveryState::Undelivered(ErrorClass::InvalidNumber));
    assert_eq!(reply.receipts[0].provider_code.as_deref(), Some("50"));

    // A delivered call: the script is fetched, then the hangup says "completed".
    plivo.set_receipts(Receipts::delivered());
    let accepted = provider.send(&message(Channel::Voice, TO)).await.unwrap();
    assert!(callbacks.next().await.outcome.unwrap().receipts.is_empty(), "the answer fetch");
    let hangup = callbacks.next().await.outcome.unwrap();
    assert_eq!(hangup.receipts[0].message_id, accepted.message_id);
    assert_eq!(hangup.receipts[0].state, DeliveryState::Delivered);
}

#[tokio::test]
async fn forged_receipts_are_refused() {
    let (Harness { emulator: _plivo, provider: _provider }, mut callbacks) =
        harness_with_callbacks().await;
    let url = format!("{}/status", callbacks.base("plivo-1"));
    let params = [("MessageUUID", "m1"), ("Status", "delivered")];
    let signed_other = sign(&url, &[("MessageUUID", "m1"), ("Status", "failed")], "0123456789");
    assert_eq!(post_signed(&url, &params, &signed_other).await.status(), 401);
    assert_eq!(callbacks.next().await.outcome.unwrap_err(), CallbackError::BadSignature);
    let response = post_signed(&url, &params, &sign(&url, &params, "0123456789")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(callbacks.next().await.outcome.unwrap().receipts[0].state, DeliveryState::Delivered);
}

#[tokio::test]
async fn refusals_map_to_their_error_classes() {
    let (Harness { emulator: plivo, provider }, _callbacks) = harness_with_callbacks().await;
    for (to, channel, class) in [
        ("+15005550001", Channel::Sms, ErrorClass::AuthConfig),
        ("+15005550003", Channel::Sms, ErrorClass::AuthConfig),
        ("+15005550003", Channel::Voice, ErrorClass::AuthConfig),
    ] {
        let error = provider.send(&message(channel, to)).await.unwrap_err();
        assert_eq!(verdict(&error), (class, Certainty::NotSent), "{channel} to {to}");
    }
    assert_eq!(plivo.received().len(), 3);
    scenarios::assert_rate_limited(&*provider, &plivo, 4, &[sms(TO)], verdict).await;
    plivo.set_faults(Faults::always(Fault::Status { status: 500, code: Some(500) }));
    let error = provider.send(&message(Channel::Voice, TO)).await.unwrap_err();
    assert_eq!(verdict(&error), (ErrorClass::Transient, Certainty::NotSent));
    plivo.set_faults(Faults::always(Fault::Status { status: 502, code: None }));
    assert_eq!(
        verdict(&provider.send(&sms(TO)).await.unwrap_err()),
        (ErrorClass::Transient, Certainty::NotSent)
    );
}

#[tokio::test]
async fn a_hang_times_out_as_possibly_accepted() {
    let Harness { emulator: plivo, provider } = harness_with(BuildContext::default(), |config| {
        config.timeout_ms = 200;
        config.connect_timeout_ms = 100;
    })
    .await;
    scenarios::assert_hang_is_possibly_accepted(&*provider, &plivo, &[sms(TO)], verdict).await;
    assert_eq!(provider.probe().await.unwrap_err().class, ErrorClass::Timeout);
}

#[tokio::test]
async fn a_reset_after_the_request_is_possibly_accepted() {
    let Harness { emulator: plivo, provider } = harness().await;
    scenarios::assert_reset_is_possibly_accepted(&*provider, &plivo, &sms(TO), verdict).await;
    scenarios::assert_recovers(&*provider, &plivo, &sms(TO)).await;
}

#[tokio::test]
async fn wrong_credentials_are_auth_config_errors() {
    let Harness { emulator: plivo, provider } = harness_with(BuildContext::default(), |config| {
        config.auth_token = SecretString::from("wrong")
    })
    .await;
    let error = provider.send(&sms(TO)).await.unwrap_err();
    assert_eq!(verdict(&error), (ErrorClass::AuthConfig, Certainty::NotSent));
    assert!(!plivo.received()[0].is_authenticated);
    assert_eq!(provider.probe().await.unwrap_err().class, ErrorClass::AuthConfig);
    assert!(!format!("{provider:?}").contains("wrong"));
}

#[tokio::test]
async fn probe_checks_the_account_without_sending() {
    let Harness { emulator: plivo, provider } = harness().await;
    provider.probe().await.unwrap();
    assert!(plivo.received().is_empty());
}
