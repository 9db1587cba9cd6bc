//! Conformance with Infobip's published OpenAPI 3.1 (v3.210.0, `infobip-{sms,voice}-openapi.json`
//! of <https://github.com/api-evangelist/infobip>, distilled into `fixtures/specs/`):
//! what the adapter puts on the wire, and what the emulator answers and reports, must satisfy
//! the spec: the operation exists for the method and path and is not deprecated, the auth
//! scheme is one the operation accepts, query parameters are declared, and bodies validate
//! against the spec's JSON Schemas (2020-12, `$ref`s resolved within the spec), which checks
//! required properties, types and enums.
//!
//! Each spec is loaded once per test binary.

use crate::support;

use std::sync::{Arc, LazyLock};

use secrecy::SecretString;
use serde_json::{Value, json};
use support::CallbackServer;
use switchboard_core::{Channel, MessageText, OutboundMessage, Passcode, ProviderId};
use switchboard_providers::{BuildContext, Infobip, InfobipConfig, Provider};
use switchboard_sim::infobip::{InfobipAccount, InfobipEmulator, ReceivedRequest, RunningEmulator};
use switchboard_sim::{Fault, Faults, Receipts};

const KEY: &str = "003026bbc133714df1834b8638bb496e-8f4b3d9a";
const TOKEN: &str = "0123456789abcdef0123456789abcdef";

static SMS_SPEC: LazyLock<Value> = LazyLock::new(|| support::load_spec("infobip-sms-openapi.json"));
static VOICE_SPEC: LazyLock<Value> =
    LazyLock::new(|| support::load_spec("infobip-voice-openapi.json"));

/// Follows a local `$ref` (`#/components/responses/...`), once.
fn deref<'a>(spec: &'a Value, value: &'a Value) -> &'a Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(reference) => spec
            .pointer(reference.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("dangling {reference}")),
        None => value,
    }
}

/// The operation for `method` and `path`, asserting it exists and is current.
fn operation<'a>(spec: &'a Value, method: &str, path: &str) -> &'a Value {
    let operation = spec["paths"]
        .get(path)
        .and_then(|item| item.get(method.to_ascii_lowercase()))
        .unwrap_or_else(|| panic!("{method} {path} is not in the spec"));
    assert_ne!(operation["deprecated"], true, "{method} {path} is deprecated");
    operation
}

/// Every violation of `schema` by `instance`, with `$ref`s resolved against `spec`.
fn violations(spec: &Value, schema: &Value, instance: &Value) -> Vec<String> {
    let mut root = schema.as_object().cloned().unwrap_or_default();
    root.insert("components".into(), json!({"schemas": spec["components"]["schemas"]}));
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .build(&Value::Object(root))
        .expect("the spec's schema compiles");
    validator
        .iter_errors(instance)
        .map(|error| format!("{} at {}", error, error.instance_path()))
        .collect()
}

fn assert_valid(spec: &Value, schema: &Value, instance: &Value, what: &str) {
    let errors = violations(spec, schema, instance);
    assert!(errors.is_empty(), "{what} violates the spec: {errors:#?}\n{instance:#}");
}

fn request_schema(operation: &Value) -> &Value {
    &operation["requestBody"]["content"]["application/json"]["schema"]
}

fn response_schema<'a>(spec: &'a Value, operation: &'a Value, status: &str) -> &'a Value {
    let response = deref(spec, &operation["responses"][status]);
    &response["content"]["application/json"]["schema"]
}

/// The request authenticated with a scheme the operation lists, as that scheme says.
fn assert_auth_conforms(spec: &Value, operation: &Value, request: &ReceivedRequest) {
    assert_eq!(request.auth_scheme.as_deref(), Some("App"));
    let allowed: Vec<&str> = operation["security"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|requirement| requirement.as_object().unwrap().keys().map(String::as_str))
        .collect();
    assert!(allowed.contains(&"APIKeyHeader"), "{allowed:?}");
    let scheme = &spec["components"]["securitySchemes"]["APIKeyHeader"];
    assert_eq!((scheme["type"].as_str(), scheme["in"].as_str()), (Some("apiKey"), Some("header")));
    assert_eq!(scheme["name"], "Authorization");
}

