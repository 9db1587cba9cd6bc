//! Failover inside the deadline, read as scripts: the primary fails this way, the backup gets
//! exactly one request, Okta gets this answer.

use std::time::{Duration, Instant};

use switchboard_sim::faults::{Fault, Faults};

use crate::helpers::{
    AppOptions, action, metadata, okta_request, spawn_app, spawn_app_with, within,
};

#[tokio::test]
async fn primary_5xx_fails_over_to_the_backup() {
    let app = spawn_app().await;
    app.primary.set_faults(Faults::always(Fault::Status { status: 503, code: Some(20503) }));

    let (_, answer) =
        app.hook_json(&okta_request("evt-5xx", "+14155550100", "482915", "SMS")).await;

    let value = action(&answer);
    assert_eq!(value["status"], "SUCCESSFUL");
    assert_eq!(value["provider"], "twilio-backup");
    assert_eq!(metadata(value, "outcome"), "delivered");
    assert_eq!(metadata(value, "attempts"), "2");
    let (primary, backup) = app.sends();
    assert_eq!(primary.len(), 1);
    assert_eq!(backup.len(), 1, "the backup gets exactly one request");
    assert_eq!(backup[0].body.as_deref(), Some("(HOOK)Your code is 482915"));
    assert_eq!(backup[0].account_sid, crate::helpers::BACKUP_SID);
}

#[tokio::test]
async fn primary_hanging_fails_over_after_its_timeout_and_answers_inside_the_deadline() {
    let app = spawn_app().await;
    app.primary.set_faults(Faults::always(Fault::Hang));

    let started = Instant::now();
    let (_, answer) =
        app.hook_json(&okta_request("evt-hang", "+14155550100", "482915", "SMS")).await;
    let elapsed = started.elapsed();

    let value = action(&answer);
    assert_eq!(value["status"], "SUCCESSFUL");
    assert_eq!(value["provider"], "twilio-backup");
    assert_eq!(metadata(value, "outcome"), "delivered");
    assert!(elapsed < Duration::from_millis(2500), "answered after {elapsed:?}");
    let reported: u64 = metadata(value, "duration_ms").parse().unwrap();
    assert!(reported >= 400, "the primary's 400 ms timeout ran first: {reported}");
    assert_eq!(app.backup.received().len(), 1);
    assert!(
        app.metrics()
            .await
            .contains("switchboard_possible_duplicates_total{provider=\"twilio-primary\"} 1")
    );
}

#[tokio::test]
async fn okta_is_answered_by_the_deadline_and_delivery_goes_on_in_the_background() {
    // The primary's own timeout (1.5 s) is longer than the deadline (600 ms): Okta is answered
    // at the deadline, and the backup gets the code once the primary's attempt has timed out.
    let app = spawn_app_with(AppOptions {
        deadline_ms: 600,
        primary_timeout_ms: 1_500,
        ..AppOptions::default()
    })
    .await;
    app.primary.set_faults(Faults::always(Fault::Hang));

    let (status, answer) =
        app.hook_json(&okta_request("evt-deadline", "+14155550100", "482915", "SMS")).await;

    assert_eq!(status, 200);
    let value = action(&answer);
    assert_eq!(
        value["status"], "SUCCESSFUL",
        "always_success answers SUCCESSFUL while still sending"
    );
    // Answered while the primary's 1.5 s attempt was still running: before the backup was tried.
    assert_eq!(metadata(value, "outcome"), "pending");
    assert!(
        app.backup.received().is_empty(),
        "the primary's attempt was still running at the answer"
    );
    let reported: u64 = metadata(value, "duration_ms").parse().unwrap();
    assert!(
        reported < 1_500,
        "answered at the 600 ms deadline, not after the attempt: {reported} ms"
    );

    within(10, app.backup.wait_for_sends(1)).await;
    within(10, app.logs.wait_for("delivery finished after answering")).await;
    let logs = app.logs.text();
    let finished = logs.lines().find(|l| l.contains("delivery finished after answering")).unwrap();
    assert!(finished.contains("\"outcome\":\"delivered\""), "{finished}");
    assert!(
        finished.contains("twilio-primary:timeout:")
            && finished.contains("twilio-backup:accepted:"),
        "{finished}"
    );
}

#[tokio::test]
async fn truthful_reporting_never_sends_after_the_answer() {
    let app = spawn_app_with(AppOptions {
        report: "truthful",
        deadline_ms: 600,
        primary_timeout_ms: 1_500,
        ..AppOptions::default()
    })
    .await;
    app.primary.set_faults(Faults::always(Fault::Hang));

    let (_, answer) =
        app.hook_json(&okta_request("evt-truthful", "+14155550100", "482915", "SMS")).await;

    let value = action(&answer);
    assert_eq!(value["status"], "FAILED");
    assert_eq!(metadata(value, "outcome"), "undelivered_deadline_reached");
    // Okta may now send through its own providers: a background send would be a duplicate.
    within(5, app.logs.wait_for("\"message\":\"hook request\"")).await;
    assert!(app.backup.received().is_empty());
}

