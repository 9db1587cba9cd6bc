//! Delivery receipts through the real server: the emulator posts Twilio's signed status callback
//! to switchboard's public callback URL; a good signature feeds provider health, a bad one is
//! refused and changes nothing.

use reqwest::Method;
use switchboard_sim::Receipts;

use crate::helpers::{okta_request, spawn_app, within};

async fn delivery_rate(app: &crate::helpers::TestApp, provider: &str) -> f64 {
    let json: serde_json::Value = app
        .admin(Method::GET, "/admin/explain?number=%2B14155550100&channel=sms")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    json["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["provider"] == provider)
        .and_then(|c| c["delivery_rate"].as_f64())
        .unwrap_or_else(|| panic!("no {provider} in {json}"))
}

#[tokio::test]
async fn signed_undelivered_receipts_lower_the_providers_delivery_rate() {
    let app = spawn_app().await;
    let before = delivery_rate(&app, "twilio-primary").await;
    app.primary.set_receipts(Receipts::undelivered(30003));

    for index in 0..3 {
        app.hook_json(&okta_request(
            &format!("evt-dlr-{index}"),
            &format!("+1415555020{index}"),
            "482915",
            "SMS",
        ))
        .await;
    }
    for index in 0..3 {
        within(
            10,
            app.logs.wait_for(&format!(
                "\"event_id\":\"evt-dlr-{index}\",\"provider\":\"twilio-primary\""
            )),
        )
        .await;
    }

    let metrics = app.metrics().await;
    assert!(
        metrics.contains(r#"switchboard_receipts_total{provider="twilio-primary",state="undelivered",matched="true"} 3"#),
        "{metrics}"
    );
    let after = delivery_rate(&app, "twilio-primary").await;
    assert!(after < before, "undelivered receipts must cost the provider: {before} -> {after}");
    assert!(
        (delivery_rate(&app, "twilio-backup").await - before).abs() < 1e-9,
        "other providers unaffected"
    );
}

#[tokio::test]
async fn a_receipt_with_a_bad_signature_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let before = delivery_rate(&app, "twilio-primary").await;
    let base = app.hook_url.trim_end_matches("/okta/telephony");
    let forged = [
        ("MessageSid", "SM0123456789abcdef0123456789abcdef"),
        ("MessageStatus", "undelivered"),
        ("ErrorCode", "30003"),
        ("AccountSid", crate::helpers::PRIMARY_SID),
    ];
    for signature in [None, Some("bm90IGEgc2lnbmF0dXJl")] {
        let mut request =
            app.client.post(format!("{base}/callbacks/twilio-primary/status")).form(&forged);
        if let Some(signature) = signature {
            request = request.header("X-Twilio-Signature", signature);
        }
        assert_eq!(request.send().await.unwrap().status(), 401);
    }
    let unknown = app
        .client
        .post(format!("{base}/callbacks/nobody/status"))
        .form(&forged)
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);

    let metrics = app.metrics().await;
    assert!(
        metrics.contains(r#"switchboard_callbacks_refused_total{provider="twilio-primary",reason="bad_signature"} 2"#),
        "{metrics}"
    );
    assert!(!metrics.contains("switchboard_receipts_total"), "no receipt was counted: {metrics}");
    assert_eq!(delivery_rate(&app, "twilio-primary").await, before);
}

#[tokio::test]
async fn a_replayed_final_receipt_counts_once() {
    let app = spawn_app().await;
    app.primary.set_receipts(Receipts::undelivered(30003));
    app.hook_json(&okta_request("evt-replay", "+14155550240", "482915", "SMS")).await;
    within(10, app.logs.wait_for("\"event_id\":\"evt-replay\",\"provider\":\"twilio-primary\""))
        .await;
    let once = delivery_rate(&app, "twilio-primary").await;

    // The final callback exactly as Twilio signed it, posted again: Twilio's signature has no
    // timestamp, so anyone who captured it can.
    let last = app.primary.callbacks().into_iter().last().expect("a callback was posted");
    let params: Vec<(String, String)> = serde_urlencoded::from_str(&last.request_body).unwrap();
    assert!(params.contains(&("MessageStatus".into(), "undelivered".into())), "{params:?}");
    let signature = switchboard_sim::twilio::signature("primary-token", &last.url, &params);
    for _ in 0..5 {
        let response = app
            .client
            .post(&last.url)
            .header("X-Twilio-Signature", &signature)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(last.request_body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "a genuine receipt is acknowledged");
    }
    // Each replay was handled before its response came back. Counted again, five more
    // undelivered receipts would take the rate from 1/2 to 1/7; only the receipts' decay may
    // move it between the two reads.
    let after = delivery_rate(&app, "twilio-primary").await;
    assert!((after - once).abs() < 0.01, "replays changed health: {once} -> {after}");
    within(10, app.logs.wait_for("repeated final receipt; counted once")).await;
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(r#"switchboard_receipts_total{provider="twilio-primary",state="undelivered",matched="true"} 6"#),
        "{metrics}"
    );
}
