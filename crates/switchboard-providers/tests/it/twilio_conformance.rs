//! Conformance with Twilio's published OpenAPI description (`twilio_api_v2010.json` of
//! <https://github.com/twilio/twilio-oai>, distilled into `fixtures/specs/`): the adapter's form parameters for CreateMessage and CreateCall, as the
//! emulator received them off the wire, and the emulator's 201 bodies.

use crate::support;

use std::sync::OnceLock;

use secrecy::SecretString;
use serde_json::Value;
use switchboard_core::{Channel, MessageText, OutboundMessage, ProviderId};
use switchboard_providers::{BuildContext, Provider, Twilio, TwilioConfig};
use switchboard_sim::Receipts;
use switchboard_sim::twilio::{ReceivedSend, TwilioAccount, TwilioEmulator};

const SID: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "emulator-token";
const MESSAGES: &str = "/2010-04-01/Accounts/{AccountSid}/Messages.json";
const CALLS: &str = "/2010-04-01/Accounts/{AccountSid}/Calls.json";

fn spec() -> &'static Value {
    static SPEC: OnceLock<Value> = OnceLock::new();
    SPEC.get_or_init(|| support::load_spec("twilio_api_v2010.json"))
}

/// `#/components/schemas/x` to its schema; anything else as is.
fn resolve(schema: &Value) -> &Value {
    match schema["$ref"].as_str() {
        Some(reference) => {
            let name = reference.strip_prefix("#/components/schemas/").unwrap();
            &spec()["components"]["schemas"][name]
        }
        None => schema,
    }
}

fn operation(path: &str) -> &'static Value {
    &spec()["paths"][path]["post"]
}

