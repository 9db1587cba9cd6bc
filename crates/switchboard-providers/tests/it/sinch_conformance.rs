//! What the Sinch adapter actually sends, and what the emulator answers and reports, checked
//! against Sinch's published specs (`APIs/sinch.sms/v1/openapi.yaml` and
//! `APIs/sinch.voice/1.0.0/openapi.yaml` of <https://github.com/ballerina-platform/openapi-connectors>,
//! distilled into `fixtures/specs/`).

use crate::{sinch, support};

use std::sync::Arc;

use secrecy::SecretString;
use serde_json::{Value, json};
use support::{CallbackServer, assert_valid, load_spec, openapi_validator, operation};
use switchboard_core::{Channel, MessageText, OutboundMessage};
use switchboard_providers::sinch::VoiceAuth;
use switchboard_providers::{BuildContext, Provider, SinchConfig};
use switchboard_sim::Receipts;
use switchboard_sim::sinch::{ReceivedSend, SendKind, SinchAccount, SinchEmulator};

/// The adapter module's config, with `auth` for calls and a callback token for SMS reports.
fn config(base_url: &str, auth: VoiceAuth) -> SinchConfig {
    SinchConfig {
        voice_auth: auth,
        callback_token: Some(SecretString::from(sinch::CALLBACK_TOKEN)),
        ..sinch::config(base_url)
    }
}

/// An Okta-shaped reference, `text` and the locale vary; the passcode is [`support::CODE`].
fn message(channel: Channel, text: &str, locale: &str) -> OutboundMessage {
    OutboundMessage {
        reference: "00u1ab2cd3EF4gh5ij6k-evt".into(),
        text: MessageText::new(text.into()),
        ..support::message(channel, "+46701234567", "SE", locale)
    }
}

/// Sends with and without receipts, both auth modes; returns the record and the reports.
async fn capture() -> (Vec<ReceivedSend>, Vec<Value>) {
    let sinch = SinchEmulator::start(sinch::account()).await.unwrap();
    let mut endpoint = CallbackServer::bind().await;
    sinch.set_voice_callback_url(Some(format!("{}/voice", endpoint.base(sinch::ID))));
    let mut reports = Vec::new();
    for (auth, context) in [
        (VoiceAuth::Basic, BuildContext::default()),
        (VoiceAuth::Signed, BuildContext { callback_base: Some(endpoint.base(sinch::ID)) }),
    ] {
        let wants_receipts = context.callback_base.is_some();
        let provider = Arc::new(sinch::build_in(&config(&sinch.base_url(), auth), &context));
        if wants_receipts {
            endpoint.attach(provider.clone());
            sinch.set_receipts(Receipts::delivered());
        }
        for (text, locale) in [("Your code is 918273", "sv-SE"), ("Votre code : 918273 ✓", "fr-CA")]
        {
            provider.send(&message(Channel::Sms, text, locale)).await.unwrap();
            provider.send(&message(Channel::Voice, "", locale)).await.unwrap();
            if wants_receipts {
                for _ in 0..2 {
                    let arrival = endpoint.next().await;
                    assert!(arrival.outcome.is_ok(), "{:?}", arrival.outcome);
                    if arrival.callback.subpath.starts_with("/sms/") {
                        reports.push(serde_json::from_slice(&arrival.callback.body).unwrap());
                    }
                }
            }
        }
    }
    (sinch.received(), reports)
}

