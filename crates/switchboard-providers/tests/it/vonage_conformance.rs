//! What the Vonage adapter actually sends, and what the emulator answers, checked against
//! Vonage's published specs (`definitions/sms.yml` and `json-schemas/ncco-schema.json` of
//! <https://github.com/Nexmo/api-specification>, Voice API 1.3.6 from
//! <https://github.com/ballerina-platform/openapi-connectors>), distilled into `fixtures/specs/`.

use crate::{support, vonage};

use std::sync::Arc;

use secrecy::SecretString;
use serde_json::{Value, json};
use support::{CallbackServer, assert_valid, load_spec, openapi_validator, operation};
use switchboard_core::{Channel, MessageText, OutboundMessage};
use switchboard_providers::vonage::SignatureMethod;
use switchboard_providers::{BuildContext, Provider, VonageConfig};
use switchboard_sim::Receipts;
use switchboard_sim::vonage::{TEST_PRIVATE_KEY_PEM, VonageAccount, VonageEmulator};

/// The adapter module's config, with the secret or (`signed`) the signature secret, and a TTL.
fn config(base_url: &str, signed: bool) -> VonageConfig {
    VonageConfig {
        api_secret: (!signed).then(|| SecretString::from(vonage::API_SECRET)),
        signature_secret: signed.then(|| SecretString::from(vonage::SIGNATURE_SECRET)),
        // HMAC-MD5: `NewMessage.sig` allows at most 60 characters, which a SHA-256 or SHA-512
        // hex digest exceeds (the spec's own receipt example carries a 64-digit `sig`).
        signature_method: SignatureMethod::Md5,
        sms_ttl_ms: Some(300_000),
        ..vonage::config(base_url)
    }
}

/// The adapter module's account, verifying HMAC-MD5 signatures as [`config`] signs.
fn account() -> VonageAccount {
    vonage::account().with_signature_method(switchboard_sim::vonage::SignatureMethod::Md5)
}

/// An Okta-shaped reference, `text` and the locale vary; the passcode is [`support::CODE`].
fn message(channel: Channel, text: &str, locale: &str) -> OutboundMessage {
    OutboundMessage {
        reference: "00u1ab2cd3EF4gh5ij6k-evt".into(),
        text: MessageText::new(text.into()),
        ..support::message(channel, "+447700900123", "GB", locale)
    }
}

/// Sends SMS and calls in several languages, with receipts, and returns the emulator's record.
async fn capture() -> (Vec<switchboard_sim::vonage::ReceivedSend>, Vec<Value>) {
    let vonage = VonageEmulator::start(account()).await.unwrap();
    let mut endpoint = CallbackServer::bind().await;
    let context = BuildContext { callback_base: Some(endpoint.base(vonage::ID)) };
    let mut receipts = Vec::new();
    for signed in [false, true] {
        let provider = Arc::new(vonage::build_in(&config(&vonage.base_url(), signed), &context));
        if signed {
            endpoint.attach(provider.clone());
            vonage.set_receipts(Receipts::delivered());
        }
        for (text, locale) in [
            ("Your code is 918273", "en-GB"),
            ("Votre code : 918273 ✓", "fr-BE"),
            ("確認コード 918273", "ja-JP"),
        ] {
            provider.send(&message(Channel::Sms, text, locale)).await.unwrap();
            provider.send(&message(Channel::Voice, "", locale)).await.unwrap();
            if signed {
                for _ in 0..2 {
                    let arrival = endpoint.next().await;
                    assert!(arrival.outcome.is_ok(), "{:?}", arrival.outcome);
                    receipts.push((
                        arrival.callback.subpath.clone(),
                        serde_json::from_slice::<Value>(&arrival.callback.body).unwrap(),
                    ));
                }
            }
        }
    }
    let sms_receipts =
        receipts.iter().filter(|(path, _)| path == "/sms").map(|(_, body)| body.clone()).collect();
    (vonage.received(), sms_receipts)
}

