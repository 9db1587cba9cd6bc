//! The real Twilio adapter against `switchboard-sim`'s Twilio emulator, over loopback sockets.

use crate::support;
use crate::support::scenarios;

use secrecy::SecretString;
use support::CODE;
use switchboard_core::{
    Certainty, Channel, Country, Destination, ErrorClass, OutboundMessage, ProviderId,
};
use switchboard_providers::{BuildContext, Provider, ProviderError, Twilio, TwilioConfig};
use switchboard_sim::twilio::{RunningEmulator, SendKind, TwilioAccount, TwilioEmulator};
use switchboard_sim::{Fault, Faults};

const SID: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "emulator-token";
const FROM: &str = "+15005550006";
const TO: &str = "+14155550100";

type Harness = support::Harness<switchboard_sim::twilio::Twilio, Twilio>;

fn config(base_url: String) -> TwilioConfig {
    TwilioConfig {
        account_sid: SID.into(),
        auth_token: SecretString::from(TOKEN),
        from: Some(FROM.into()),
        messaging_service_sid: None,
        voice_from: None,
        senders: Default::default(),
        base_url,
        timeout_ms: 2000,
        connect_timeout_ms: 300,
        max_per_second: None,
        voice: None,
        validity_period_s: None,
    }
}

async fn harness() -> Harness {
    harness_with(|_| {}).await
}

async fn harness_with(tweak: impl FnOnce(&mut TwilioConfig)) -> Harness {
    support::start_tweaked(TwilioAccount::new(SID, TOKEN), config, tweak, |config| {
        let id = ProviderId::parse("twilio-us").unwrap();
        Twilio::try_new(id, config, &BuildContext::default()).unwrap()
    })
    .await
}

/// Short enough to keep the suite fast, long enough for a loopback answer on a busy machine.
fn short_timeout(config: &mut TwilioConfig) {
    config.timeout_ms = 200;
    config.connect_timeout_ms = 100;
}

fn message(channel: Channel, to: &str) -> OutboundMessage {
    support::message(channel, to, "US", "en-US")
}

fn sms(to: &str) -> OutboundMessage {
    message(Channel::Sms, to)
}

/// The error's class and certainty, after checking it leaks nothing.
fn verdict(error: &ProviderError) -> (ErrorClass, Certainty) {
    support::verdict(error, &[CODE, TO, TOKEN, "4155550100", "5005550"])
}

#[tokio::test]
async fn sms_is_one_authenticated_messages_post() {
    let Harness { emulator: twilio, provider } = harness().await;
    let accepted = provider.send(&sms(TO)).await.unwrap();
    assert!(accepted.message_id.starts_with("SM") && accepted.message_id.len() == 34);

    let received = twilio.received();
    assert_eq!(received.len(), 1, "exactly one request: {received:?}");
    let send = &received[0];
    assert_eq!(send.kind, SendKind::Message);
    assert!(send.is_authenticated);
    assert_eq!(send.account_sid, SID);
    assert_eq!(send.to.as_deref(), Some(TO));
    assert_eq!(send.from.as_deref(), Some(FROM));
    assert!(send.body.as_deref().unwrap().contains(CODE));
    assert_eq!(send.param("ValidityPeriod"), None);
}

#[tokio::test]
async fn sms_through_a_messaging_service_with_a_validity_period() {
    let service = "MG0123456789abcdef0123456789abcdef";
    let Harness { emulator: twilio, provider } = harness_with(|config| {
        config.from = None;
        config.messaging_service_sid = Some(service.into());
        config.validity_period_s = Some(300);
    })
    .await;
    assert!(!provider.supports(Channel::Voice));
    provider.send(&sms(TO)).await.unwrap();
    let send = &twilio.received()[0];
    assert_eq!(
        (send.from.as_deref(), send.messaging_service_sid.as_deref()),
        (None, Some(service))
    );
    assert_eq!(send.param("ValidityPeriod"), Some("300"));

    let error = provider.send(&message(Channel::Voice, TO)).await.unwrap_err();
    assert_eq!(verdict(&error), (ErrorClass::AuthConfig, Certainty::NotSent));
    assert_eq!(twilio.received().len(), 1, "an unsupported channel sends nothing");
}