#[tokio::test]
async fn a_reset_connection_fails_over() {
    let app = spawn_app().await;
    app.primary.set_faults(Faults::always(Fault::Reset));

    let (_, answer) =
        app.hook_json(&okta_request("evt-reset", "+14155550100", "482915", "SMS")).await;

    assert_eq!(action(&answer)["provider"], "twilio-backup");
    assert_eq!(app.backup.received().len(), 1);
}

#[tokio::test]
async fn a_rate_limited_primary_is_rested_for_retry_after() {
    let app = spawn_app().await;
    app.primary.set_faults(Faults::always(Fault::RateLimit { retry_after_s: 60 }));

    for index in 0..3 {
        let (_, answer) = app
            .hook_json(&okta_request(&format!("evt-429-{index}"), "+14155550100", "482915", "SMS"))
            .await;
        assert_eq!(action(&answer)["provider"], "twilio-backup");
    }
    assert_eq!(app.primary.received().len(), 1, "after the 429, the primary rests for Retry-After");
    assert_eq!(app.backup.received().len(), 3);
}

#[tokio::test]
async fn consecutive_failures_eject_the_primary() {
    let app = spawn_app_with(AppOptions { consecutive_failures: 3, ..AppOptions::default() }).await;
    app.primary.set_faults(Faults::always(Fault::Status { status: 500, code: Some(20500) }));

    for index in 0..6 {
        let (_, answer) = app
            .hook_json(&okta_request(
                &format!("evt-eject-{index}"),
                &format!("+141555501{index:02}"),
                "482915",
                "SMS",
            ))
            .await;
        assert_eq!(action(&answer)["provider"], "twilio-backup");
    }
    assert_eq!(app.primary.received().len(), 3, "ejected after three failures in a row");
    assert_eq!(app.backup.received().len(), 6);
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(
            "switchboard_provider_health{provider=\"twilio-primary\",state=\"ejected\"} 1"
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn an_invalid_number_does_not_fail_over() {
    let app = spawn_app().await;
    // Twilio's magic test number for "invalid To".
    let (_, answer) =
        app.hook_json(&okta_request("evt-invalid", "+15005550001", "482915", "SMS")).await;

    assert_eq!(metadata(action(&answer), "outcome"), "rejected_invalid_number");
    assert_eq!(app.primary.received().len(), 1);
    assert!(app.backup.received().is_empty(), "every provider would refuse it: no failover");
}

#[tokio::test]
async fn all_providers_down_answers_by_report_policy() {
    for (report, expected, outcome) in [
        ("always_success", "SUCCESSFUL", "retrying"),
        ("truthful", "FAILED", "undelivered_all_failed"),
    ] {
        let app = spawn_app_with(AppOptions { report, ..AppOptions::default() }).await;
        let down = Faults::always(Fault::Status { status: 503, code: Some(20503) });
        app.primary.set_faults(down.clone());
        app.backup.set_faults(down);

        let (status, answer) =
            app.hook_json(&okta_request("evt-down", "+14155550100", "482915", "SMS")).await;

        assert_eq!(status, 200);
        let value = action(&answer);
        assert_eq!(value["status"], expected, "report = {report}");
        assert_eq!(value["provider"], "switchboard", "no provider took the message");
        assert_eq!(metadata(value, "outcome"), outcome, "report = {report}");
        assert_eq!(metadata(value, "attempts"), "2");
    }
}

#[tokio::test]
async fn background_passes_deliver_once_a_provider_recovers() {
    let app = spawn_app_with(AppOptions { retry_backoff_ms: 200, ..AppOptions::default() }).await;
    let down = Faults::always(Fault::Status { status: 503, code: Some(20503) });
    app.primary.set_faults(down.clone());
    app.backup.set_faults(down);

    let (_, answer) =
        app.hook_json(&okta_request("evt-recover", "+14155550100", "482915", "SMS")).await;
    assert_eq!(
        metadata(action(&answer), "outcome"),
        "retrying",
        "answered as soon as the first pass failed"
    );

    // Repair the backup; the next pass (200 ms later) delivers through it.
    app.backup.set_faults(Faults::none());
    within(10, app.logs.wait_for("delivery finished after answering")).await;
    let logs = app.logs.text();
    let finished = logs.lines().find(|l| l.contains("delivery finished after answering")).unwrap();
    assert!(finished.contains("\"outcome\":\"delivered\""), "{finished}");
    let accepted: Vec<_> = app.backup.received();
    assert_eq!(accepted.len(), 2, "one failed send in the first pass, one delivered in the second");
    assert!(app.metrics().await.contains(
        "switchboard_deliveries_total{outcome=\"delivered\",reason=\"-\",channel=\"sms\"} 1"
    ));
}

#[tokio::test]
async fn background_sends_to_dead_providers_are_bounded_by_ejection_and_early_trials() {
    let app = spawn_app_with(AppOptions {
        retry_backoff_ms: 100,
        consecutive_failures: 3,
        ..AppOptions::default()
    })
    .await;
    let down = Faults::always(Fault::Status { status: 503, code: Some(20503) });
    app.primary.set_faults(down.clone());
    app.backup.set_faults(down);

    // A code that lives 6 s: definite refusals do not use up `max_attempts`, so the ejections
    // stop the passes, and then the delivery waits for a provider until the code expires,
    // with one early trial per provider a second.
    let mut request = okta_request("evt-bounded", "+14155550100", "482915", "SMS");
    let expires = time::OffsetDateTime::now_utc() + time::Duration::seconds(6);
    request["data"]["messageProfile"]["otpExpires"] =
        expires.format(&time::format_description::well_known::Rfc3339).unwrap().into();
    app.hook_json(&request).await;
    within(15, app.logs.wait_for("delivery finished after answering")).await;

    let (primary, backup) = app.sends();
    assert!(primary.len() >= 3 && backup.len() >= 3, "consecutive_failures sends each");
    let early_trials = primary.len() + backup.len() - 6;
    assert!(early_trials <= 2 * (6 + 1), "{early_trials} early trials in 6 s");
    let logs = app.logs.text();
    let finished = logs.lines().find(|l| l.contains("delivery finished after answering")).unwrap();
    assert!(finished.contains("\"outcome\":\"undelivered_expired\""), "{finished}");
    assert!(finished.contains(":ejected"), "the last exclusions say why: {finished}");
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(
            "switchboard_deliveries_total{outcome=\"undelivered\",reason=\"expired\",channel=\"sms\"} 1"
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn unconfirmed_sends_are_capped_by_max_attempts() {
    let app = spawn_app_with(AppOptions {
        retry_backoff_ms: 100,
        max_attempts: 3,
        consecutive_failures: 50,
        ..AppOptions::default()
    })
    .await;
    // Both providers take the request and never answer: every send may have been accepted.
    app.primary.set_faults(Faults::always(Fault::Hang));
    app.backup.set_faults(Faults::always(Fault::Hang));

    app.hook_json(&okta_request("evt-capped", "+14155550100", "482915", "SMS")).await;
    within(20, app.logs.wait_for("delivery finished after answering")).await;

    let (primary, backup) = app.sends();
    assert_eq!(primary.len() + backup.len(), 3, "max_attempts unconfirmed sends, then it stops");
    assert_eq!(primary.len(), 2, "the possible duplicate went back to the first provider last");
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(
            "switchboard_deliveries_total{outcome=\"undelivered\",reason=\"attempts_exhausted\",channel=\"sms\"} 1"
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_hedge_starts_the_next_provider_when_the_first_is_slow() {
    let app = spawn_app_with(AppOptions {
        primary_timeout_ms: 2_000,
        route: "strategy = \"hedge\"\nhedge_delay_ms = 150",
        ..AppOptions::default()
    })
    .await;
    app.primary
        .set_faults(Faults::none().with_latency(Duration::from_millis(1_500), Duration::ZERO));

    let (_, answer) =
        app.hook_json(&okta_request("evt-hedge", "+14155550100", "482915", "SMS")).await;

    let value = action(&answer);
    assert_eq!(value["provider"], "twilio-backup", "the hedge answered first");
    assert_eq!(metadata(value, "outcome"), "delivered");
    // The slow primary had the request too: hedging trades a possible duplicate for latency.
    assert_eq!(app.primary.received().len(), 1);
    assert_eq!(app.backup.received().len(), 1);
    assert_eq!(metadata(value, "attempts"), "1", "the abandoned primary attempt has no outcome");
}

#[tokio::test]
async fn a_hedge_is_not_needed_when_the_first_answers_in_time() {
    let app = spawn_app_with(AppOptions {
        route: "strategy = \"hedge\"\nhedge_delay_ms = 500",
        ..AppOptions::default()
    })
    .await;

    let (_, answer) =
        app.hook_json(&okta_request("evt-nohedge", "+14155550100", "482915", "SMS")).await;

    assert_eq!(action(&answer)["provider"], "twilio-primary");
    assert!(app.backup.received().is_empty(), "no second send when the first answered");
}

#[tokio::test]
async fn a_race_sends_to_both_at_once_and_keeps_the_first_acceptance() {
    let app = spawn_app_with(AppOptions {
        route: "strategy = \"race\"\nrace_width = 2",
        ..AppOptions::default()
    })
    .await;
    app.primary.set_faults(Faults::none().with_latency(Duration::from_millis(300), Duration::ZERO));

    let (_, answer) =
        app.hook_json(&okta_request("evt-race", "+14155550100", "482915", "SMS")).await;

    assert_eq!(action(&answer)["provider"], "twilio-backup", "the faster one wins");
    within(5, app.primary.wait_for_sends(1)).await;
    assert_eq!(app.backup.received().len(), 1);
}
