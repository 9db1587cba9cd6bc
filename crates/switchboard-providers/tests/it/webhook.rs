//! The generic webhook adapter against `switchboard-sim`'s configurable JSON endpoint.

use crate::support;

use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;
use support::CODE;
use switchboard_core::{Certainty, Channel, ErrorClass, MessageText, OutboundMessage, ProviderId};
use switchboard_providers::{
    BuildContext, Callback, CallbackError, DeliveryState, ProviderConfig, ProviderError,
    SharedProvider,
};
use switchboard_sim::webhook::{Answer, RunningEmulator, WebhookEmulator};
use switchboard_sim::{Fault, Faults};

const TO: &str = "+14155550100";
const SIGNING: &str = "outgoing-secret";
const RECEIPTS: &str = "receipt-secret";

/// A full config, as an operator would write it.
fn config_toml(url: &str, extra: &str) -> String {
    format!(
        r#"
        [providers.gateway]
        kind = "webhook"
        url = "{url}/v1/messages?tenant=acme"
        channels = ["sms", "voice"]
        body = '''{{"to": "{{{{to}}}}", "text": "{{{{text}}}}", "channel": "{{{{channel}}}}", "locale": "{{{{locale}}}}", "ref": "{{{{reference}}}}", "code": "{{{{code}}}}", "notify": "{{{{callback_url}}}}"}}'''
        success_pointer = "/status"
        success_value = "accepted"
        message_id_pointer = "/id"
        signing_secret = "{SIGNING}"
        {extra}
        [providers.gateway.headers]
        Authorization = "Bearer gateway-token"
        [providers.gateway.receipts]
        secret = "{RECEIPTS}"
        signature_header = "X-Gateway-Signature"
        message_id_pointer = "/message/id"
        status_pointer = "/message/status"
        delivered = ["delivered"]
        failed = {{ undeliverable = "invalid_number", failed = "transient" }}
        "#
    )
}

#[derive(serde::Deserialize)]
struct File {
    providers: std::collections::BTreeMap<String, ProviderConfig>,
}

fn build(url: &str, extra: &str, context: &BuildContext) -> SharedProvider {
    let file: File = toml::from_str(&config_toml(url, extra)).unwrap();
    switchboard_providers::build(
        ProviderId::parse("gateway").unwrap(),
        &file.providers["gateway"],
        context,
    )
    .unwrap()
}

async fn harness(extra: &str) -> (RunningEmulator, SharedProvider) {
    let gateway = WebhookEmulator::start().await.unwrap();
    let provider = build(&gateway.base_url(), extra, &BuildContext::default());
    (gateway, provider)
}

fn message(channel: Channel, text: &str) -> OutboundMessage {
    OutboundMessage {
        text: MessageText::new(text.into()),
        ..support::message(channel, TO, "US", "fr-CA")
    }
}