/// `request` is the operation `operation_id` of `spec` (current, for its method and path),
/// authenticated as that operation accepts, with a body its request schema allows.
fn assert_request_conforms(
    spec: &Value,
    operation_id: &str,
    request: &ReceivedRequest,
    what: &str,
) {
    let operation = operation(spec, &request.method, &request.path);
    assert_eq!(operation["operationId"], operation_id);
    assert_auth_conforms(spec, operation, request);
    assert_valid(spec, request_schema(operation), &request.body, what);
}

struct Harness {
    infobip: RunningEmulator,
    provider: Arc<Infobip>,
    _callbacks: CallbackServer,
}

/// An adapter with every option that changes the body: sender, caller id, voice, validity
/// period and delivery reports.
async fn harness() -> Harness {
    let infobip = InfobipEmulator::start(InfobipAccount::new(KEY)).await.unwrap();
    let callbacks = CallbackServer::bind().await;
    let config = InfobipConfig {
        api_key: SecretString::from(KEY),
        base_url: infobip.base_url(),
        from: Some("InfoSMS".into()),
        voice_from: Some("+41793026700".into()),
        senders: Default::default(),
        voice: Some("Joanna".into()),
        validity_period_min: Some(10),
        callback_token: Some(SecretString::from(TOKEN)),
        timeout_ms: 2000,
        connect_timeout_ms: 300,
        max_per_second: None,
    };
    let context = BuildContext { callback_base: Some(callbacks.base("infobip-1")) };
    let provider = Arc::new(
        Infobip::try_new(ProviderId::parse("infobip-1").unwrap(), &config, &context).unwrap(),
    );
    callbacks.attach(provider.clone());
    Harness { infobip, provider, _callbacks: callbacks }
}

fn message(channel: Channel) -> OutboundMessage {
    OutboundMessage {
        passcode: Passcode::parse("5842").unwrap(),
        text: MessageText::new("Your code is 5842".into()),
        ..support::message(channel, "+41793026727", "CH", "en-US")
    }
}

#[tokio::test]
async fn the_sms_request_satisfies_send_sms_messages() {
    let Harness { infobip, provider, .. } = harness().await;
    provider.send(&message(Channel::Sms)).await.unwrap();
    let request = &infobip.received()[0];
    assert_request_conforms(&SMS_SPEC, "send-sms-messages", request, "the SMS request");
    // The options we rely on are the spec's own: the enum value and the report URL field.
    assert_eq!(request.body["messages"][0]["options"]["validityPeriod"]["timeUnit"], "MINUTES");
    assert!(request.body["messages"][0]["webhooks"]["delivery"]["url"].is_string());
}

#[tokio::test]
async fn the_voice_request_satisfies_send_advanced_voice_tts() {
    let Harness { infobip, provider, .. } = harness().await;
    provider.send(&message(Channel::Voice)).await.unwrap();
    let request = &infobip.received()[0];
    assert_request_conforms(&VOICE_SPEC, "send-advanced-voice-tts", request, "the voice request");
}

