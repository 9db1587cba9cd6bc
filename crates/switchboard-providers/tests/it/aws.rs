//! The real AWS SMS and Voice v2 adapter against `switchboard-sim`'s emulator, which verifies
//! SigV4 by recomputing it, over loopback sockets.

use crate::support;
use crate::support::scenarios;

use secrecy::SecretString;
use support::CODE;
use switchboard_core::{
    Certainty, Channel, Country, Destination, ErrorClass, OutboundMessage, ProviderId,
};
use switchboard_providers::{
    AwsSmsVoice, AwsSmsVoiceConfig, BuildContext, Callback, CallbackError, Provider, ProviderError,
};
use switchboard_sim::aws::AwsAccount;
use switchboard_sim::{Fault, Faults};

const KEY_ID: &str = "AKIDSWITCHBOARD0001";
const SECRET: &str = "emulator/secret+key";
const REGION: &str = "eu-west-1";
pub(crate) const FROM: &str = "+15550000000";
const TO: &str = "+14155550100";

pub(crate) fn config(endpoint_url: String) -> AwsSmsVoiceConfig {
    AwsSmsVoiceConfig {
        region: REGION.into(),
        access_key_id: Some(KEY_ID.into()),
        secret_access_key: Some(SecretString::from(SECRET)),
        session_token: None,
        from: Some(FROM.into()),
        voice_from: None,
        senders: Default::default(),
        origination_identity: None,
        configuration_set_name: None,
        max_price: None,
        max_price_per_minute: None,
        time_to_live_s: None,
        voice_id: None,
        endpoint_url: Some(endpoint_url),
        timeout_ms: 2000,
        connect_timeout_ms: 300,
        max_per_second: None,
    }
}

/// An account with the adapter's credentials, in its region.
pub(crate) fn account() -> AwsAccount {
    AwsAccount::new(KEY_ID, SECRET, REGION)
}

/// The adapter `config` describes. No environment: the test must not depend on the machine's
/// AWS variables.
pub(crate) fn build(config: &AwsSmsVoiceConfig) -> AwsSmsVoice {
    let id = ProviderId::parse("aws-eu").unwrap();
    AwsSmsVoice::try_new_with_env(id, config, &BuildContext::default(), |_| None).unwrap()
}

type Harness = support::Harness<switchboard_sim::aws::Aws, AwsSmsVoice>;

async fn harness_with(account: AwsAccount, tweak: impl FnOnce(&mut AwsSmsVoiceConfig)) -> Harness {
    support::start_tweaked(account, config, tweak, build).await
}

async fn harness() -> Harness {
    harness_with(account(), |_| {}).await
}

fn message(channel: Channel, to: &str) -> OutboundMessage {
    support::message(channel, to, "US", "en-GB")
}

fn verdict(error: &ProviderError) -> (ErrorClass, Certainty) {
    support::verdict(error, &[CODE, SECRET, "4155550100", "5550100"])
}

#[tokio::test]
async fn sms_is_one_signed_send_text_message() {
    let Harness { emulator: aws, provider } = harness().await;
    let accepted = provider.send(&message(Channel::Sms, TO)).await.unwrap();
    assert_eq!(accepted.message_id.len(), 36, "{}", accepted.message_id);

    let received = aws.received();
    assert_eq!(received.len(), 1);
    let call = &received[0];
    assert_eq!(call.operation.as_deref(), Some("SendTextMessage"));
    assert_eq!(call.content_type.as_deref(), Some("application/x-amz-json-1.0"));
    assert!(call.is_signature_valid);
    assert_eq!(call.body["DestinationPhoneNumber"], TO);
    assert_eq!(call.body["OriginationIdentity"], FROM);
    assert_eq!(call.body["MessageType"], "TRANSACTIONAL");
    assert!(call.body["MessageBody"].as_str().unwrap().contains(CODE));
}

#[tokio::test]
async fn voice_is_one_send_voice_message_reading_the_digits() {
    let Harness { emulator: aws, provider } = harness_with(account(), |config| {
        config.configuration_set_name = Some("otp-events".into());
        config.max_price_per_minute = Some("0.10".into());
        config.time_to_live_s = Some(120);
    })
    .await;
    provider.send(&message(Channel::Voice, TO)).await.unwrap();
    let call = &aws.received()[0];
    assert_eq!(call.operation.as_deref(), Some("SendVoiceMessage"));
    assert!(call.is_signature_valid);
    assert_eq!(call.body["OriginationIdentity"], FROM);
    assert_eq!(call.body["MessageBodyTextType"], "SSML");
    assert_eq!(call.body["VoiceId"], "AMY", "en-GB speaks with a British voice");
    assert_eq!(call.body["ConfigurationSetName"], "otp-events");
    assert_eq!(call.body["MaxPricePerMinute"], "0.10");
    assert_eq!(call.body["TimeToLive"], 120);
    let ssml = call.body["MessageBody"].as_str().unwrap();
    assert!(ssml.starts_with("<speak>") && ssml.ends_with("</speak>"), "{ssml}");
    assert_eq!(ssml.matches("9, 1, 8, 2, 7, 3").count(), 2, "{ssml}");
}

