//! The real Infobip adapter against `switchboard-sim`'s Infobip emulator, over loopback.

use crate::support;
use crate::support::scenarios;

use std::sync::Arc;

use secrecy::SecretString;
use support::{CODE, CallbackServer};
use switchboard_core::{Certainty, Channel, ErrorClass, OutboundMessage, ProviderId};
use switchboard_providers::{
    BuildContext, CallbackError, DeliveryState, Infobip, InfobipConfig, Provider, ProviderError,
};
use switchboard_sim::infobip::{InfobipAccount, RequestKind};
use switchboard_sim::{Fault, Faults, Receipts};

const KEY: &str = "003026bbc133714df1834b8638bb496e-8f4b3d9a-e931-478d-a994-28a725159ab9";
const TOKEN: &str = "0123456789abcdef0123456789abcdef-report";
const TO: &str = "+41793026727";

fn config(base_url: String) -> InfobipConfig {
    InfobipConfig {
        api_key: SecretString::from(KEY),
        base_url,
        from: Some("InfoSMS".into()),
        voice_from: Some("+41793026700".into()),
        senders: Default::default(),
        voice: None,
        validity_period_min: None,
        callback_token: None,
        timeout_ms: 2000,
        connect_timeout_ms: 300,
        max_per_second: None,
    }
}

type Harness = support::Harness<switchboard_sim::infobip::Infobip, Arc<Infobip>>;

async fn harness_with(context: BuildContext, tweak: impl FnOnce(&mut InfobipConfig)) -> Harness {
    support::start_tweaked(InfobipAccount::new(KEY), config, tweak, |config| {
        let id = ProviderId::parse("infobip-1").unwrap();
        Arc::new(Infobip::try_new(id, config, &context).unwrap())
    })
    .await
}

async fn harness() -> Harness {
    harness_with(BuildContext::default(), |_| {}).await
}

async fn harness_with_reports() -> (Harness, CallbackServer) {
    let callbacks = CallbackServer::bind().await;
    let context = BuildContext { callback_base: Some(callbacks.base("infobip-1")) };
    let harness =
        harness_with(context, |config| config.callback_token = Some(SecretString::from(TOKEN)))
            .await;
    callbacks.attach(harness.provider.clone());
    (harness, callbacks)
}

fn message(channel: Channel, to: &str) -> OutboundMessage {
    support::message(channel, to, "CH", "de-CH")
}

fn sms(to: &str) -> OutboundMessage {
    message(Channel::Sms, to)
}

fn verdict(error: &ProviderError) -> (ErrorClass, Certainty) {
    support::verdict(error, &[CODE, "793026727", "5005550", KEY])
}

#[tokio::test]
async fn sms_is_one_authenticated_v3_post() {
    let Harness { emulator: infobip, provider } = harness().await;
    let accepted = provider.send(&sms(TO)).await.unwrap();
    assert_eq!(accepted.message_id.len(), 36);
    let received = infobip.received();
    assert_eq!(received.len(), 1, "exactly one request: {received:?}");
    let send = &received[0];
    assert_eq!((send.kind, send.path.as_str()), (RequestKind::Sms, "/sms/3/messages"));
    assert_eq!(send.auth_scheme.as_deref(), Some("App"));
    assert!(send.is_authenticated);
    assert_eq!(send.to.as_deref(), Some("41793026727"));
    assert_eq!(send.sender.as_deref(), Some("InfoSMS"));
    assert!(send.text.as_deref().unwrap().contains(CODE));
    assert_eq!(send.report_url, None, "no reports without a callback token");
}

#[tokio::test]
async fn voice_is_one_tts_call_in_the_users_language() {
    let Harness { emulator: infobip, provider } =
        harness_with(BuildContext::default(), |config| config.voice = Some("Hans".into())).await;
    provider.send(&message(Channel::Voice, TO)).await.unwrap();
    let call = &infobip.received()[0];
    assert_eq!((call.kind, call.path.as_str()), (RequestKind::Voice, "/tts/3/advanced"));
    assert!(call.is_authenticated);
    assert_eq!(call.sender.as_deref(), Some("41793026700"));
    assert_eq!(call.body["messages"][0]["language"], "de");
    assert_eq!(call.body["messages"][0]["voice"]["name"], "Hans");
    assert_eq!(call.text.as_deref().unwrap().matches("9, 1, 8, 2, 7, 3").count(), 2);
}

