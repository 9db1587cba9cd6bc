//! Metrics, logs, and the canary: a unique passcode sent through every path appears in no log
//! line, metric or response.

use switchboard_sim::faults::{Fault, Faults};

use crate::helpers::{AppOptions, action, okta_request, spawn_app, spawn_app_with, within};

#[tokio::test]
async fn metrics_count_per_provider_and_outcome() {
    let app = spawn_app().await;
    app.hook_json(&okta_request("evt-m1", "+14155550100", "482915", "SMS")).await;
    app.primary.set_faults(Faults::always(Fault::Status { status: 503, code: Some(20503) }));
    app.hook_json(&okta_request("evt-m2", "+447700900123", "482915", "CALL")).await;

    let metrics = app.metrics().await;
    for line in [
        "switchboard_provider_attempts_total{provider=\"twilio-primary\",channel=\"sms\",outcome=\"accepted\"} 1",
        "switchboard_provider_attempts_total{provider=\"twilio-primary\",channel=\"voice\",outcome=\"transient\"} 1",
        "switchboard_provider_attempts_total{provider=\"twilio-backup\",channel=\"voice\",outcome=\"accepted\"} 1",
        "switchboard_hook_requests_total{outcome=\"delivered\",okta_status=\"SUCCESSFUL\",channel=\"sms\",request_type=\"verification\"} 1",
        "switchboard_provider_health{provider=\"twilio-backup\",state=\"healthy\"} 1",
    ] {
        assert!(metrics.contains(line), "missing `{line}` in:\n{metrics}");
    }
    assert!(metrics.contains("switchboard_hook_duration_seconds_bucket"));
    assert!(metrics.contains("switchboard_provider_attempt_duration_seconds_bucket"));
}

