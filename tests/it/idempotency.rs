//! Okta's retries and resends: a repeated `eventId` never sends twice, a reused one with other
//! content is refused, and a resend for the same number goes through another provider.

use switchboard_sim::faults::Faults;

use crate::helpers::{action, metadata, okta_request, spawn_app, within};

#[tokio::test]
async fn a_repeated_event_id_gets_the_same_answer_and_no_second_send() {
    let app = spawn_app().await;
    let request = okta_request("evt-retry", "+14155550100", "482915", "SMS");

    let (_, first) = app.hook_json(&request).await;
    let (_, second) = app.hook_json(&request).await;

    assert_eq!(first, second, "the retry is answered with the first answer");
    assert_eq!(action(&first)["status"], "SUCCESSFUL");
    assert_eq!(app.primary.received().len(), 1, "one send for two requests");
    assert!(app.metrics().await.contains("switchboard_hook_repeated_total 1"));
}

#[tokio::test]
async fn concurrent_repeats_join_the_send_in_flight() {
    let app = spawn_app().await;
    app.primary.set_faults(
        Faults::none()
            .with_latency(std::time::Duration::from_millis(200), std::time::Duration::ZERO),
    );
    let request = okta_request("evt-concurrent", "+14155550100", "482915", "SMS");

    let (first, second) = tokio::join!(app.hook_json(&request), app.hook_json(&request));

    assert_eq!(first.1, second.1);
    assert_eq!(metadata(action(&first.1), "outcome"), "delivered");
    assert_eq!(app.primary.received().len(), 1);
}

#[tokio::test]
async fn a_reused_event_id_with_another_code_is_refused() {
    let app = spawn_app().await;
    app.hook_json(&okta_request("evt-reuse", "+14155550100", "482915", "SMS")).await;

    for different in [
        okta_request("evt-reuse", "+14155550100", "111111", "SMS"),
        okta_request("evt-reuse", "+14155550199", "482915", "SMS"),
        okta_request("evt-reuse", "+14155550100", "482915", "CALL"),
    ] {
        let response = app.hook(&different).await;
        assert_eq!(response.status(), 409);
        let answer: serde_json::Value = response.json().await.unwrap();
        assert_eq!(answer["error"]["errorCauses"][0]["location"], "eventId");
    }
    assert_eq!(app.primary.received().len(), 1);
}

#[tokio::test]
async fn a_resend_for_the_same_number_prefers_another_provider() {
    let app = spawn_app().await;
    let (_, first) =
        app.hook_json(&okta_request("evt-first", "+14155550100", "482915", "SMS")).await;
    assert_eq!(action(&first)["provider"], "twilio-primary");
    // The ledger learns who took the first code when that delivery finishes.
    within(5, app.logs.wait_for("evt-first")).await;

    let (_, resend) =
        app.hook_json(&okta_request("evt-resend", "+14155550100", "730461", "SMS")).await;
    assert_eq!(action(&resend)["provider"], "twilio-backup", "the user did not get the first one");

    let (_, other) =
        app.hook_json(&okta_request("evt-other", "+14155550142", "730461", "SMS")).await;
    assert_eq!(action(&other)["provider"], "twilio-primary", "other numbers are unaffected");
    let logs = app.logs.text();
    let resend_line =
        logs.lines().find(|l| l.contains("evt-resend") && l.contains("hook request")).unwrap();
    assert!(resend_line.contains("\"is_resend\":true"), "{resend_line}");
}