#[tokio::test]
async fn rejected_statuses_map_to_their_error_classes() {
    let Harness { emulator: infobip, provider } = harness().await;
    for (to, channel, class, code) in [
        ("+15005550001", Channel::Sms, ErrorClass::InvalidNumber, "REJECTED_DESTINATION"),
        ("+15005550003", Channel::Sms, ErrorClass::AuthConfig, "REJECTED_NETWORK"),
        ("+15005550004", Channel::Sms, ErrorClass::Blocked, "REJECTED_DND"),
        ("+15005550006", Channel::Sms, ErrorClass::Funds, "REJECTED_NOT_ENOUGH_CREDITS"),
        ("+15005550001", Channel::Voice, ErrorClass::InvalidNumber, "REJECTED_DESTINATION"),
    ] {
        let error = provider.send(&message(channel, to)).await.unwrap_err();
        assert_eq!(verdict(&error), (class, Certainty::NotSent), "{channel} to {to}");
        assert_eq!(error.provider_code.as_deref(), Some(code));
    }
    assert_eq!(infobip.received().len(), 5, "one request per send, no retries");
}

#[tokio::test]
async fn rate_limit_carries_retry_after() {
    let Harness { emulator: infobip, provider } = harness().await;
    let error =
        &scenarios::assert_rate_limited(&*provider, &infobip, 9, &[sms(TO)], verdict).await[0];
    assert_eq!(error.provider_code.as_deref(), Some("E429"));
    let error = provider.send(&message(Channel::Voice, TO)).await.unwrap_err();
    assert_eq!(error.provider_code.as_deref(), Some("TOO_MANY_REQUESTS"));
}

#[tokio::test]
async fn server_errors_are_transient_and_not_sent() {
    let Harness { emulator: infobip, provider } = harness().await;
    infobip.set_faults(Faults::always(Fault::Status { status: 500, code: Some(500) }));
    let error = provider.send(&sms(TO)).await.unwrap_err();
    assert_eq!(verdict(&error), (ErrorClass::Transient, Certainty::NotSent));
    assert_eq!(error.provider_code.as_deref(), Some("E500"));
    infobip.set_faults(Faults::always(Fault::Status { status: 503, code: None }));
    let error = provider.send(&message(Channel::Voice, TO)).await.unwrap_err();
    assert_eq!(verdict(&error), (ErrorClass::Transient, Certainty::NotSent));
}

#[tokio::test]
async fn a_hang_times_out_as_possibly_accepted() {
    let Harness { emulator: infobip, provider } = harness_with(BuildContext::default(), |config| {
        config.timeout_ms = 200;
        config.connect_timeout_ms = 100;
    })
    .await;
    scenarios::assert_hang_is_possibly_accepted(&*provider, &infobip, &[sms(TO)], verdict).await;
    assert_eq!(infobip.received().len(), 1);
    assert_eq!(provider.probe().await.unwrap_err().class, ErrorClass::Timeout);
}

#[tokio::test]
async fn a_reset_after_the_request_is_possibly_accepted() {
    let Harness { emulator: infobip, provider } = harness().await;
    scenarios::assert_reset_is_possibly_accepted(&*provider, &infobip, &sms(TO), verdict).await;
    scenarios::assert_recovers(&*provider, &infobip, &sms(TO)).await;
}