#[tokio::test]
async fn health_and_readiness_endpoints_answer() {
    let app = spawn_app().await;
    for path in ["/healthz", "/readyz"] {
        let response = app.client.get(format!("{}{path}", app.admin_url)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }
}

#[tokio::test]
async fn one_log_line_per_request_with_the_decision_and_no_secrets() {
    let app = spawn_app().await;
    app.primary.set_faults(Faults::always(Fault::Status { status: 503, code: Some(20503) }));
    app.hook_json(&okta_request("evt-log", "+14155550100", "482915", "SMS")).await;

    let logs = app.logs.text();
    let lines: Vec<&str> =
        logs.lines().filter(|line| line.contains("\"message\":\"hook request\"")).collect();
    assert_eq!(lines.len(), 1, "{logs}");
    let line: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    let fields = &line["fields"];
    assert_eq!(fields["event_id"], "evt-log");
    assert_eq!(fields["country"], "US");
    assert_eq!(fields["channel"], "sms");
    assert_eq!(fields["outcome"], "delivered", "{logs}");
    let attempts = fields["attempts"].as_str().unwrap();
    assert!(
        attempts.starts_with("twilio-primary:transient:")
            && attempts.contains(",twilio-backup:accepted:"),
        "{attempts}"
    );
    assert!(fields["phone"].as_str().unwrap().starts_with("US:"));
    assert!(!logs.contains("4155550100"), "no full phone number in logs");
}

/// The canary: one unique code through success, failover, all-down and refusal; then search
/// every log line, the metrics and every answer.
#[tokio::test]
async fn the_passcode_appears_in_no_log_metric_or_response() {
    const CANARY: &str = "91827364";
    let app = spawn_app().await;
    let mut answers = String::new();

    let (_, answer) = app.hook_json(&okta_request("evt-c1", "+14155550100", CANARY, "SMS")).await;
    answers.push_str(&answer.to_string());
    app.primary.set_faults(Faults::always(Fault::Reset));
    let (_, answer) = app.hook_json(&okta_request("evt-c2", "+14155550100", CANARY, "CALL")).await;
    answers.push_str(&answer.to_string());
    app.backup.set_faults(Faults::always(Fault::Status { status: 500, code: None }));
    let (_, answer) = app.hook_json(&okta_request("evt-c3", "+14155550100", CANARY, "SMS")).await;
    answers.push_str(&answer.to_string());
    let (_, answer) = app.hook_json(&okta_request("evt-c4", "+15005550001", CANARY, "SMS")).await;
    answers.push_str(&answer.to_string());
    let mut bad = okta_request("evt-c5", "+14155550100", CANARY, "SMS");
    bad["data"]["messageProfile"]["deliveryChannel"] = "FAX".into();
    answers.push_str(&app.hook(&bad).await.text().await.unwrap());
    assert_eq!(
        action(&serde_json::from_str::<serde_json::Value>(&answer.to_string()).unwrap())["status"],
        "SUCCESSFUL"
    );

    // A delivery receipt for the first send reaches the server (the emulator posts it).
    within(10, app.logs.wait_for("delivery receipt")).await;

    let logs = app.logs.text();
    assert!(logs.contains("evt-c3"), "the capture works: {logs}");
    assert!(!logs.contains(CANARY), "passcode in logs:\n{logs}");
    assert!(!app.metrics().await.contains(CANARY));
    assert!(!answers.contains(CANARY), "passcode in an answer: {answers}");
    // The providers did get it: the canary is meant for them only.
    assert!(
        app.backup
            .received()
            .iter()
            .any(|send| send.body.as_deref().is_some_and(|b| b.contains(CANARY)))
    );
}

/// The canary through a forced panic in an adapter: Okta still gets a well-formed answer, and
/// neither it nor any log line carries the code.
#[tokio::test]
async fn a_panicking_adapter_leaks_no_passcode_and_okta_still_gets_an_answer() {
    const CANARY: &str = "55501937";
    let app = spawn_app_with(AppOptions { panicking_primary: true, ..AppOptions::default() }).await;

    let response = app.hook(&okta_request("evt-panic", "+14155550100", CANARY, "SMS")).await;
    let status = response.status();
    let body = response.text().await.unwrap();

    assert_eq!(status, 500, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).expect("a well-formed JSON answer");
    assert_eq!(answer["error"]["errorSummary"], "internal error");
    assert!(!body.contains(CANARY));
    // Okta's retry of the same event gets the same well-formed answer, and still no send.
    let retry = app.hook(&okta_request("evt-panic", "+14155550100", CANARY, "SMS")).await;
    assert_eq!(retry.status(), 500);
    assert!(app.backup.received().is_empty());
    let logs = app.logs.text();
    assert!(logs.contains("delivery task ended without answering"), "the capture saw it: {logs}");
    assert!(!logs.contains(CANARY), "{logs}");
    assert!(!app.metrics().await.contains(CANARY));
}

#[tokio::test]
async fn explorations_are_counted_and_bounded_per_provider() {
    let app = spawn_app_with(AppOptions {
        route: "optimize = \"cost\"\nexploration = 0.5",
        // Twenty codes from one user to one range would trip the fraud guard: watch only.
        extra: "[guard]\nmode = \"monitor\"\n[prices.twilio-primary]\ndefault = { sms = 0.010 }\n[prices.twilio-backup]\ndefault = { sms = 0.011 }",
        rng_seed: Some(1),
        ..AppOptions::default()
    })
    .await;
    for index in 0..20 {
        let phone = format!("+1415555{:04}", 2000 + index);
        let (_, answer) = app
            .hook_json(&okta_request(&format!("evt-explore-{index}"), &phone, "482915", "SMS"))
            .await;
        assert_eq!(action(&answer)["status"], "SUCCESSFUL");
    }
    // Half the plans would explore, but a provider is explored at most once per 10 s, and the
    // cheaper primary soon proves itself beyond what the backup could hope to reach.
    assert_eq!(app.backup.received().len(), 1);
    assert_eq!(app.primary.received().len(), 19);
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(r#"switchboard_explorations_total{provider="twilio-backup"} 1"#),
        "{metrics}"
    );
}