#[tokio::test]
async fn magic_numbers_map_to_their_error_classes() {
    let Harness { emulator: aws, provider } = harness().await;
    for (to, class, code) in [
        ("+15550100001", ErrorClass::InvalidNumber, "ValidationException:INVALID_PARAMETER"),
        (
            "+15550100002",
            ErrorClass::Blocked,
            "ConflictException:DESTINATION_PHONE_NUMBER_OPTED_OUT",
        ),
        ("+15550100003", ErrorClass::Blocked, "ValidationException:DESTINATION_COUNTRY_BLOCKED"),
        (
            "+15550100004",
            ErrorClass::Funds,
            "ServiceQuotaExceededException:MONTHLY_SPEND_LIMIT_REACHED_FOR_TEXT",
        ),
        ("+15550100005", ErrorClass::AuthConfig, "AccessDeniedException:ACCOUNT_DISABLED"),
        (
            "+15550100006",
            ErrorClass::AuthConfig,
            "ConflictException:DESTINATION_PHONE_NUMBER_NOT_VERIFIED",
        ),
        ("+15550100007", ErrorClass::AuthConfig, "ResourceNotFoundException"),
        ("+15550100008", ErrorClass::RateLimited, "ThrottlingException"),
    ] {
        let error = provider.send(&message(Channel::Sms, to)).await.unwrap_err();
        assert_eq!(verdict(&error), (class, Certainty::NotSent), "sms to {to}");
        assert_eq!(error.provider_code.as_deref(), Some(code), "sms to {to}");
    }
    let error = provider.send(&message(Channel::Voice, "+15550100004")).await.unwrap_err();
    assert_eq!(
        error.provider_code.as_deref(),
        Some("ServiceQuotaExceededException:MONTHLY_SPEND_LIMIT_REACHED_FOR_VOICE")
    );
    assert_eq!(error.class, ErrorClass::Funds);
    assert_eq!(aws.received().len(), 9, "one request per send, no retries");
}

#[tokio::test]
async fn wrong_credentials_are_refused_by_signature_verification() {
    let account = account();
    for (tweak, code) in [
        (
            Box::new(|c: &mut AwsSmsVoiceConfig| {
                c.secret_access_key = Some(SecretString::from("wrong-secret"))
            }) as Box<dyn FnOnce(&mut AwsSmsVoiceConfig)>,
            "InvalidSignatureException",
        ),
        (
            Box::new(|c: &mut AwsSmsVoiceConfig| c.region = "us-east-1".into()),
            "InvalidSignatureException",
        ),
        (
            Box::new(|c: &mut AwsSmsVoiceConfig| {
                c.access_key_id = Some("AKIDSOMEONEELSE0001".into())
            }),
            "UnrecognizedClientException",
        ),
        (
            Box::new(|c: &mut AwsSmsVoiceConfig| c.session_token = Some(SecretString::from("t"))),
            "UnrecognizedClientException",
        ),
    ] {
        let Harness { emulator: aws, provider } = harness_with(account.clone(), tweak).await;
        let error = provider.send(&message(Channel::Sms, TO)).await.unwrap_err();
        assert_eq!(verdict(&error), (ErrorClass::AuthConfig, Certainty::NotSent), "{code}");
        assert_eq!(error.provider_code.as_deref(), Some(code));
        assert!(!aws.received()[0].is_signature_valid);
        assert!(!format!("{provider:?}").contains("wrong-secret"), "the secret never prints");
    }
}

#[tokio::test]
async fn temporary_credentials_sign_their_session_token() {
    let account = account().with_session_token("session/token=");
    let Harness { emulator: aws, provider } = harness_with(account, |config| {
        config.session_token = Some(SecretString::from("session/token="));
    })
    .await;
    provider.send(&message(Channel::Sms, TO)).await.unwrap();
    assert!(aws.received()[0].is_signature_valid);
}

