//! Conformance with the botocore model of AWS End User Messaging SMS and Voice v2
//! (`botocore/data/pinpoint-sms-voice-v2/2022-03-31/service-2.json` of
//! <https://github.com/boto/botocore>, distilled into `fixtures/specs/`): the adapter's requests, as the emulator received
//! them off the wire, name an operation the model has, with the model's protocol, and bodies
//! that hold every required member, no unknown member, and values of the declared types,
//! lengths, enums and patterns.

use crate::{aws, support};

use std::sync::OnceLock;

use serde_json::Value;
use switchboard_core::{Channel, MessageText, OutboundMessage};
use switchboard_providers::{AwsSmsVoiceConfig, Provider};
use switchboard_sim::aws::{AwsEmulator, ReceivedCall};

fn model() -> &'static Value {
    static MODEL: OnceLock<Value> = OnceLock::new();
    MODEL.get_or_init(|| support::load_spec("pinpoint-sms-voice-v2.service-2.json"))
}

/// The model's patterns for the members the adapter sends, checked by hand (several use
/// look-around, which the `regex` crate does not support). An unknown pattern fails the test,
/// so a model update that changes one is noticed.
fn matches_pattern(pattern: &str, value: &str) -> bool {
    match pattern {
        r"\+?[1-9][0-9]{1,18}" => {
            let digits = value.strip_prefix('+').unwrap_or(value);
            !digits.starts_with('0')
                && digits.len() >= 2
                && digits.bytes().all(|b| b.is_ascii_digit())
        }
        r"[A-Za-z0-9_:/\+-]+" => {
            value.bytes().all(|b| b.is_ascii_alphanumeric() || b"_:/+-".contains(&b))
        }
        r"[A-Za-z0-9_:/-]+" => {
            value.bytes().all(|b| b.is_ascii_alphanumeric() || b"_:/-".contains(&b))
        }
        r"(?!\s*$)[\s\S]+" => !value.trim().is_empty(),
        r"[0-9]{0,2}\.[0-9]{1,5}" => value.split_once('.').is_some_and(|(units, fraction)| {
            units.len() <= 2
                && (1..=5).contains(&fraction.len())
                && units.bytes().chain(fraction.bytes()).all(|b| b.is_ascii_digit())
        }),
        other => panic!("pattern {other} has no checker here"),
    }
}

/// What is wrong with `value` for `shape_name`.
fn shape_violations(path: &str, shape_name: &str, value: &Value, problems: &mut Vec<String>) {
    let shape = &model()["shapes"][shape_name];
    match (shape["type"].as_str().unwrap(), value) {
        ("structure", Value::Object(members)) => {
            let declared = shape["members"].as_object().unwrap();
            for required in shape["required"].as_array().into_iter().flatten() {
                let required = required.as_str().unwrap();
                if !members.contains_key(required) {
                    problems.push(format!("{path}.{required} is required"));
                }
            }
            for (name, value) in members {
                match declared.get(name) {
                    Some(member) => shape_violations(
                        &format!("{path}.{name}"),
                        member["shape"].as_str().unwrap(),
                        value,
                        problems,
                    ),
                    None => problems.push(format!("{path}.{name} is not in {shape_name}")),
                }
            }
        }
        ("string", Value::String(text)) => {
            let length = text.chars().count() as u64;
            if shape["min"].as_u64().is_some_and(|min| length < min)
                || shape["max"].as_u64().is_some_and(|max| length > max)
            {
                problems.push(format!("{path} length {length} outside {shape_name}'s bounds"));
            }
            if let Some(allowed) = shape["enum"].as_array()
                && !allowed.iter().any(|allowed| allowed == text)
            {
                problems.push(format!("{path}={text} not in {shape_name}'s enum"));
            }
            if let Some(pattern) = shape["pattern"].as_str()
                && !matches_pattern(pattern, text)
            {
                problems.push(format!("{path} does not match {pattern}"));
            }
        }
        ("integer", Value::Number(number)) => {
            let n = number.as_i64().unwrap_or(i64::MIN);
            if shape["min"].as_i64().is_some_and(|min| n < min)
                || shape["max"].as_i64().is_some_and(|max| n > max)
            {
                problems.push(format!("{path}={n} outside {shape_name}'s bounds"));
            }
        }
        ("boolean", Value::Bool(_)) => {}
        (kind, value) => problems.push(format!("{path} is {value}, not a {kind}")),
    }
}