#[tokio::test]
async fn batches_and_reports_satisfy_the_sms_spec() {
    let spec = load_spec("sinch-sms-v1-openapi.json");
    let send = operation(&spec, "/xms/v1/{service_plan_id}/batches", "post");
    assert_eq!(spec["security"][0]["BearerAuth"], json!([]));
    let request =
        openapi_validator(&spec, &send["requestBody"]["content"]["application/json"]["schema"]);
    let created = openapi_validator(
        &spec,
        &send["responses"]["201"]["content"]["application/json"]["schema"],
    );
    let properties =
        spec["components"]["schemas"]["sendBatchObject"]["properties"].as_object().unwrap().clone();

    let (received, reports) = capture().await;
    let batches: Vec<_> = received.iter().filter(|send| send.kind == SendKind::Batch).collect();
    assert_eq!(batches.len(), 4);
    for batch in batches {
        assert!(batch.is_authenticated);
        assert_eq!(batch.content_type.as_deref(), Some("application/json"));
        assert_valid(&request, &batch.body, "a batch");
        for key in batch.body.as_object().unwrap().keys() {
            assert!(properties.contains_key(key), "{key} is not a sendBatchObject field");
        }
    }

    // The emulator's answers, by a plain client.
    let sinch =
        SinchEmulator::start(SinchAccount::new("plan", "token", sinch::APP_KEY, sinch::APP_SECRET))
            .await
            .unwrap();
    let url = format!("{}/xms/v1/plan/batches", sinch.base_url());
    let client = reqwest::Client::new();
    let answer = client
        .post(&url)
        .bearer_auth("token")
        .json(
            &json!({"to": ["+46701234567"], "from": "Acme", "body": "hi", "client_reference": "r"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 201);
    assert_valid(&created, &answer.json::<Value>().await.unwrap(), "a created batch");
    let error_schema =
        openapi_validator(&spec, &json!({"$ref": "#/components/schemas/errorResponseObj"}));
    for (status, body) in [
        ("400", json!({"to": ["+1"], "from": "Acme", "body": "hi"})),
        (
            "403",
            json!({"to": ["+46701234567"], "from": "Acme", "body": "hi", "delivery_report": "full"}),
        ),
    ] {
        let answer = client.post(&url).bearer_auth("token").json(&body).send().await.unwrap();
        assert_eq!(answer.status().as_str(), status);
        let error: Value = answer.json().await.unwrap();
        assert_valid(&error_schema, &error, "an error answer");
        let example = &send["responses"][status]["content"]["application/json"]["example"]["code"];
        assert_eq!(&error["code"], example, "the spec's example code for {status}");
    }

    // Per-recipient reports. The spec's `status` enum is one string listing every status
    // ("Queued, Dispatched, ..."), which no report could match; split it as intended.
    let mut patched = spec.clone();
    let status = &mut patched["components"]["schemas"]["retrieveRecipientDeliveryResponseObj"]["properties"]
        ["status"];
    let listed = status["enum"][0].as_str().unwrap().to_owned();
    status["enum"] = json!(listed.split(", ").collect::<Vec<_>>());
    let report_schema = openapi_validator(
        &patched,
        &json!({"$ref": "#/components/schemas/retrieveRecipientDeliveryResponseObj"}),
    );
    assert_eq!(reports.len(), 2);
    for report in reports {
        assert_valid(&report_schema, &report, "a delivery report");
    }
}

#[tokio::test]
async fn callouts_satisfy_the_voice_spec() {
    let spec = load_spec("sinch-voice-1.0.0-openapi.json");
    // The spec writes the path with a trailing slash; Sinch's SDKs post without it, and the
    // emulator serves both.
    let callouts = operation(&spec, "/calling/v1/callouts/", "post");
    assert_eq!(spec["servers"][0]["url"], "https://calling.api.sinch.com");
    assert_eq!(spec["components"]["securitySchemes"]["Basic"]["scheme"], "basic");
    let request = openapi_validator(&spec, &json!({"$ref": "#/components/schemas/CalloutRequest"}));
    let method_enum =
        spec["components"]["schemas"]["CalloutRequest"]["properties"]["method"]["enum"].clone();
    let tts_properties = spec["components"]["schemas"]["ttsCalloutRequest"]["properties"]
        .as_object()
        .unwrap()
        .clone();

    let (received, _) = capture().await;
    let calls: Vec<_> = received.iter().filter(|send| send.kind == SendKind::Callout).collect();
    assert_eq!(calls.len(), 4);
    for call in &calls {
        assert!(call.is_authenticated, "{:?}", call.auth_scheme);
        assert_valid(&request, &call.body, "a callout");
        assert!(method_enum.as_array().unwrap().contains(&call.body["method"]));
        for key in call.body["ttsCallout"].as_object().unwrap().keys() {
            assert!(tts_properties.contains_key(key), "{key} is not a ttsCalloutRequest field");
        }
        assert!(call.body["ttsCallout"]["text"].as_str().unwrap().chars().count() <= 600);
    }
    let schemes: Vec<_> = calls.iter().map(|call| call.auth_scheme.as_deref().unwrap()).collect();
    assert_eq!(schemes, ["basic", "basic", "signed", "signed"]);

    // The emulator's answers: success and the documented errors.
    let sinch =
        SinchEmulator::start(SinchAccount::new("plan", "token", sinch::APP_KEY, sinch::APP_SECRET))
            .await
            .unwrap();
    let client = reqwest::Client::new();
    let post = |body: Value| {
        client
            .post(format!("{}/calling/v1/callouts/", sinch.base_url()))
            .basic_auth(sinch::APP_KEY, Some(sinch::APP_SECRET))
            .json(&body)
            .send()
    };
    let tts = |endpoint: &str| json!({"method": "ttsCallout", "ttsCallout": {"destination": {"type": "number", "endpoint": endpoint}, "text": "hi"}});
    let ok = post(tts("+46701234567")).await.unwrap();
    assert_eq!(ok.status(), 200);
    let ok_schema = openapi_validator(
        &spec,
        &callouts["responses"]["200"]["content"]["application/json"]["schema"],
    );
    let ok_body: Value = ok.json().await.unwrap();
    assert_valid(&ok_schema, &ok_body, "a callout answer");
    assert!(ok_body["callId"].is_string(), "the SDK's field name");
    let error_schema = openapi_validator(&spec, &json!({"$ref": "#/components/schemas/Error"}));
    for (body, status) in [(tts("12345"), "400"), (tts("+15005550005"), "402")] {
        let answer = post(body).await.unwrap();
        assert_eq!(answer.status().as_str(), status);
        let error: Value = answer.json().await.unwrap();
        assert_valid(&error_schema, &error, "an error answer");
        let example = &callouts["responses"][status]["content"]["application/json"]["example"]["response"]
            ["error"];
        assert_eq!(
            (&error["status"], &error["errorCode"]),
            (&example["status"], &example["errorCode"])
        );
    }
}