#[tokio::test]
async fn voice_is_one_call_whose_twiml_reads_the_digits() {
    let Harness { emulator: twilio, provider } = harness().await;
    let accepted = provider.send(&message(Channel::Voice, TO)).await.unwrap();
    assert!(accepted.message_id.starts_with("CA"));

    let received = twilio.received();
    assert_eq!(received.len(), 1);
    let call = &received[0];
    assert_eq!(call.kind, SendKind::Call);
    assert!(call.is_authenticated);
    assert_eq!((call.to.as_deref(), call.from.as_deref()), (Some(TO), Some(FROM)));
    let twiml = call.twiml.as_deref().unwrap();
    assert!(twiml.starts_with("<Response>") && twiml.ends_with("</Response>"), "{twiml}");
    assert!(twiml.contains("language=\"en-US\" voice=\"Polly.Joanna\""), "{twiml}");
    assert_eq!(twiml.matches("9, 1, 8, 2, 7, 3").count(), 2, "{twiml}");
}

#[tokio::test]
async fn magic_numbers_map_to_their_error_classes() {
    let Harness { emulator: twilio, provider } = harness().await;
    for (to, class, code) in [
        ("+15005550001", ErrorClass::InvalidNumber, "21211"),
        ("+15005550002", ErrorClass::AuthConfig, "21612"),
        ("+15005550003", ErrorClass::AuthConfig, "21408"),
        ("+15005550004", ErrorClass::Blocked, "21610"),
        ("+15005550009", ErrorClass::InvalidNumber, "21614"),
    ] {
        let error = provider.send(&sms(to)).await.unwrap_err();
        assert_eq!(verdict(&error), (class, Certainty::NotSent), "sms to {to}");
        assert_eq!(error.provider_code.as_deref(), Some(code), "sms to {to}");
    }
    for (to, class) in [
        ("+15005550001", ErrorClass::InvalidNumber),
        ("+15005550002", ErrorClass::AuthConfig),
        ("+15005550003", ErrorClass::AuthConfig),
        ("+15005550004", ErrorClass::Blocked),
    ] {
        let error = provider.send(&message(Channel::Voice, to)).await.unwrap_err();
        assert_eq!(verdict(&error), (class, Certainty::NotSent), "call to {to}");
    }
    assert_eq!(twilio.received().len(), 9, "one request per send, no retries");
}

#[tokio::test]
async fn magic_senders_map_to_their_error_classes() {
    for (from, class) in [
        ("+15005550001", ErrorClass::AuthConfig),
        ("+15005550007", ErrorClass::AuthConfig),
        ("+15005550008", ErrorClass::RateLimited),
    ] {
        // Bind the emulator: a `..` pattern would drop (and stop) it at once.
        let Harness { provider, emulator: _twilio } =
            harness_with(|config| config.from = Some(from.into())).await;
        let error = provider.send(&sms(TO)).await.unwrap_err();
        assert_eq!(verdict(&error), (class, Certainty::NotSent), "from {from}");
    }
}

#[tokio::test]
async fn rate_limit_carries_retry_after() {
    let Harness { emulator: twilio, provider } = harness().await;
    let error =
        &scenarios::assert_rate_limited(&provider, &twilio, 7, &[sms(TO)], verdict).await[0];
    assert_eq!(error.provider_code.as_deref(), Some("20429"));
}

#[tokio::test]
async fn server_errors_are_transient_and_not_sent() {
    let Harness { emulator: twilio, provider } = harness().await;
    twilio.set_faults(Faults::always(Fault::Status { status: 503, code: Some(20503) }));
    let error = provider.send(&sms(TO)).await.unwrap_err();
    assert_eq!(verdict(&error), (ErrorClass::Transient, Certainty::NotSent));

    // A proxy's HTML page instead of Twilio's JSON.
    twilio.set_faults(Faults::always(Fault::Status { status: 502, code: None }));
    let error = provider.send(&sms(TO)).await.unwrap_err();
    assert_eq!(verdict(&error), (ErrorClass::Transient, Certainty::NotSent));
    assert_eq!(error.provider_code, None);
}

#[tokio::test]
async fn a_hang_times_out_as_possibly_accepted() {
    let Harness { emulator: twilio, provider } = harness_with(short_timeout).await;
    scenarios::assert_hang_is_possibly_accepted(&provider, &twilio, &[sms(TO)], verdict).await;
    assert_eq!(twilio.received().len(), 1, "the request reached the provider");
}

#[tokio::test]
async fn a_reset_after_the_request_is_possibly_accepted() {
    let Harness { emulator: twilio, provider } = harness().await;
    scenarios::assert_reset_is_possibly_accepted(&provider, &twilio, &sms(TO), verdict).await;
    assert_eq!(twilio.received().len(), 1);

    scenarios::assert_recovers(&provider, &twilio, &sms(TO)).await;
}

