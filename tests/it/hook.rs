//! The Okta contract: request parsing, the exact answer shape, authentication.

use crate::helpers::{PRIMARY_SID, SECRET, action, metadata, okta_request, spawn_app};

#[tokio::test]
async fn oktas_sample_is_delivered_once_with_the_documented_answer() {
    let app = spawn_app().await;
    let (status, answer) =
        app.hook_json(&okta_request("evt-sample", "+14155550100", "482915", "SMS")).await;

    assert_eq!(status, 200);
    let value = action(&answer);
    assert_eq!(value["status"], "SUCCESSFUL");
    assert_eq!(value["provider"], "twilio-primary");
    let transaction_id = value["transactionId"].as_str().unwrap();
    assert!(transaction_id.starts_with("SM") && transaction_id.len() == 34, "{transaction_id}");
    assert_eq!(metadata(value, "attempts"), "1");
    assert_eq!(metadata(value, "outcome"), "delivered");

    let (primary, backup) = app.sends();
    assert_eq!(primary.len(), 1, "exactly one Messages.json");
    assert!(backup.is_empty());
    let send = &primary[0];
    assert!(send.is_authenticated);
    assert_eq!(send.account_sid, PRIMARY_SID);
    assert_eq!(send.to.as_deref(), Some("+14155550100"));
    assert_eq!(send.from.as_deref(), Some("+15005550006"));
    assert_eq!(send.body.as_deref(), Some("(HOOK)Your code is 482915"));
}

#[tokio::test]
async fn previews_number_without_plus_and_voice_call_spelling_place_a_call() {
    let app = spawn_app().await;
    // The Admin Console preview sends a national number and "voice call".
    let (status, answer) =
        app.hook_json(&okta_request("evt-preview", "4155550123", "918273", "voice call")).await;

    assert_eq!(status, 200);
    assert_eq!(action(&answer)["status"], "SUCCESSFUL");
    assert!(action(&answer)["transactionId"].as_str().unwrap().starts_with("CA"));
    let (primary, _) = app.sends();
    assert_eq!(primary.len(), 1);
    assert_eq!(primary[0].to.as_deref(), Some("+14155550123"));
    let twiml = primary[0].twiml.as_deref().expect("inline TwiML");
    assert!(twiml.starts_with("<Response>") && twiml.contains("<Say"), "{twiml}");
    assert_eq!(
        twiml.matches("9, 1, 8, 2, 7, 3").count(),
        2,
        "digits read one by one, twice: {twiml}"
    );
    assert!(primary[0].body.is_none());
}

#[tokio::test]
async fn wrong_or_missing_secret_gets_401_and_no_provider_call() {
    let app = spawn_app().await;
    let body = okta_request("evt-auth", "+14155550100", "482915", "SMS");
    let cases: [Option<&str>; 4] =
        [None, Some("wrong"), Some(&SECRET[..SECRET.len() - 1]), Some("")];
    for secret in cases {
        let mut request = app.client.post(&app.hook_url).json(&body);
        if let Some(secret) = secret {
            request = request.header("Authorization", secret);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401, "secret {secret:?}");
        let answer: serde_json::Value = response.json().await.unwrap();
        assert_eq!(answer["error"]["errorSummary"], "authentication failed");
    }
    // The second configured secret (rotation) is accepted.
    let response = app
        .client
        .post(&app.hook_url)
        .header("Authorization", "previous-secret-0123456789")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (primary, backup) = app.sends();
    assert_eq!(
        primary.len() + backup.len(),
        1,
        "only the authenticated request reached a provider"
    );
}