fn violations(call: &ReceivedCall) -> Vec<String> {
    let metadata = &model()["metadata"];
    let mut problems = Vec::new();
    let prefix = format!("{}.", metadata["targetPrefix"].as_str().unwrap());
    let target = call.target.as_deref().unwrap_or_default();
    let Some(operation) = target.strip_prefix(&prefix) else {
        return vec![format!("target {target} lacks {prefix}")];
    };
    let content_type =
        format!("application/x-amz-json-{}", metadata["jsonVersion"].as_str().unwrap());
    if call.content_type.as_deref() != Some(content_type.as_str()) {
        problems.push(format!("content type {:?}, model says {content_type}", call.content_type));
    }
    match model()["operations"][operation]["input"]["shape"].as_str() {
        Some(input) => shape_violations(operation, input, &call.body, &mut problems),
        None => problems.push(format!("operation {operation} is not in the model")),
    }
    problems
}

fn message(channel: Channel, locale: &str) -> OutboundMessage {
    OutboundMessage {
        text: MessageText::new("Ihr Code lautet 918273".into()),
        ..support::message(channel, "+14155550100", "US", locale)
    }
}

#[tokio::test]
async fn every_request_the_adapter_makes_fits_the_model() {
    let aws = AwsEmulator::start(aws::account()).await.unwrap();
    // The adapter module's config, calling from a number and texting from none.
    let minimal = AwsSmsVoiceConfig {
        from: None,
        voice_from: Some(aws::FROM.into()),
        ..aws::config(aws.base_url())
    };
    let everything = AwsSmsVoiceConfig {
        from: Some("Acme".into()),
        origination_identity: Some("pool-0123456789abcdef0123456789abcdef".into()),
        configuration_set_name: Some("otp-events".into()),
        max_price: Some("0.05".into()),
        max_price_per_minute: Some("0.10".into()),
        time_to_live_s: Some(300),
        voice_id: Some("MATTHEW".into()),
        ..minimal.clone()
    };
    for config in [minimal, everything] {
        let provider = aws::build(&config);
        for locale in ["en-US", "de-DE", "ja-JP", "xx"] {
            provider.send(&message(Channel::Sms, locale)).await.unwrap();
            provider.send(&message(Channel::Voice, locale)).await.unwrap();
        }
        provider.probe().await.unwrap();
    }
    let received = aws.received();
    assert_eq!(received.len(), 18);
    for call in &received {
        assert!(call.is_signature_valid);
        let problems = violations(call);
        assert!(problems.is_empty(), "{:?}: {problems:?}", call.operation);
    }
    let operations: std::collections::BTreeSet<_> =
        received.iter().filter_map(|call| call.operation.clone()).collect();
    assert_eq!(
        operations.into_iter().collect::<Vec<_>>(),
        ["DescribeAccountAttributes", "SendTextMessage", "SendVoiceMessage"]
    );
}

#[test]
fn the_checker_catches_violations() {
    let call = |target: &str, body: Value| ReceivedCall {
        operation: None,
        target: Some(target.into()),
        content_type: Some("application/x-amz-json-1.0".into()),
        is_signature_valid: true,
        body,
        received_at: std::time::SystemTime::UNIX_EPOCH,
    };
    let problems = violations(&call(
        "PinpointSMSVoiceV2.SendVoiceMessage",
        serde_json::json!({
            "DestinationPhoneNumber": "0123",
            "VoiceId": "Joanna",
            "TimeToLive": 1,
            "MaxPricePerMinute": "1",
            "Unicode": true,
            "DryRun": "yes",
        }),
    ));
    for expected in [
        "OriginationIdentity is required",
        "DestinationPhoneNumber does not match",
        "VoiceId=Joanna not in",
        "TimeToLive=1 outside",
        "MaxPricePerMinute",
        "Unicode is not in",
        "DryRun is \"yes\"",
    ] {
        assert!(problems.iter().any(|p| p.contains(expected)), "{expected}: {problems:?}");
    }
    assert!(
        violations(&call("PinpointSMSVoiceV2.SendFax", serde_json::json!({})))[0]
            .contains("not in the model")
    );
    assert!(violations(&call("SendTextMessage", serde_json::json!({})))[0].contains("lacks"));
}