fn hmac_hex(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn verdict(error: &ProviderError) -> (ErrorClass, Certainty) {
    support::verdict(error, &[CODE, "4155550100", SIGNING, "gateway-token"])
}

#[tokio::test]
async fn sms_is_one_signed_request_with_the_rendered_body() {
    let (gateway, provider) = harness("").await;
    let text = "Votre code: \"918273\"\n\\ ok";
    let accepted = provider.send(&message(Channel::Sms, text)).await.unwrap();
    assert_eq!(accepted.message_id, "wh-1");

    let received = gateway.received();
    assert_eq!(received.len(), 1);
    let request = &received[0];
    assert_eq!(
        (request.method.as_str(), request.path.as_str()),
        ("POST", "/v1/messages?tenant=acme")
    );
    assert_eq!(request.header("authorization"), Some("Bearer gateway-token"));
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(
        request.header("x-switchboard-signature"),
        Some(hmac_hex(SIGNING, request.body.as_bytes()).as_str())
    );
    assert_eq!(
        request.json(),
        json!({
            "to": TO, "text": text, "channel": "sms", "locale": "fr-CA", "ref": "evt-1",
            "code": CODE, "notify": "",
        }),
        "values are JSON-escaped into their strings"
    );
}

#[tokio::test]
async fn voice_sends_the_spoken_script() {
    let (gateway, provider) = harness("").await;
    provider.send(&message(Channel::Voice, "unused")).await.unwrap();
    let body = gateway.received()[0].json();
    assert_eq!(body["channel"], "voice");
    let script = body["text"].as_str().unwrap();
    assert!(script.starts_with("Votre code"), "{script}");
    assert_eq!(script.matches("9, 1, 8, 2, 7, 3").count(), 2);
}

#[tokio::test]
async fn the_success_rule_and_the_id_decide_acceptance() {
    let (gateway, provider) = harness("").await;
    gateway
        .set_answer(Answer { status: 200, body: Some(json!({"status": "rejected", "id": "x"})) });
    let error = provider.send(&message(Channel::Sms, "c")).await.unwrap_err();
    assert_eq!(verdict(&error), (ErrorClass::Transient, Certainty::NotSent));

    gateway.set_answer(Answer { status: 200, body: Some(json!({"status": "accepted"})) });
    let error = provider.send(&message(Channel::Sms, "c")).await.unwrap_err();
    assert_eq!(verdict(&error), (ErrorClass::Transient, Certainty::PossiblyAccepted), "no id");

    gateway.set_answer(Answer { status: 200, body: Some(json!({"status": "accepted", "id": 42})) });
    assert_eq!(provider.send(&message(Channel::Sms, "c")).await.unwrap().message_id, "42");

    gateway
        .set_answer(Answer { status: 204, body: Some(json!({"status": "accepted", "id": "a"})) });
    let error = provider.send(&message(Channel::Sms, "c")).await.unwrap_err();
    assert_eq!(
        verdict(&error),
        (ErrorClass::Transient, Certainty::PossiblyAccepted),
        "an unlisted 2xx"
    );
}

#[tokio::test]
async fn statuses_map_to_classes_with_overrides() {
    let (gateway, provider) = harness("status_classes = { \"400\" = \"invalid_number\" }").await;
    let (plain_gateway, plain) = harness("").await;
    for (status, overridden, default) in [
        (400, ErrorClass::InvalidNumber, ErrorClass::AuthConfig),
        (401, ErrorClass::AuthConfig, ErrorClass::AuthConfig),
        (402, ErrorClass::Funds, ErrorClass::Funds),
        (418, ErrorClass::Transient, ErrorClass::Transient),
        (503, ErrorClass::Transient, ErrorClass::Transient),
    ] {
        for (gateway, provider, class) in
            [(&gateway, &provider, overridden), (&plain_gateway, &plain, default)]
        {
            gateway.set_faults(Faults::always(Fault::Status { status, code: Some(1) }));
            let error = provider.send(&message(Channel::Sms, "c")).await.unwrap_err();
            assert_eq!(verdict(&error), (class, Certainty::NotSent), "{status}");
            assert_eq!(error.provider_code.as_deref(), Some(status.to_string().as_str()));
        }
    }
    gateway.set_faults(Faults::always(Fault::Status { status: 504, code: None }));
    let error = provider.send(&message(Channel::Sms, "c")).await.unwrap_err();
    assert_eq!(verdict(&error), (ErrorClass::Timeout, Certainty::PossiblyAccepted));
    gateway.set_faults(Faults::always(Fault::RateLimit { retry_after_s: 9 }));
    let error = provider.send(&message(Channel::Sms, "c")).await.unwrap_err();
    assert_eq!(verdict(&error), (ErrorClass::RateLimited, Certainty::NotSent));
    assert_eq!(error.retry_after, Some(Duration::from_secs(9)));
}

#[tokio::test]
async fn hangs_and_resets_are_possibly_accepted() {
    let (gateway, provider) = harness("timeout_ms = 200\nconnect_timeout_ms = 100").await;
    gateway.set_faults(Faults::always(Fault::Hang));
    let error = provider.send(&message(Channel::Sms, "c")).await.unwrap_err();
    assert_eq!(verdict(&error), (ErrorClass::Timeout, Certainty::PossiblyAccepted));
    gateway.set_faults(Faults::always(Fault::Reset));
    let error = provider.send(&message(Channel::Sms, "c")).await.unwrap_err();
    assert_eq!(verdict(&error), (ErrorClass::Transient, Certainty::PossiblyAccepted));
}

#[tokio::test]
async fn a_channel_the_gateway_lacks_sends_nothing() {
    let gateway = WebhookEmulator::start().await.unwrap();
    let file: File = toml::from_str(
        &config_toml(&gateway.base_url(), "").replace(r#"channels = ["sms", "voice"]"#, ""),
    )
    .unwrap();
    let provider = switchboard_providers::build(
        ProviderId::parse("gateway").unwrap(),
        &file.providers["gateway"],
        &BuildContext::default(),
    )
    .unwrap();
    assert!(provider.supports(Channel::Sms) && !provider.supports(Channel::Voice));
    let error = provider.send(&message(Channel::Voice, "c")).await.unwrap_err();
    assert_eq!(verdict(&error), (ErrorClass::AuthConfig, Certainty::NotSent));
    assert!(gateway.received().is_empty());
}

#[tokio::test]
async fn probe_only_connects() {
    let (gateway, provider) = harness("").await;
    provider.probe().await.unwrap();
    assert!(gateway.received().is_empty(), "a probe never sends a request");
    let url = gateway.base_url();
    gateway.shutdown().await;
    let stopped = build(&url, "", &BuildContext::default());
    assert_eq!(stopped.probe().await.unwrap_err().class, ErrorClass::Transient);
}

#[tokio::test]
async fn receipts_arrive_signed_at_the_callback_url() {
    let gateway = WebhookEmulator::start().await.unwrap();
    let mut receiver = support::CallbackReceiver::start().await;
    let context = BuildContext { callback_base: Some(receiver.callback_base("gateway")) };
    let provider = build(&gateway.base_url(), "", &context);
    let accepted = provider.send(&message(Channel::Sms, "c")).await.unwrap();
    let notify = gateway.received()[0].json()["notify"].as_str().unwrap().to_owned();
    assert_eq!(notify, format!("{}/receipt", receiver.callback_base("gateway")));

    // The gateway's side of the contract: a signed JSON POST to the callback URL.
    let client = reqwest::Client::new();
    for status in ["delivered", "undeliverable", "queued"] {
        let body = json!({"message": {"id": accepted.message_id, "status": status}}).to_string();
        let answer = client
            .post(&notify)
            .header("X-Gateway-Signature", hmac_hex(RECEIPTS, body.as_bytes()))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
    }
    let mut states = Vec::new();
    for _ in 0..3 {
        let callback = receiver.next("gateway").await;
        let reply = provider.handle_callback(&callback).await.unwrap();
        assert_eq!(reply.receipts[0].message_id, accepted.message_id);
        states.push(reply.receipts[0].state);
    }
    assert_eq!(
        states,
        [
            DeliveryState::Delivered,
            DeliveryState::Undelivered(ErrorClass::InvalidNumber),
            DeliveryState::Pending
        ]
    );
}

#[tokio::test]
async fn receipts_that_do_not_verify_have_no_effect() {
    let (_gateway, provider) = harness("").await;
    let body = json!({"message": {"id": "wh-1", "status": "delivered"}}).to_string();
    let callback = |signature: Option<String>, subpath: &str| {
        let mut headers = http::HeaderMap::new();
        if let Some(signature) = signature {
            headers.insert("x-gateway-signature", signature.parse().unwrap());
        }
        Callback {
            method: "POST".into(),
            url: "https://switchboard.example/callbacks/gateway/receipt".into(),
            subpath: subpath.into(),
            headers,
            body: body.clone().into(),
        }
    };
    for forged in [
        None,
        Some(hmac_hex("wrong", body.as_bytes())),
        Some(hmac_hex(RECEIPTS, b"another body")),
        Some(hmac_hex(SIGNING, body.as_bytes())),
    ] {
        assert_eq!(
            provider.handle_callback(&callback(forged, "/receipt")).await.unwrap_err(),
            CallbackError::BadSignature
        );
    }
    let signed = Some(hmac_hex(RECEIPTS, body.as_bytes()));
    assert_eq!(
        provider.handle_callback(&callback(signed.clone(), "/status")).await.unwrap_err(),
        CallbackError::NotFound
    );
    assert!(provider.handle_callback(&callback(signed, "/receipt")).await.is_ok());
}

#[test]
fn config_errors_name_the_key() {
    for (from, to, key) in [
        (r#"url = "http://x/v1/messages?tenant=acme""#, r#"url = "ftp://x""#, "url"),
        ("success_value = \"accepted\"", "", "success_value"),
        ("message_id_pointer = \"/id\"", "message_id_pointer = \"id\"", "message_id_pointer"),
        (r#""to": "{{to}}""#, r#""to": "{{phone}}""#, "body"),
        (r#"delivered = ["delivered"]"#, "delivered = []", "receipts.delivered"),
        (
            r#"undeliverable = "invalid_number""#,
            r#"undeliverable = "bad""#,
            "receipts.failed.undeliverable",
        ),
        ("Authorization = ", "Content-Type = ", "headers.Content-Type"),
        (r#"channels = ["sms", "voice"]"#, r#"channels = ["fax"]"#, "channels[0]"),
    ] {
        let text = config_toml("http://x", "").replace(from, to);
        assert_ne!(text, config_toml("http://x", ""), "{from}");
        let file: File = toml::from_str(&text).unwrap();
        let error =
            file.providers["gateway"].validate("providers.gateway").unwrap_err().to_string();
        assert!(error.starts_with(&format!("providers.gateway.{key}: ")), "{key}: {error}");
    }
    let status = config_toml("http://x", "status_classes = { \"200\" = \"transient\" }");
    let file: File = toml::from_str(&status).unwrap();
    let error = file.providers["gateway"].validate("providers.gateway").unwrap_err().to_string();
    assert!(error.starts_with("providers.gateway.status_classes.200: "), "{error}");
    let printed =
        format!("{:?}", toml::from_str::<File>(&config_toml("http://x", "")).unwrap().providers);
    for secret in [SIGNING, RECEIPTS, "gateway-token"] {
        assert!(!printed.contains(secret), "{secret} printed");
    }
}