#[tokio::test]
async fn sms_requests_satisfy_sms_yml() {
    let spec = load_spec("vonage-sms-openapi.json");
    assert_eq!(spec["servers"][0]["url"], "https://rest.nexmo.com/sms");
    let send = operation(&spec, "/{format}", "post");
    let format_enum = &send["parameters"][0]["schema"]["enum"];
    assert!(format_enum.as_array().unwrap().contains(&json!("json")), "we post /sms/json");
    assert!(send["requestBody"]["content"]["application/x-www-form-urlencoded"].is_object());
    let schema = &spec["components"]["schemas"]["NewMessage"];
    let properties = schema["properties"].as_object().unwrap();

    let (received, _) = capture().await;
    let sms: Vec<_> = received
        .iter()
        .filter(|send| send.kind == switchboard_sim::vonage::SendKind::Sms)
        .collect();
    assert_eq!(sms.len(), 6);
    for send in sms {
        assert!(send.is_authenticated);
        assert_eq!(send.content_type.as_deref(), Some("application/x-www-form-urlencoded"));
        for required in schema["required"].as_array().unwrap() {
            assert!(send.param(required.as_str().unwrap()).is_some(), "missing {required}");
        }
        // The signature's `timestamp` is not in NewMessage; Vonage's signing guide adds it.
        for (name, _) in &send.params {
            assert!(
                properties.contains_key(name) || name == "timestamp",
                "{name} is not a NewMessage field"
            );
        }
        // Form values are strings on the wire; type them as the schema says and validate.
        let mut typed = serde_json::Map::new();
        for (name, value) in &send.params {
            let typed_value = match properties.get(name).and_then(|p| p["type"].as_str()) {
                Some("integer") => json!(value.parse::<i64>().unwrap()),
                Some("boolean") => json!(value.parse::<bool>().unwrap()),
                _ => json!(value),
            };
            typed.insert(name.clone(), typed_value);
        }
        let validator =
            openapi_validator(&spec, &json!({"$ref": "#/components/schemas/NewMessage"}));
        assert_valid(&validator, &Value::Object(typed), "an SMS form");
        let to = send.param("to").unwrap();
        assert!(
            to.len() >= 7 && to.len() <= 15 && to.bytes().all(|b| b.is_ascii_digit()),
            "pattern \\d{{7,15}}: {to}"
        );
        assert!(send.param("client-ref").unwrap().chars().count() <= 40);
        assert_eq!(
            send.param("api_secret").is_some(),
            send.param("sig").is_none(),
            "never both (status 32)"
        );
    }
    let example_sig =
        spec["components"]["schemas"]["DeliveryReceipt"]["properties"]["sig"]["example"]
            .as_str()
            .unwrap();
    assert_eq!(
        example_sig.len(),
        64,
        "the spec's own SHA-256 example exceeds NewMessage.sig's maxLength"
    );
}