#[tokio::test]
async fn a_refused_connection_is_not_sent() {
    let base_url = support::refused_base_url();
    let provider = Twilio::try_new(
        ProviderId::parse("twilio-us").unwrap(),
        &config(base_url),
        &BuildContext::default(),
    )
    .unwrap();
    scenarios::assert_refused_is_not_sent(&provider, &[sms(TO)], verdict).await;
}

#[tokio::test]
async fn wrong_credentials_are_an_auth_config_error() {
    let Harness { emulator: twilio, provider } =
        harness_with(|config| config.auth_token = SecretString::from("wrong")).await;
    let error = provider.send(&sms(TO)).await.unwrap_err();
    assert_eq!(verdict(&error), (ErrorClass::AuthConfig, Certainty::NotSent));
    assert_eq!(error.provider_code.as_deref(), Some("20003"));
    assert!(!twilio.received()[0].is_authenticated);
    assert!(!format!("{provider:?}").contains("wrong"), "the token never prints");
}

#[tokio::test]
async fn probe_checks_credentials_without_sending() {
    let Harness { emulator: twilio, provider } = harness().await;
    provider.probe().await.unwrap();
    assert!(twilio.received().is_empty(), "a probe never sends a message");

    let other_account = format!("AC{}", "f".repeat(32));
    let Harness { provider: misconfigured, emulator: _other_twilio } =
        harness_with(|config| config.account_sid = other_account).await;
    let error = misconfigured.probe().await.unwrap_err();
    assert_eq!(verdict(&error), (ErrorClass::AuthConfig, Certainty::NotSent));

    let Harness { provider: bad_token, emulator: _third_twilio } =
        harness_with(|config| config.auth_token = SecretString::from("wrong")).await;
    let error = bad_token.probe().await.unwrap_err();
    assert_eq!(verdict(&error), (ErrorClass::AuthConfig, Certainty::NotSent));
    assert_eq!(error.provider_code.as_deref(), Some("20003"));
}

#[tokio::test]
async fn probe_times_out_on_a_hang() {
    let Harness { emulator: twilio, provider } = harness_with(short_timeout).await;
    twilio.set_faults(Faults::always(Fault::Hang));
    let error = provider.probe().await.unwrap_err();
    assert_eq!(error.class, ErrorClass::Timeout);
}

mod callbacks {
    //! Status callbacks end to end: the emulator posts signed callbacks to a loopback receiver,
    //! the adapter verifies and reads them.

    use switchboard_providers::{
        BuildContext, Callback, CallbackError, DeliveryState, Receipt, SharedProvider,
    };
    use switchboard_sim::Receipts;

    use super::*;
    use crate::support::CallbackReceiver;

    const ID: &str = "twilio-us";

    struct Setup {
        twilio: RunningEmulator,
        provider: SharedProvider,
        receiver: CallbackReceiver,
    }

    async fn setup() -> Setup {
        let twilio = TwilioEmulator::start(TwilioAccount::new(SID, TOKEN)).await.unwrap();
        let receiver = CallbackReceiver::start().await;
        let context = BuildContext { callback_base: Some(receiver.callback_base(ID)) };
        let config = switchboard_providers::ProviderConfig::Twilio(config(twilio.base_url()));
        let provider =
            switchboard_providers::build(ProviderId::parse(ID).unwrap(), &config, &context)
                .unwrap();
        Setup { twilio, provider, receiver }
    }

    async fn receipt(provider: &SharedProvider, callback: &Callback) -> Receipt {
        let reply = provider.handle_callback(callback).await.unwrap();
        assert_eq!((reply.status, reply.body.as_str()), (200, ""));
        assert_eq!(reply.receipts.len(), 1);
        reply.receipts[0].clone()
    }

    #[tokio::test]
    async fn an_sms_reports_sent_then_delivered() {
        let Setup { twilio, provider, mut receiver } = setup().await;
        let accepted = provider.send(&sms(TO)).await.unwrap();
        let sent = &twilio.received()[0];
        assert_eq!(
            sent.param("StatusCallback"),
            Some(format!("{}/status", receiver.callback_base(ID)).as_str())
        );

        let first = receiver.next(ID).await;
        assert_eq!((first.method.as_str(), first.subpath.as_str()), ("POST", "/status"));
        let first = receipt(&provider, &first).await;
        assert_eq!(first.message_id, accepted.message_id);
        assert_eq!(first.state, DeliveryState::Pending);

        let last = receipt(&provider, &receiver.next(ID).await).await;
        assert_eq!(last.message_id, accepted.message_id);
        assert_eq!(last.state, DeliveryState::Delivered);
        assert_eq!(last.provider_code.as_deref(), Some("delivered"));
    }

