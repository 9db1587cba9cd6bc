//! Shared by the provider integration tests: a loopback callback server that hands each request
//! to the adapter's `handle_callback`, as the server does, and reports the outcome on a channel,
//! so a test awaits the receipt itself instead of sleeping; a raw receiver; the spec fixtures
//! and their helpers.

// Each test binary uses part of this module; `Delivered` is re-exported for the ones that name it.
#![allow(dead_code, unreachable_pub, unused_imports)]

mod callback_server;
mod harness;
mod receiver;
pub mod scenarios;
pub(crate) use callback_server::{CallbackServer, Delivered};
pub(crate) use harness::{Harness, start, start_tweaked};
pub(crate) use receiver::CallbackReceiver;

use switchboard_core::{
    Certainty, Channel, Country, Destination, ErrorClass, Locale, MessageText, OutboundMessage,
    Passcode,
};
use switchboard_providers::ProviderError;

/// The passcode the adapter tests send; [`verdict`] checks that no error shows it.
pub const CODE: &str = "918273";

/// Passcode [`CODE`] with the usual text, on `channel` to `to` in `country`, read in `locale`.
pub fn message(channel: Channel, to: &str, country: &str, locale: &str) -> OutboundMessage {
    OutboundMessage {
        reference: "evt-1".into(),
        destination: Destination::new(to.into(), Country::parse(country).unwrap()),
        channel,
        passcode: Passcode::parse(CODE).unwrap(),
        text: MessageText::new(format!("Your Acme code is {CODE}")),
        locale: Locale::parse(locale),
    }
}

/// The error's class and certainty, once neither its `Display` nor its `Debug` shows any of
/// `secrets` (passcode, phone digits, credentials): errors end up in logs.
pub fn verdict(error: &ProviderError, secrets: &[&str]) -> (ErrorClass, Certainty) {
    let printed = format!("{error} {error:?}");
    for secret in secrets {
        assert!(!printed.contains(secret), "{secret} leaked: {printed}");
    }
    (error.class, error.certainty)
}

/// `http://127.0.0.1:PORT` where nothing listens any more, so connecting is refused.
pub fn refused_base_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base_url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    base_url
}

/// A fixture of `tests/fixtures/specs/`: a provider's published spec, distilled by `distil.py`
/// there to what the conformance tests read. Each names its source in `x-distilled-from`.
pub fn spec_path(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/specs").join(name)
}

/// The spec fixture `name`. A missing or unreadable fixture fails the test that asked for it,
/// naming the file: a conformance test never passes without its spec.
pub fn load_spec(name: &str) -> serde_json::Value {
    let path = spec_path(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|error| {
        panic!(
            "spec fixture {}: {error} (the fixtures are committed; distil.py beside them \
             regenerates them from the published specs)",
            path.display()
        )
    });
    let spec: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|error| panic!("spec fixture {}: {error}", path.display()));
    assert!(
        spec["x-distilled-from"]["url"].is_string(),
        "spec fixture {} does not name its source in x-distilled-from",
        path.display()
    );
    spec
}

/// A validator for `schema` (a fragment of an OpenAPI 3.0 document), with `#/components/...`
/// references resolved against `spec`. OpenAPI 3.0 schemas are a draft-4 dialect; `format` is
/// not asserted (the specs use formats such as `e.164` and `timestamp` that no validator knows,
/// and Vonage's own examples break their `uuid` format).
pub fn openapi_validator(
    spec: &serde_json::Value,
    schema: &serde_json::Value,
) -> jsonschema::Validator {
    let mut root = schema.clone();
    root["components"] = spec["components"].clone();
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft4)
        .should_validate_formats(false)
        .build(&root)
        .unwrap_or_else(|error| panic!("schema does not compile: {error}"))
}

/// Asserts `instance` is valid, listing every violation otherwise.
pub fn assert_valid(validator: &jsonschema::Validator, instance: &serde_json::Value, what: &str) {
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|error| format!("{} at {}", error, error.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{what} violates the spec: {errors:#?}\n{instance:#}");
}

/// The operation at `path` and `method` (lower case) in an OpenAPI document.
pub fn operation<'a>(
    spec: &'a serde_json::Value,
    path: &str,
    method: &str,
) -> &'a serde_json::Value {
    let operation = &spec["paths"][path][method];
    assert!(operation.is_object(), "the spec has no {method} {path}");
    operation
}