#[tokio::test]
async fn wrong_api_key_is_an_auth_config_error() {
    let Harness { emulator: infobip, provider } = harness_with(BuildContext::default(), |config| {
        config.api_key = SecretString::from("wrong")
    })
    .await;
    let error = provider.send(&sms(TO)).await.unwrap_err();
    assert_eq!(verdict(&error), (ErrorClass::AuthConfig, Certainty::NotSent));
    assert_eq!(error.provider_code.as_deref(), Some("E401"));
    let error = provider.send(&message(Channel::Voice, TO)).await.unwrap_err();
    assert_eq!(error.provider_code.as_deref(), Some("UNAUTHORIZED"));
    assert!(!infobip.received()[0].is_authenticated);
    assert_eq!(provider.probe().await.unwrap_err().class, ErrorClass::AuthConfig);
    assert!(!format!("{provider:?}").contains("wrong"));
}

#[tokio::test]
async fn probe_reads_logs_without_sending() {
    let Harness { emulator: infobip, provider } = harness().await;
    provider.probe().await.unwrap();
    let received = infobip.received();
    assert_eq!(received.len(), 1);
    assert_eq!(
        (received[0].kind, received[0].query.as_deref()),
        (RequestKind::Logs, Some("limit=1"))
    );
}

#[tokio::test]
async fn reports_reach_the_adapter_on_the_secret_path() {
    let (Harness { emulator: infobip, provider }, mut callbacks) = harness_with_reports().await;
    infobip.set_receipts(Receipts::delivered());
    let accepted = provider.send(&sms(TO)).await.unwrap();
    let report_url = infobip.received()[0].report_url.clone().unwrap();
    assert_eq!(report_url, format!("{}/reports/{TOKEN}", callbacks.base("infobip-1")));
    let reply = callbacks.next().await.outcome.unwrap();
    assert_eq!(reply.receipts[0].message_id, accepted.message_id);
    assert_eq!(reply.receipts[0].state, DeliveryState::Delivered);

    infobip.set_receipts(Receipts::undelivered(14));
    let accepted = provider.send(&message(Channel::Voice, TO)).await.unwrap();
    let reply = callbacks.next().await.outcome.unwrap();
    assert_eq!(reply.receipts[0].message_id, accepted.message_id);
    assert_eq!(reply.receipts[0].state, DeliveryState::Undelivered(ErrorClass::InvalidNumber));
    assert_eq!(reply.receipts[0].provider_code.as_deref(), Some("REJECTED_DESTINATION"));
    assert_eq!(
        infobip.wait_for_callbacks(2).await.iter().filter(|c| c.status == Some(200)).count(),
        2
    );
}

#[tokio::test]
async fn forged_reports_are_refused() {
    let (Harness { emulator: _infobip, provider: _provider }, mut callbacks) =
        harness_with_reports().await;
    let report = r#"{"results":[{"messageId":"m1","status":{"groupId":3,"groupName":"DELIVERED","id":5,"name":"DELIVERED_TO_HANDSET"}}]}"#;
    let client = reqwest::Client::new();
    let base = callbacks.base("infobip-1");
    let wrong = TOKEN.replace('0', "1");
    for path in [format!("/reports/{wrong}"), "/reports/".to_owned(), format!("/reports/{TOKEN}x")]
    {
        let response = client.post(format!("{base}{path}")).body(report).send().await.unwrap();
        assert_eq!(response.status(), 401, "{path}");
        assert_eq!(callbacks.next().await.outcome.unwrap_err(), CallbackError::BadSignature);
    }
    let response =
        client.post(format!("{base}/reports/{TOKEN}")).body(report).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(callbacks.next().await.outcome.unwrap().receipts[0].state, DeliveryState::Delivered);
}

#[tokio::test]
async fn without_a_token_no_reports_are_asked_for_or_accepted() {
    let callbacks = CallbackServer::bind().await;
    let context = BuildContext { callback_base: Some(callbacks.base("infobip-1")) };
    let Harness { emulator: infobip, provider } = harness_with(context, |_| {}).await;
    let mut callbacks = callbacks;
    callbacks.attach(provider.clone());
    provider.send(&sms(TO)).await.unwrap();
    assert_eq!(infobip.received()[0].report_url, None);
    let response = reqwest::Client::new()
        .post(format!("{}/reports/{TOKEN}", callbacks.base("infobip-1")))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(callbacks.next().await.outcome.unwrap_err(), CallbackError::BadSignature);
}