    #[tokio::test]
    async fn an_undelivered_sms_carries_its_error_class() {
        let Setup { twilio, provider, mut receiver } = setup().await;
        twilio.set_receipts(Receipts::undelivered(30005));
        let accepted = provider.send(&sms(TO)).await.unwrap();
        receiver.next(ID).await;
        let last = receipt(&provider, &receiver.next(ID).await).await;
        assert_eq!(
            last,
            Receipt {
                message_id: accepted.message_id,
                state: DeliveryState::Undelivered(ErrorClass::InvalidNumber),
                provider_code: Some("30005".into()),
            }
        );
    }

    #[tokio::test]
    async fn a_call_reports_answered_then_completed() {
        let Setup { twilio, provider, mut receiver } = setup().await;
        let accepted = provider.send(&message(Channel::Voice, TO)).await.unwrap();
        let events: Vec<_> = twilio.received()[0]
            .params
            .iter()
            .filter(|(name, _)| name == "StatusCallbackEvent")
            .map(|(_, value)| value.clone())
            .collect();
        assert_eq!(events, ["answered", "completed"]);
        for expected_status in ["in-progress", "completed"] {
            let receipt = receipt(&provider, &receiver.next(ID).await).await;
            assert_eq!(receipt.message_id, accepted.message_id);
            assert_eq!(receipt.state, DeliveryState::Delivered);
            assert_eq!(receipt.provider_code.as_deref(), Some(expected_status));
        }

        twilio.set_receipts(Receipts::undelivered(30003));
        provider.send(&message(Channel::Voice, TO)).await.unwrap();
        let failed = receipt(&provider, &receiver.next(ID).await).await;
        assert_eq!(failed.state, DeliveryState::Undelivered(ErrorClass::Transient));
    }

    #[tokio::test]
    async fn a_callback_that_does_not_verify_has_no_effect() {
        let Setup { provider, mut receiver, twilio: _twilio } = setup().await;
        provider.send(&sms(TO)).await.unwrap();
        let genuine = receiver.next(ID).await;

        let mut tampered = genuine.clone();
        let body = String::from_utf8(genuine.body.to_vec()).unwrap();
        tampered.body = body.replace("MessageStatus=sent", "MessageStatus=delivered").into();
        assert_ne!(tampered.body, genuine.body);
        let mut other_url = genuine.clone();
        other_url.url = other_url.url.replace("/status", "/status?x=1");
        let mut unsigned = genuine.clone();
        unsigned.headers.remove("x-twilio-signature");
        let mut other_token = genuine.clone();
        let forged = switchboard_sim::twilio::signature(
            "another-token",
            &genuine.url,
            &serde_urlencoded::from_bytes::<Vec<(String, String)>>(&genuine.body).unwrap(),
        );
        other_token.headers.insert("x-twilio-signature", forged.parse().unwrap());
        for forged in [tampered, other_url, unsigned, other_token] {
            assert_eq!(
                provider.handle_callback(&forged).await.unwrap_err(),
                CallbackError::BadSignature
            );
        }

        let mut elsewhere = genuine.clone();
        elsewhere.subpath = "/answer".into();
        assert_eq!(
            provider.handle_callback(&elsewhere).await.unwrap_err(),
            CallbackError::NotFound
        );
        assert!(provider.handle_callback(&genuine).await.is_ok(), "the genuine one verifies");
    }

    #[tokio::test]
    async fn without_a_public_url_nothing_asks_for_callbacks() {
        let Harness { emulator: twilio, provider } = harness().await;
        provider.send(&sms(TO)).await.unwrap();
        provider.send(&message(Channel::Voice, TO)).await.unwrap();
        for send in twilio.received() {
            assert!(send.params.iter().all(|(name, _)| !name.starts_with("StatusCallback")));
        }
    }
}

#[tokio::test]
async fn senders_follow_the_destination_country() {
    let Harness { emulator: twilio, provider } = harness_with(|config| {
        config.voice_from = Some("+15005550010".into());
        config.senders.insert(
            "GB".into(),
            switchboard_providers::CountrySenderConfig {
                sms: Some("Acme".into()),
                voice: Some("+447700900001".into()),
                max_per_second: None,
            },
        );
    })
    .await;
    let mut british = sms("+447700900123");
    british.destination = Destination::new("+447700900123".into(), Country::parse("GB").unwrap());
    provider.send(&british).await.unwrap();
    british.channel = Channel::Voice;
    provider.send(&british).await.unwrap();
    provider.send(&message(Channel::Voice, TO)).await.unwrap();
    let froms: Vec<_> = twilio.received().iter().map(|send| send.from.clone().unwrap()).collect();
    assert_eq!(froms, ["Acme", "+447700900001", "+15005550010"]);
}
