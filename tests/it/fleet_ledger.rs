//! The ledger across replicas (real `redis-server`): Okta's retry on another replica never sends
//! a second code, concurrently or after the answer; a reused `eventId` is refused wherever it
//! lands; a resend on another replica prefers another provider; and when Redis hangs or dies
//! every request is still answered in time, and deduplication comes back by itself.

use std::time::{Duration, Instant};

use switchboard_server::okta::OktaRequest;
use switchboard_sim::faults::Faults;

use crate::fleet::wait_for_metric;
use crate::helpers::{
    AppOptions, SECRET, TestApp, TestFleet, action, metadata, okta_request, spawn_fleet, within,
};

/// Sends in both emulators' journals (shared by every replica).
fn sends(app: &TestApp) -> usize {
    let (primary, backup) = app.sends();
    primary.len() + backup.len()
}

/// POSTs `body` to `app` and returns the status and the exact body text.
async fn hook_text(app: &TestApp, body: &serde_json::Value) -> (u16, String) {
    let response = app.hook(body).await;
    (response.status().as_u16(), response.text().await.unwrap())
}

/// Both replicas see each other and Redis is up (the bus is subscribed by then too).
async fn wait_until_ready(fleet: &TestFleet) {
    within(10, async {
        for app in &fleet.apps {
            wait_for_metric(app, |line| line == "switchboard_state_replicas 2").await;
            wait_for_metric(app, |line| line == "switchboard_state_backend_up 1").await;
        }
    })
    .await;
}