/// `messaging_service_sid` -> `MessagingServiceSid` (the spec's `x-twilio.conditional` is
/// written in snake case).
fn pascal(snake: &str) -> String {
    snake
        .split('_')
        .map(|word| {
            let mut chars = word.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// Checks one received form against the operation's request schema; returns what is wrong.
fn violations(operation: &Value, send: &ReceivedSend) -> Vec<String> {
    let schema =
        &operation["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"];
    let properties = schema["properties"].as_object().unwrap();
    let mut problems = Vec::new();
    for required in schema["required"].as_array().unwrap() {
        let name = required.as_str().unwrap();
        if send.param(name).is_none() {
            problems.push(format!("required {name} missing"));
        }
    }
    for group in operation["x-twilio"]["conditional"].as_array().into_iter().flatten() {
        let names: Vec<String> =
            group.as_array().unwrap().iter().map(|name| pascal(name.as_str().unwrap())).collect();
        let n_present = names.iter().filter(|name| send.param(name).is_some()).count();
        if n_present != 1 {
            problems.push(format!("exactly one of {names:?} expected, {n_present} sent"));
        }
    }
    for (name, value) in &send.params {
        let Some(property) = properties.get(name) else {
            problems.push(format!("{name} is not a CreateMessage/CreateCall parameter"));
            continue;
        };
        let property = resolve(property);
        let (property, is_repeated) = match property["type"].as_str() {
            Some("array") => (resolve(&property["items"]), true),
            _ => (property, false),
        };
        if !is_repeated && send.params.iter().filter(|(other, _)| other == name).count() > 1 {
            problems.push(format!("{name} repeated but not an array"));
        }
        if let Some(allowed) = property["enum"].as_array()
            && !allowed.iter().any(|allowed| allowed == value)
        {
            problems.push(format!("{name}={value} not in {allowed:?}"));
        }
        let is_typed = match property["type"].as_str() {
            Some("integer") => value.parse::<i64>().is_ok(),
            Some("number") => value.parse::<f64>().is_ok(),
            Some("boolean") => value == "true" || value == "false",
            _ => true,
        };
        if !is_typed {
            problems.push(format!("{name} is not a {}", property["type"]));
        }
        let is_formatted = match property["format"].as_str() {
            Some("uri") => value.starts_with("https://") || value.starts_with("http://"),
            Some("phone-number") | Some("endpoint") => {
                value.starts_with('+')
                    || value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b' ')
            }
            Some("twiml") => value.starts_with("<Response>") && value.ends_with("</Response>"),
            _ => true,
        };
        if !is_formatted {
            problems.push(format!("{name} does not match format {}", property["format"]));
        }
        let length = value.chars().count() as u64;
        if property["minLength"].as_u64().is_some_and(|min| length < min)
            || property["maxLength"].as_u64().is_some_and(|max| length > max)
        {
            problems.push(format!("{name} has a length outside the spec's bounds"));
        }
    }
    problems
}

fn message(channel: Channel) -> OutboundMessage {
    OutboundMessage {
        text: MessageText::new("Your code is 918273".into()),
        ..support::message(channel, "+14155550100", "US", "en-US")
    }
}

fn config(base_url: String, from: Option<&str>, service: Option<&str>) -> TwilioConfig {
    TwilioConfig {
        account_sid: SID.into(),
        auth_token: SecretString::from(TOKEN),
        from: from.map(str::to_owned),
        messaging_service_sid: service.map(str::to_owned),
        voice_from: Some("+15005550006".into()),
        senders: Default::default(),
        base_url,
        timeout_ms: 2000,
        connect_timeout_ms: 300,
        max_per_second: None,
        voice: None,
        validity_period_s: Some(300),
    }
}

/// Every form the adapter can produce: SMS from a number and through a messaging service, and
/// calls, each with and without status callbacks.
async fn every_form() -> Vec<ReceivedSend> {
    let twilio = TwilioEmulator::start(TwilioAccount::new(SID, TOKEN)).await.unwrap();
    twilio.set_receipts(Receipts::none());
    let receiver = support::CallbackReceiver::start().await;
    let with_callbacks = BuildContext { callback_base: Some(receiver.callback_base("t")) };
    let service = "MG0123456789abcdef0123456789abcdef";
    for (from, service) in [(Some("+15005550006"), None), (None, Some(service))] {
        for context in [BuildContext::default(), with_callbacks.clone()] {
            let config = config(twilio.base_url(), from, service);
            let provider =
                Twilio::try_new(ProviderId::parse("t").unwrap(), &config, &context).unwrap();
            provider.send(&message(Channel::Sms)).await.unwrap();
            provider.send(&message(Channel::Voice)).await.unwrap();
        }
    }
    twilio.received()
}

#[tokio::test]
async fn adapter_forms_are_valid_create_message_and_create_call_requests() {
    let sends = every_form().await;
    assert_eq!(sends.len(), 8);
    assert!(sends.iter().any(|send| send.param("StatusCallbackEvent").is_some()));
    assert!(sends.iter().any(|send| send.param("MessagingServiceSid").is_some()));
    for send in &sends {
        let operation = match send.kind {
            switchboard_sim::twilio::SendKind::Message => operation(MESSAGES),
            switchboard_sim::twilio::SendKind::Call => operation(CALLS),
        };
        let problems = violations(operation, send);
        assert!(problems.is_empty(), "{:?}: {problems:?}", send.kind);
    }
}

#[test]
fn the_checker_catches_violations() {
    let mut send = ReceivedSend {
        kind: switchboard_sim::twilio::SendKind::Call,
        account_sid: SID.into(),
        is_authenticated: true,
        to: None,
        from: None,
        messaging_service_sid: None,
        body: None,
        twiml: None,
        url: None,
        params: vec![
            ("From".into(), "+15005550006".into()),
            ("StatusCallbackMethod".into(), "PUT".into()),
            ("Timeout".into(), "soon".into()),
            ("Twiml".into(), "<Response/>".into()),
            ("Url".into(), "https://x.example/".into()),
            ("Colour".into(), "blue".into()),
        ],
        received_at: std::time::SystemTime::UNIX_EPOCH,
    };
    let problems = violations(operation(CALLS), &send);
    for expected in [
        "required To",
        "exactly one of",
        "PUT not in",
        "Timeout is not",
        "Colour is not",
        "Twiml does not",
    ] {
        assert!(
            problems.iter().any(|problem| problem.contains(expected)),
            "{expected}: {problems:?}"
        );
    }
    send.params = vec![
        ("To".into(), "+1".into()),
        ("Body".into(), "x".into()),
        ("From".into(), "+1".into()),
        ("From".into(), "+2".into()),
    ];
    let problems = violations(operation(MESSAGES), &send);
    assert!(problems.iter().any(|problem| problem.contains("From repeated")), "{problems:?}");
}

#[tokio::test]
async fn emulator_201_bodies_carry_exactly_the_spec_properties() {
    let twilio = TwilioEmulator::start(TwilioAccount::new(SID, TOKEN)).await.unwrap();
    let client = reqwest::Client::new();
    let base = format!("{}/2010-04-01/Accounts/{SID}", twilio.base_url());
    for (path, form, schema) in [
        (
            format!("{base}/Messages.json"),
            vec![("To", "+14155550100"), ("From", "+15005550006"), ("Body", "x")],
            "api.v2010.account.message",
        ),
        (
            format!("{base}/Calls.json"),
            vec![("To", "+14155550100"), ("From", "+15005550006"), ("Twiml", "<Response/>")],
            "api.v2010.account.call",
        ),
    ] {
        let response =
            client.post(&path).basic_auth(SID, Some(TOKEN)).form(&form).send().await.unwrap();
        let declared = operation(if schema.ends_with("message") { MESSAGES } else { CALLS });
        assert!(declared["responses"]["201"].is_object(), "{schema}: the spec declares a 201");
        assert_eq!(response.status(), 201);
        let body: Value = response.json().await.unwrap();
        let mut got: Vec<&String> = body.as_object().unwrap().keys().collect();
        let properties = spec()["components"]["schemas"][schema]["properties"].as_object().unwrap();
        let mut expected: Vec<&String> = properties.keys().collect();
        got.sort();
        expected.sort();
        assert_eq!(got, expected, "{schema}");
        let status = &body["status"];
        let status_enum = resolve(&properties["status"])["enum"].as_array().unwrap();
        assert!(status_enum.contains(status), "{schema} status {status}");
        let sid_pattern = properties["sid"]["pattern"].as_str().unwrap();
        let sid = body["sid"].as_str().unwrap();
        let prefixes = if sid_pattern.contains("SM|MM") { vec!["SM", "MM"] } else { vec!["CA"] };
        assert!(
            prefixes.iter().any(|prefix| sid.starts_with(prefix)) && sid.len() == 34,
            "{sid_pattern} {sid}"
        );
    }
}