#[tokio::test]
async fn malformed_requests_get_400_naming_the_problem() {
    let app = spawn_app().await;
    let mut missing_code = okta_request("evt-bad", "+14155550100", "482915", "SMS");
    missing_code["data"]["messageProfile"].as_object_mut().unwrap().remove("otpCode");
    let mut bad_channel = okta_request("evt-bad", "+14155550100", "482915", "SMS");
    bad_channel["data"]["messageProfile"]["deliveryChannel"] = "FAX".into();
    let mut bad_code = okta_request("evt-bad", "+14155550100", "48A915", "SMS");
    bad_code["data"]["messageProfile"]["msgTemplate"] = "x".into();
    let mut wrong_type = okta_request("evt-bad", "+14155550100", "482915", "SMS");
    wrong_type["data"]["messageProfile"]["phoneNumber"] = 14155550100_u64.into();

    for (body, expected) in [
        (missing_code.to_string(), "otpCode"),
        (bad_channel.to_string(), "deliveryChannel"),
        (bad_code.to_string(), "otpCode"),
        (wrong_type.to_string(), "phoneNumber"),
        ("{\"eventId\": ".to_owned(), "invalid request body"),
        ("[]".to_owned(), "invalid request body"),
    ] {
        let response = app
            .client
            .post(&app.hook_url)
            .header("Authorization", SECRET)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{body}");
        let answer: serde_json::Value = response.json().await.unwrap();
        let summary = answer["error"]["errorSummary"].as_str().unwrap();
        let cause = &answer["error"]["errorCauses"][0];
        let named = format!("{summary} {}", cause["location"]);
        assert!(named.contains(expected), "expected `{expected}` in: {answer}");
        assert!(
            !summary.contains("48A915") && !summary.contains("482915"),
            "never echo the code: {summary}"
        );
    }
    let (primary, backup) = app.sends();
    assert!(primary.is_empty() && backup.is_empty());
}

#[tokio::test]
async fn a_number_with_no_country_is_refused_with_oktas_failed_shape() {
    let app = spawn_app().await;
    let (status, answer) =
        app.hook_json(&okta_request("evt-nonumber", "not a number", "482915", "SMS")).await;
    assert_eq!(status, 200);
    assert_eq!(action(&answer)["status"], "FAILED");
    let (primary, backup) = app.sends();
    assert!(primary.is_empty() && backup.is_empty());
}

#[tokio::test]
async fn configured_templates_replace_oktas_text_per_locale() {
    let app = crate::helpers::spawn_app_with(crate::helpers::AppOptions {
        extra: "[sms_text]\ndefault = \"Acme code: {code}\"\n[sms_text.locales]\nfr = \"Code Acme : {code}\"",
        ..crate::helpers::AppOptions::default()
    })
    .await;
    let mut french = okta_request("evt-fr", "+33612345678", "482915", "SMS");
    french["data"]["messageProfile"]["locale"] = "fr-FR".into();
    app.hook_json(&french).await;
    app.hook_json(&okta_request("evt-en", "+14155550100", "730461", "SMS")).await;

    let bodies: Vec<String> =
        app.primary.received().iter().filter_map(|s| s.body.clone()).collect();
    assert_eq!(bodies, ["Code Acme : 482915", "Acme code: 730461"]);
}

#[tokio::test]
async fn an_okta_text_that_would_bill_many_parts_is_replaced_by_a_short_one() {
    let app = spawn_app().await;
    let mut long = okta_request("evt-long", "+14155550100", "482915", "SMS");
    // UCS-2 (the emoji) and long: five or more parts at 67 units each.
    long["data"]["messageProfile"]["msgTemplate"] =
        format!("🔐 {} 482915", "Votre code de vérification ".repeat(12)).into();
    app.hook_json(&long).await;
    let mut lost = okta_request("evt-lost", "+14155550101", "730461", "SMS");
    lost["data"]["messageProfile"]["msgTemplate"] = "Your code is on its way".into();
    app.hook_json(&lost).await;

    let bodies: Vec<String> =
        app.primary.received().iter().filter_map(|s| s.body.clone()).collect();
    assert_eq!(bodies, ["Your verification code is 482915", "Your verification code is 730461"]);
}