#[tokio::test]
async fn faults_are_classified() {
    let Harness { emulator: aws, provider } = harness().await;
    let sms = [message(Channel::Sms, TO)];
    scenarios::assert_rate_limited(&provider, &aws, 4, &sms, verdict).await;

    aws.set_faults(Faults::always(Fault::Status { status: 500, code: Some(1) }));
    let error = provider.send(&message(Channel::Sms, TO)).await.unwrap_err();
    assert_eq!(verdict(&error), (ErrorClass::Transient, Certainty::NotSent));
    assert_eq!(error.provider_code.as_deref(), Some("InternalServerException"));

    aws.set_faults(Faults::always(Fault::Status { status: 502, code: None }));
    let error = provider.send(&message(Channel::Sms, TO)).await.unwrap_err();
    assert_eq!(
        (verdict(&error), error.provider_code),
        ((ErrorClass::Transient, Certainty::NotSent), None)
    );

    scenarios::assert_reset_is_possibly_accepted(&provider, &aws, &sms[0], verdict).await;
}

#[tokio::test]
async fn a_hang_times_out_as_possibly_accepted() {
    let Harness { emulator: aws, provider } = harness_with(account(), |config| {
        config.timeout_ms = 200;
        config.connect_timeout_ms = 100;
    })
    .await;
    let sms = [message(Channel::Sms, TO)];
    scenarios::assert_hang_is_possibly_accepted(&provider, &aws, &sms, verdict).await;
}

#[tokio::test]
async fn probe_checks_credentials_without_sending() {
    let Harness { emulator: aws, provider } = harness().await;
    provider.probe().await.unwrap();
    let received = aws.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].operation.as_deref(), Some("DescribeAccountAttributes"));

    let Harness { provider: wrong, emulator: _aws } = harness_with(account(), |config| {
        config.secret_access_key = Some(SecretString::from("wrong"));
    })
    .await;
    assert_eq!(wrong.probe().await.unwrap_err().class, ErrorClass::AuthConfig);
}

#[tokio::test]
async fn origination_identity_comes_from_senders_else_the_pool() {
    let Harness { emulator: aws, provider } = harness_with(account(), |config| {
        config.from = None;
        config.origination_identity =
            Some("arn:aws:sms-voice:eu-west-1:111122223333:pool/pool-1234abcd".into());
        config.senders.insert(
            "GB".into(),
            switchboard_providers::CountrySenderConfig {
                sms: Some("Acme".into()),
                voice: None,
                max_per_second: None,
            },
        );
    })
    .await;
    assert!(provider.supports(Channel::Voice));
    let mut british = message(Channel::Sms, "+447700900123");
    british.destination = Destination::new("+447700900123".into(), Country::parse("GB").unwrap());
    provider.send(&british).await.unwrap();
    provider.send(&message(Channel::Voice, TO)).await.unwrap();
    let identities: Vec<_> =
        aws.received().iter().map(|call| call.body["OriginationIdentity"].clone()).collect();
    assert_eq!(identities[0], "Acme");
    assert!(identities[1].as_str().unwrap().starts_with("arn:aws:sms-voice:"));
}

#[tokio::test]
async fn without_an_identity_voice_is_refused_and_sms_lets_aws_choose() {
    let Harness { emulator: aws, provider } =
        harness_with(account(), |config| config.from = None).await;
    assert!(!provider.supports(Channel::Voice));
    let error = provider.send(&message(Channel::Voice, TO)).await.unwrap_err();
    assert_eq!(verdict(&error), (ErrorClass::AuthConfig, Certainty::NotSent));
    assert!(aws.received().is_empty(), "nothing was sent");
    provider.send(&message(Channel::Sms, TO)).await.unwrap();
    assert!(aws.received()[0].body.get("OriginationIdentity").is_none());
}

#[tokio::test]
async fn aws_takes_no_callbacks() {
    let Harness { provider, emulator: _aws } = harness().await;
    let callback = Callback {
        method: "POST".into(),
        url: "https://switchboard.example/callbacks/aws-eu/status".into(),
        subpath: "/status".into(),
        headers: Default::default(),
        body: Default::default(),
    };
    assert_eq!(provider.handle_callback(&callback).await.unwrap_err(), CallbackError::Unsupported);
}

#[test]
fn credentials_may_come_from_the_environment_only() {
    let mut config = config("http://127.0.0.1:9".into());
    config.access_key_id = None;
    config.secret_access_key = None;
    let id = ProviderId::parse("aws-eu").unwrap();
    let error =
        AwsSmsVoice::try_new_with_env(id.clone(), &config, &BuildContext::default(), |_| None)
            .unwrap_err();
    assert!(error.to_string().starts_with("providers.aws-eu.access_key_id: "), "{error}");
    let env = |name: &str| match name {
        "AWS_ACCESS_KEY_ID" => Some(KEY_ID.to_owned()),
        "AWS_SECRET_ACCESS_KEY" => Some(SECRET.to_owned()),
        _ => None,
    };
    assert!(AwsSmsVoice::try_new_with_env(id, &config, &BuildContext::default(), env).is_ok());
}