/// Polls Redis until a key matching `pattern` exists (a background write landed).
async fn wait_for_key(fleet: &TestFleet, pattern: &str) {
    within(10, async {
        while !fleet.redis.command(&["KEYS", pattern]).contains("ledger:") {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn a_retry_on_the_other_replica_while_the_first_is_sending_joins_it() {
    let fleet =
        spawn_fleet(2, || AppOptions { primary_timeout_ms: 2000, ..AppOptions::default() }).await;
    wait_until_ready(&fleet).await;
    let [first, second] = &fleet.apps[..] else { unreachable!() };
    // The primary takes a second to accept: the retry arrives while the first is sending.
    first.primary.set_faults(Faults::none().with_latency(Duration::from_secs(1), Duration::ZERO));
    let request = okta_request("evt-fleet-concurrent", "+14155550100", "482915", "SMS");

    let original = hook_text(first, &request);
    let retry = async {
        within(10, async {
            while first.primary.received().is_empty() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        hook_text(second, &request).await
    };
    let (original, retry) = tokio::join!(original, retry);

    assert_eq!((original.0, retry.0), (200, 200));
    assert_eq!(original.1, retry.1, "the retry replays the first answer verbatim");
    let answer: serde_json::Value = serde_json::from_str(&original.1).unwrap();
    assert_eq!(metadata(action(&answer), "outcome"), "delivered");
    assert_eq!(sends(first), 1, "one send for two requests on two replicas");
    let metrics = second.metrics().await;
    assert!(
        metrics.contains("switchboard_ledger_repeats_elsewhere_total{answer=\"replayed\"} 1"),
        "{metrics}"
    );
    // The first replica knew a repeat was waiting and sent it the answer over the bus.
    let bus = r#"switchboard_state_calls_total{store="bus",result="ok"}"#;
    within(10, wait_for_metric(first, |line| line.starts_with(bus))).await;
}

#[tokio::test]
async fn a_retry_whose_first_answer_is_not_in_by_its_deadline_answers_pending_and_sends_nothing() {
    // The second replica answers Okta sooner than the first can: its deadline comes first.
    let replica = std::sync::atomic::AtomicUsize::new(0);
    let fleet =
        spawn_fleet(2, || match replica.fetch_add(1, std::sync::atomic::Ordering::Relaxed) {
            0 => {
                AppOptions { deadline_ms: 2900, primary_timeout_ms: 2500, ..AppOptions::default() }
            }
            _ => AppOptions { deadline_ms: 1000, ..AppOptions::default() },
        })
        .await;
    wait_until_ready(&fleet).await;
    let [first, second] = &fleet.apps[..] else { unreachable!() };
    first.primary.set_faults(Faults::none().with_latency(Duration::from_secs(2), Duration::ZERO));
    let request = okta_request("evt-fleet-late", "+14155550100", "482915", "SMS");

    let original = first.hook_json(&request);
    let retry = async {
        within(10, async {
            while first.primary.received().is_empty() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        let started = Instant::now();
        let answer = second.hook_json(&request).await;
        (answer, started.elapsed())
    };
    let (original, ((status, retry), took)) = tokio::join!(original, retry);

    assert_eq!(status, 200);
    assert!(took < Duration::from_millis(1500), "answered by its own deadline: {took:?}");
    assert_eq!(action(&retry)["status"], "SUCCESSFUL");
    assert_eq!(metadata(action(&retry), "outcome"), "pending");
    assert_eq!(metadata(action(&original.1), "outcome"), "delivered");
    assert_eq!(sends(first), 1, "the retry sent nothing of its own");
    let metrics = second.metrics().await;
    assert!(
        metrics.contains("switchboard_ledger_repeats_elsewhere_total{answer=\"pending\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_retry_on_the_other_replica_after_the_answer_gets_the_same_answer() {
    let fleet = spawn_fleet(2, AppOptions::default).await;
    wait_until_ready(&fleet).await;
    let [first, second] = &fleet.apps[..] else { unreachable!() };
    let request = okta_request("evt-fleet-after", "+14155550100", "482915", "SMS");

    let original = hook_text(first, &request).await;
    // The answer is written to Redis in the background, after Okta's answer.
    within(10, async {
        loop {
            let keys = fleet.redis.command(&["KEYS", "*ledger:event:*"]);
            let key = keys.lines().find(|line| line.starts_with("switchboard:"));
            if key.is_some_and(|key| {
                fleet.redis.command(&["HEXISTS", key, "answer"]).starts_with(":1")
            }) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let retry = hook_text(second, &request).await;

    assert_eq!(original.0, 200);
    assert_eq!(original.1, retry.1, "the same body");
    assert_eq!(sends(first), 1);
    // Nothing Okta sent is in Redis: no phone number, no code.
    let keys = fleet.redis.command(&["KEYS", "*"]);
    for key in keys.lines().filter(|line| line.starts_with("switchboard:")) {
        let fields = fleet.redis.command(&["HGETALL", key]);
        for secret in ["4155550100", "482915", "Your code"] {
            assert!(!fields.contains(secret) && !key.contains(secret), "{key}: {fields}");
        }
    }
}

#[tokio::test]
async fn a_reused_event_id_on_the_other_replica_is_refused() {
    let fleet = spawn_fleet(2, AppOptions::default).await;
    wait_until_ready(&fleet).await;
    let [first, second] = &fleet.apps[..] else { unreachable!() };
    let (status, _) =
        hook_text(first, &okta_request("evt-fleet-reuse", "+14155550100", "482915", "SMS")).await;
    assert_eq!(status, 200);

    let reused = okta_request("evt-fleet-reuse", "+14155550100", "111111", "SMS");
    let response = second.hook(&reused).await;
    eprintln!(
        "METRICS {}",
        second
            .metrics()
            .await
            .lines()
            .filter(|l| l.contains("state_"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    eprintln!("KEYS {}", fleet.redis.command(&["KEYS", "*"]));
    assert_eq!(response.status(), 409);
    let answer: serde_json::Value = response.json().await.unwrap();
    assert_eq!(answer["error"]["errorCauses"][0]["location"], "eventId");
    // Refused again on a second try, and the right content still replays there.
    assert_eq!(second.hook(&reused).await.status(), 409);
    let retry = okta_request("evt-fleet-reuse", "+14155550100", "482915", "SMS");
    let (status, body) = hook_text(second, &retry).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(sends(first), 1);
}

#[tokio::test]
async fn a_resend_on_the_other_replica_prefers_another_provider() {
    let fleet = spawn_fleet(2, AppOptions::default).await;
    wait_until_ready(&fleet).await;
    let [first, second] = &fleet.apps[..] else { unreachable!() };
    let (_, answer) =
        first.hook_json(&okta_request("evt-fleet-first", "+14155550100", "482915", "SMS")).await;
    assert_eq!(action(&answer)["provider"], "twilio-primary");
    // The send is recorded in Redis in the background.
    wait_for_key(&fleet, "*ledger:phone:*").await;

    let (_, resend) =
        second.hook_json(&okta_request("evt-fleet-resend", "+14155550100", "730461", "SMS")).await;
    assert_eq!(action(&resend)["provider"], "twilio-backup", "the first code may not have arrived");
    // Superseded once fleet-wide: the resend counted against the primary, on the second replica.
    within(
        10,
        wait_for_metric(second, |line| {
            line.starts_with("switchboard_conversions_total")
                && line.contains("twilio-primary")
                && line.contains("resent")
        }),
    )
    .await;
    let (_, other) =
        second.hook_json(&okta_request("evt-fleet-other", "+14155550142", "730461", "SMS")).await;
    assert_eq!(action(&other)["provider"], "twilio-primary", "other numbers are unaffected");
}

/// A code with `life` left, for `phone`, as Okta sends it.
fn short_lived(event_id: &str, phone: &str, code: &str, life: Duration) -> serde_json::Value {
    OktaRequest::sms(phone, code)
        .event_id(event_id)
        .template(format!("(HOOK)Your code is {code}"))
        .expires_in(life)
        .user_id("00uyxxSknGtK8022w0g3")
        .ip_address("203.0.113.9")
        .to_json()
}

#[tokio::test]
async fn a_code_resent_on_the_other_replica_is_not_counted_as_arrived_where_it_was_sent() {
    let fleet = spawn_fleet(2, AppOptions::default).await;
    wait_until_ready(&fleet).await;
    let [first, second] = &fleet.apps[..] else { unreachable!() };
    let life = Duration::from_secs(4);
    let (_, answer) =
        first.hook_json(&short_lived("evt-judge-first", "+14155550100", "482915", life)).await;
    assert_eq!(action(&answer)["provider"], "twilio-primary");
    wait_for_key(&fleet, "*ledger:phone:*").await;
    let (_, resend) =
        second.hook_json(&short_lived("evt-judge-resend", "+14155550100", "730461", life)).await;
    assert_eq!(action(&resend)["provider"], "twilio-backup");

    // The first code's life ends on the first replica with no resend *there*: the shared flag
    // says it was resent, so it is not counted as arrived.
    within(
        20,
        wait_for_metric(first, |line| {
            line == r#"switchboard_ledger_unresent_judged_total{verdict="resent"} 1"#
        }),
    )
    .await;
    // The resend's own code ends unsuperseded: counted as arrived, on the replica that sent it.
    within(
        20,
        wait_for_metric(second, |line| {
            line.starts_with("switchboard_conversions_total")
                && line.contains("twilio-backup")
                && line.contains("not_resent")
        }),
    )
    .await;
    let metrics = first.metrics().await;
    assert!(
        !metrics.lines().any(|line| line.contains("not_resent") && line.contains("twilio-primary")),
        "{metrics}"
    );
}

#[tokio::test]
async fn redis_hanging_mid_load_never_delays_an_answer_past_the_deadline() {
    // One user asks for many codes here: the guard's velocity limits must not refuse them.
    let guard = "[guard.sms]\nper_prefix = \"1000/1m\"\nper_user = \"1000/1m\"\n";
    let fleet = spawn_fleet(2, || AppOptions { extra: guard, ..AppOptions::default() }).await;
    wait_until_ready(&fleet).await;
    let started = Instant::now();
    let mut requests = tokio::task::JoinSet::new();
    for index in 0..40_u64 {
        // Every fifth request is Okta's retry of the previous one, on the other replica.
        let event = if index % 5 == 4 { index - 1 } else { index };
        let app = &fleet.apps[(index % 2) as usize];
        let request = okta_request(
            &format!("evt-load-{event}"),
            &format!("+1415555{:04}", 100 + event),
            "482915",
            "SMS",
        );
        let (client, url) = (app.client.clone(), app.hook_url.clone());
        let at = started + Duration::from_millis(100 * index);
        requests.spawn(async move {
            tokio::time::sleep_until(at.into()).await;
            let sent = Instant::now();
            let response =
                client.post(url).header("Authorization", SECRET).json(&request).send().await;
            let status = response.map(|response| response.status().as_u16()).unwrap_or(0);
            (index, status, sent.elapsed())
        });
    }
    // Redis hangs from 1.5 s to 3 s into the load.
    tokio::time::sleep_until((started + Duration::from_millis(1500)).into()).await;
    fleet.redis.pause();
    tokio::time::sleep_until((started + Duration::from_millis(3000)).into()).await;
    fleet.redis.resume();
    while let Some(result) = requests.join_next().await {
        let (index, status, took) = result.unwrap();
        assert_eq!(status, 200, "request {index}");
        assert!(took < Duration::from_secs(3), "request {index} took {took:?}");
    }
    assert!(!fleet.logs().text().contains("panicked"));
    let [first, second] = &fleet.apps[..] else { unreachable!() };
    assert!(sends(first) >= 32, "every one of the 32 events was sent");
    within(10, async {
        for app in [first, second] {
            wait_for_metric(app, |line| line == "switchboard_state_backend_up 1").await;
        }
    })
    .await;
    // Deduplication across replicas is back.
    let before = sends(first);
    let request = okta_request("evt-after-pause", "+14155550999", "482915", "SMS");
    let original = hook_text(first, &request).await;
    let retry = hook_text(second, &request).await;
    assert_eq!(original.1, retry.1);
    assert_eq!(sends(first), before + 1, "one send for the retried event");
}

#[tokio::test]
async fn redis_down_falls_back_to_the_local_ledger_and_recovers_by_itself() {
    let mut fleet = spawn_fleet(2, AppOptions::default).await;
    wait_until_ready(&fleet).await;
    fleet.redis.kill();
    // Both replicas notice (their sync loops' calls fail and the breakers open).
    within(10, async {
        for app in &fleet.apps {
            wait_for_metric(app, |line| line == "switchboard_state_backend_up 0").await;
        }
    })
    .await;
    {
        let [first, second] = &fleet.apps[..] else { unreachable!() };
        let request = okta_request("evt-redis-down", "+14155550100", "482915", "SMS");
        let started = Instant::now();
        let (status, body) = hook_text(first, &request).await;
        assert_eq!(status, 200, "{body}");
        assert!(started.elapsed() < Duration::from_secs(3));
        // The same replica still deduplicates on its own ledger.
        assert_eq!(hook_text(first, &request).await.1, body);
        assert_eq!(sends(first), 1);
        within(
            10,
            wait_for_metric(first, |line| {
                line.starts_with("switchboard_state_fallbacks_total{store=\"ledger\"")
            }),
        )
        .await;
        // Another replica admits it locally: a rare duplicate beats a missing code.
        assert_eq!(hook_text(second, &request).await.0, 200);
    }
    fleet.redis.restart();
    let [first, second] = &fleet.apps[..] else { unreachable!() };
    within(15, async {
        for app in [first, second] {
            wait_for_metric(app, |line| line == "switchboard_state_backend_up 1").await;
        }
    })
    .await;
    let before = sends(first);
    let request = okta_request("evt-redis-back", "+14155550142", "482915", "SMS");
    let original = hook_text(first, &request).await;
    let retry = hook_text(second, &request).await;
    assert_eq!(original.1, retry.1);
    assert_eq!(sends(first), before + 1, "deduplicated across replicas again");
}