#[tokio::test]
async fn emulator_sms_answers_and_receipts_satisfy_sms_yml() {
    let spec = load_spec("vonage-sms-openapi.json");
    let vonage = VonageEmulator::start(account()).await.unwrap();
    let url = format!("{}/sms/json", vonage.base_url());
    let client = reqwest::Client::new();
    let post = |form: Vec<(&'static str, &'static str)>| {
        let client = client.clone();
        let url = url.clone();
        async move { client.post(&url).form(&form).send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let ok = post(vec![
        ("api_key", vonage::API_KEY),
        ("api_secret", vonage::API_SECRET),
        ("from", "Acme"),
        ("to", "447700900123"),
        ("text", "hi"),
    ])
    .await;
    assert_valid(
        &openapi_validator(&spec, &json!({"$ref": "#/components/schemas/SMS"})),
        &ok,
        "a success answer",
    );
    let refused = post(vec![
        ("api_key", vonage::API_KEY),
        ("api_secret", "wrong"),
        ("from", "Acme"),
        ("to", "447700900123"),
        ("text", "hi"),
    ])
    .await;
    assert_valid(
        &openapi_validator(&spec, &json!({"$ref": "#/components/schemas/Error"})),
        &refused,
        "an error answer",
    );
    // Every status the emulator answers is one the spec documents.
    let documented = spec["x-errors"].as_object().unwrap();
    assert!(documented.contains_key(refused["messages"][0]["status"].as_str().unwrap()));
    for to in [
        "15005550001",
        "15005550002",
        "15005550003",
        "15005550004",
        "15005550005",
        "15005550007",
        "15005550008",
        "15005550009",
    ] {
        let answer = client
            .post(&url)
            .form(&[
                ("api_key", vonage::API_KEY),
                ("api_secret", vonage::API_SECRET),
                ("from", "Acme"),
                ("to", to),
                ("text", "hi"),
            ])
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap();
        let status = answer["messages"][0]["status"].as_str().unwrap();
        assert!(documented.contains_key(status), "{to}: status {status} is not in x-errors");
    }

    let (_, receipts) = capture().await;
    assert_eq!(receipts.len(), 3);
    let receipt_schema =
        openapi_validator(&spec, &json!({"$ref": "#/components/schemas/DeliveryReceipt"}));
    let receipt_properties =
        spec["components"]["schemas"]["DeliveryReceipt"]["properties"].as_object().unwrap();
    for receipt in receipts {
        assert_valid(&receipt_schema, &receipt, "a delivery receipt");
        for key in receipt.as_object().unwrap().keys() {
            assert!(receipt_properties.contains_key(key), "{key} is not a DeliveryReceipt field");
        }
        let status = json!(receipt["status"]);
        assert!(
            receipt_properties["status"]["x-possible-values"].as_array().unwrap().contains(&status)
        );
    }
}

#[tokio::test]
async fn calls_satisfy_the_voice_spec_and_the_ncco_schema() {
    let voice = load_spec("vonage-voice-1.3.6-openapi.json");
    assert_eq!(
        voice["servers"][0]["url"], "https://api.nexmo.com/v1/calls",
        "we post {{voice_base_url}}/v1/calls"
    );
    let create = operation(&voice, "/", "post");
    assert_eq!(create["security"][0]["bearerAuth"], json!([]));
    assert_eq!(voice["components"]["securitySchemes"]["bearerAuth"]["bearerFormat"], "JWT");
    let mut body_schema = create["requestBody"]["content"]["application/json"]["schema"].clone();
    // The published `to` items are a `oneOf` in which EndpointSip (only `type` required)
    // matches every phone leg too, so no body could pass it; `anyOf` keeps the intent.
    let mut spec = voice.clone();
    let base =
        &mut spec["components"]["schemas"]["CreateCallRequestBase"]["properties"]["to"]["items"];
    let alternatives = base["oneOf"].take();
    *base = json!({"anyOf": alternatives});
    let validator = openapi_validator(&spec, &body_schema.take());
    let phone_leg =
        openapi_validator(&spec, &json!({"$ref": "#/components/schemas/EndpointPhoneTo"}));
    let ncco_schema = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft4)
        .build(&load_spec("vonage-ncco-schema.json"))
        .unwrap();

    let (received, _) = capture().await;
    let calls: Vec<_> = received
        .iter()
        .filter(|send| send.kind == switchboard_sim::vonage::SendKind::Call)
        .collect();
    assert_eq!(calls.len(), 6);
    for call in calls {
        assert!(call.is_authenticated);
        assert_eq!(call.content_type.as_deref(), Some("application/json"));
        assert_valid(&validator, &call.body, "a create-call body");
        assert_valid(&phone_leg, &call.body["to"][0], "the phone leg");
        assert_valid(&ncco_schema, &call.body["ncco"], "the NCCO");
        for event_url in call.body["event_url"].as_array().into_iter().flatten() {
            assert!(event_url.as_str().unwrap().ends_with("/voice"));
        }
    }
}

#[tokio::test]
async fn emulator_call_answers_satisfy_the_voice_spec() {
    let voice = load_spec("vonage-voice-1.3.6-openapi.json");
    let vonage = VonageEmulator::start(account()).await.unwrap();
    let provider = vonage::build_in(&config(&vonage.base_url(), false), &BuildContext::default());
    // The adapter accepted the call, so the answer parsed; re-check the body shape directly.
    provider.send(&message(Channel::Voice, "", "en-US")).await.unwrap();
    let response =
        operation(&voice, "/", "post")["responses"]["201"]["content"]["application/json"]["schema"]
            .clone();
    let validator = openapi_validator(&voice, &response);
    let token = {
        use jsonwebtoken::{Algorithm, EncodingKey, Header};
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        let claims =
            json!({"application_id": vonage::APP, "iat": now, "exp": now + 60, "jti": "j"});
        jsonwebtoken::encode(
            &Header::new(Algorithm::RS256),
            &claims,
            &EncodingKey::from_rsa_pem(TEST_PRIVATE_KEY_PEM.as_bytes()).unwrap(),
        )
        .unwrap()
    };
    let created: Value = reqwest::Client::new()
        .post(format!("{}/v1/calls", vonage.base_url()))
        .bearer_auth(token)
        .json(&json!({"to": [{"type": "phone", "number": "447700900123"}], "from": {"type": "phone", "number": "447700900001"}, "ncco": [{"action": "talk", "text": "hi"}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_valid(&validator, &created, "a create-call answer");
    let directions = &voice["components"]["schemas"]["direction"]["enum"];
    assert!(directions.as_array().unwrap().contains(&created["direction"]));
}