#[tokio::test]
async fn the_probe_is_a_declared_read_only_query() {
    let Harness { infobip, provider, .. } = harness().await;
    provider.probe().await.unwrap();
    let request = &infobip.received()[0];
    let spec = &*SMS_SPEC;
    let operation = operation(spec, &request.method, &request.path);
    assert_eq!(operation["operationId"], "get-outbound-sms-message-logs-v3");
    assert!(operation.get("requestBody").is_none());
    let declared: Vec<&str> = operation["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| deref(spec, p))
        .filter(|p| p["in"] == "query")
        .filter_map(|p| p["name"].as_str())
        .collect();
    for (name, _) in
        serde_urlencoded::from_str::<Vec<(String, String)>>(request.query.as_deref().unwrap())
            .unwrap()
    {
        assert!(declared.contains(&name.as_str()), "{name} is not a declared query parameter");
    }
}

#[tokio::test]
async fn the_schemas_catch_a_malformed_request() {
    // Guards the tests above: a validator that accepted anything would prove nothing.
    let spec = &*SMS_SPEC;
    let schema = request_schema(operation(spec, "POST", "/sms/3/messages"));
    let missing_destinations = json!({"messages": [{"content": {"text": "x"}}]});
    assert!(!violations(spec, schema, &missing_destinations).is_empty());
    let bad_enum = json!({"messages": [{"destinations": [{"to": "41793026727"}], "content": {"text": "x"},
        "options": {"validityPeriod": {"amount": 10, "timeUnit": "FORTNIGHTS"}}}]});
    assert!(!violations(spec, schema, &bad_enum).is_empty());
    let wrong_type = json!({"messages": [{"destinations": [{"to": 41793026727_u64}], "content": {"text": "x"}}]});
    assert!(!violations(spec, schema, &wrong_type).is_empty());
}

#[tokio::test]
async fn the_emulators_answers_satisfy_the_spec() {
    let client = reqwest::Client::new();
    let Harness { infobip, .. } = harness().await;
    for (spec, path, body) in [
        (
            &*SMS_SPEC,
            "/sms/3/messages",
            json!({"messages": [{"destinations": [{"to": "41793026727"}], "content": {"text": "x"}}]}),
        ),
        (
            &*VOICE_SPEC,
            "/tts/3/advanced",
            json!({"messages": [{"destinations": [{"to": "41793026727"}], "text": "x", "language": "en"}]}),
        ),
    ] {
        let operation = operation(spec, "POST", path);
        for (key, status) in [(KEY, "200"), ("wrong", "401")] {
            let response = client
                .post(format!("{}{path}", infobip.base_url()))
                .header("Authorization", format!("App {key}"))
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status().as_str(), status);
            let answer: Value = response.json().await.unwrap();
            assert_valid(
                spec,
                response_schema(spec, operation, status),
                &answer,
                &format!("{path} {status}"),
            );
        }
        infobip.set_faults(Faults::always(Fault::RateLimit { retry_after_s: 1 }));
        let response = client
            .post(format!("{}{path}", infobip.base_url()))
            .header("Authorization", format!("App {KEY}"))
            .json(&body)
            .send()
            .await
            .unwrap();
        let declared = operation["responses"].get("429").map_or("4XX", |_| "429");
        let answer: Value = response.json().await.unwrap();
        if declared == "429" {
            assert_valid(
                spec,
                response_schema(spec, operation, "429"),
                &answer,
                &format!("{path} 429"),
            );
        }
        infobip.set_faults(Faults::none());
    }
}

#[tokio::test]
async fn the_emulators_reports_satisfy_the_webhook_schemas() {
    let Harness { infobip, provider, .. } = harness().await;
    infobip.set_receipts(Receipts::delivered());
    provider.send(&message(Channel::Sms)).await.unwrap();
    provider.send(&message(Channel::Voice)).await.unwrap();
    infobip.set_receipts(Receipts::undelivered(14));
    provider.send(&message(Channel::Sms)).await.unwrap();
    let sent = infobip.wait_for_callbacks(3).await;
    for callback in sent {
        let report: Value = serde_json::from_str(&callback.request_body).unwrap();
        let is_voice = report["results"][0].get("voiceCall").is_some();
        let (spec, webhook) = if is_voice {
            (&*VOICE_SPEC, "receive-voice-delivery-reports")
        } else {
            (&*SMS_SPEC, "receive-outbound-sms-message-reports-v3")
        };
        let schema = &spec["webhooks"][webhook]["post"]["requestBody"]["content"]["application/json"]
            ["schema"];
        assert!(schema.is_object(), "{webhook} has a JSON schema");
        assert_valid(spec, schema, &report, webhook);
        assert_eq!(callback.status, Some(200), "the adapter took the report");
    }
}
