//! Provider health and the operator's switch shared by replicas through a real `redis-server`:
//! an ejection, a `Retry-After` cool-down and a drain made on one replica apply to the others;
//! only one replica sends a probation trial; a drain survives restarts; and without Redis each
//! replica keeps its own health.

use std::time::Duration;

use reqwest::Method;
use switchboard_sim::faults::{Fault, Faults};

use crate::fleet::wait_for_metric;
use crate::helpers::{
    AppOptions, TestApp, action, okta_request, redis_state, spawn_app_with, spawn_fleet,
    spawn_replica, within,
};

/// The configured order (no ranking, no exploration), so every test knows where a send goes,
/// and no velocity limit on the many codes one test user sends.
fn options() -> AppOptions {
    AppOptions {
        route: "optimize = \"priority\"",
        extra: "[guard.sms]\nper_prefix = \"off\"\nper_user = \"off\"\nper_ip = \"off\"\nper_country = \"off\"",
        ..AppOptions::default()
    }
}

fn down() -> Faults {
    Faults::always(Fault::Status { status: 503, code: Some(20503) })
}

/// Sends one code through `app` to a fresh US number; returns the provider that took it.
async fn send(app: &TestApp, event_id: &str, index: usize) -> String {
    let phone = format!("+1415555{index:04}");
    let (status, answer) = app.hook_json(&okta_request(event_id, &phone, "482915", "SMS")).await;
    assert_eq!(status, 200, "{answer}");
    action(&answer)["provider"].as_str().unwrap_or_default().to_owned()
}

/// `provider`'s row in `GET /admin/providers`.
async fn provider_row(app: &TestApp, provider: &str) -> serde_json::Value {
    let listing: serde_json::Value =
        app.admin(Method::GET, "/admin/providers").send().await.unwrap().json().await.unwrap();
    let rows = listing["providers"].as_array().cloned().unwrap_or_default();
    rows.into_iter().find(|row| row["id"] == provider).expect("the provider is listed")
}

/// Polls the admin API until `provider`'s row satisfies `is_match`.
async fn wait_for_row(
    app: &TestApp,
    provider: &str,
    is_match: impl Fn(&serde_json::Value) -> bool,
) {
    loop {
        if is_match(&provider_row(app, provider).await) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A counter's value in `app`'s `/metrics` (0 when absent).
async fn counter(app: &TestApp, series: &str) -> u64 {
    let metrics = app.metrics().await;
    let line = metrics.lines().find(|line| line.starts_with(series));
    line.and_then(|line| line.rsplit(' ').next()?.parse().ok()).unwrap_or(0)
}

fn health_state(row: &serde_json::Value) -> &str {
    row["health"]["state"].as_str().unwrap_or_default()
}

async fn set_state(app: &TestApp, provider: &str, state: &str) -> (u16, serde_json::Value) {
    let response = app
        .admin(Method::PUT, &format!("/admin/providers/{provider}/state"))
        .json(&serde_json::json!({ "state": state }))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn a_drain_set_on_one_replica_applies_to_all_and_survives_restarts() {
    let fleet = spawn_fleet(2, options).await;
    let [first, second] = &fleet.apps[..] else { unreachable!() };
    assert_eq!(send(second, "evt-drain-before", 1).await, "twilio-primary");

    let (status, body) = set_state(first, "twilio-primary", "draining").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["scope"], "fleet", "{body}");
    // The other replica has it within about a second (the bus; the sync loop would repair a
    // lost message), and sends around the drained provider.
    within(5, wait_for_row(second, "twilio-primary", |row| row["operator_state"] == "draining"))
        .await;
    let primary_before = first.primary.received().len();
    assert_eq!(send(second, "evt-drain-second", 2).await, "twilio-backup");
    assert_eq!(first.primary.received().len(), primary_before, "nothing reached the primary");
    let written = fleet.redis.command(&["HGETALL", "switchboard:switches"]);
    assert!(written.contains("twilio-primary") && written.contains("draining"), "{written}");

    // Every replica restarts: the new ones read the drain from Redis before serving.
    let emulators = (first.primary.clone(), first.backup.clone());
    let crate::helpers::TestFleet { apps, redis } = fleet;
    drop(apps);
    let restarted = [
        spawn_replica(&redis, emulators.clone(), options()).await,
        spawn_replica(&redis, emulators.clone(), options()).await,
    ];
    for (index, replica) in restarted.iter().enumerate() {
        assert_eq!(provider_row(replica, "twilio-primary").await["operator_state"], "draining");
        assert_eq!(
            send(replica, &format!("evt-drain-restarted-{index}"), 10 + index).await,
            "twilio-backup"
        );
    }
    assert_eq!(emulators.0.received().len(), primary_before, "the drain held across restarts");

    // Enabling it again reaches every replica too.
    let (status, _) = set_state(&restarted[1], "twilio-primary", "enabled").await;
    assert_eq!(status, 200);
    within(
        5,
        wait_for_row(&restarted[0], "twilio-primary", |row| row["operator_state"] == "enabled"),
    )
    .await;
    assert_eq!(send(&restarted[0], "evt-drain-enabled", 20).await, "twilio-primary");
}

#[tokio::test]
async fn a_provider_ejected_on_one_replica_is_skipped_by_the_others() {
    let fleet = spawn_fleet(2, || AppOptions { consecutive_failures: 2, ..options() }).await;
    let [first, second] = &fleet.apps[..] else { unreachable!() };
    first.primary.set_faults(down());
    for index in 0..2 {
        assert_eq!(send(first, &format!("evt-eject-{index}"), index).await, "twilio-backup");
    }
    assert_eq!(health_state(&provider_row(first, "twilio-primary").await), "ejected");

    // The second replica never saw a failure, and shows the ejection as its own.
    within(5, wait_for_row(second, "twilio-primary", |row| health_state(row) == "ejected")).await;
    let row = provider_row(second, "twilio-primary").await;
    let remaining = row["health"]["remaining_ms"].as_u64().unwrap();
    assert!((20_000..=30_000).contains(&remaining), "the 30 s ejection, on this clock: {row}");
    let explained = second.explain_text("%2B14155550177").await;
    assert!(explained.contains("excluded     twilio-primary: ejected"), "{explained}");

    let primary_before = first.primary.received().len();
    assert_eq!(send(second, "evt-eject-second", 5).await, "twilio-backup");
    assert_eq!(
        first.primary.received().len(),
        primary_before,
        "no request from the second replica"
    );
    wait_for_metric(second, |line| {
        line.starts_with("switchboard_state_health_total{change=\"ejected\"")
    })
    .await;

    // What Redis holds: the key's ejection with an expiry, and no phone number anywhere.
    let ejections = fleet.redis.command(&["ZRANGE", "switchboard:health:{ejections}", "0", "-1"]);
    assert!(ejections.contains("eject/twilio-primary/US/sms"), "{ejections}");
    let ttl = fleet.redis.command(&["PTTL", "switchboard:health:{ejections}"]);
    let ttl: i64 = ttl.trim().trim_start_matches(':').parse().unwrap();
    assert!((1..=30_000).contains(&ttl), "the set expires with its last ejection: {ttl}");
    let keys = fleet.redis.command(&["KEYS", "*"]);
    assert!(!keys.contains("4155"), "{keys}");
}

#[tokio::test]
async fn a_retry_after_on_one_replica_is_honoured_by_the_others() {
    let fleet = spawn_fleet(2, options).await;
    let [first, second] = &fleet.apps[..] else { unreachable!() };
    first.primary.set_faults(Faults::always(Fault::RateLimit { retry_after_s: 60 }));
    assert_eq!(send(first, "evt-429-first", 1).await, "twilio-backup");

    within(5, wait_for_row(second, "twilio-primary", |row| health_state(row) == "rate_limited"))
        .await;
    let row = provider_row(second, "twilio-primary").await;
    let remaining = row["health"]["remaining_ms"].as_u64().unwrap();
    assert!((50_000..=60_000).contains(&remaining), "Retry-After, on this clock: {row}");
    let primary_before = first.primary.received().len();
    assert_eq!(send(second, "evt-429-second", 2).await, "twilio-backup");
    assert_eq!(first.primary.received().len(), primary_before, "the provider asked for quiet");
}

#[tokio::test]
async fn only_one_replica_sends_the_probation_trial() {
    let options =
        || AppOptions { consecutive_failures: 2, health: "base_ejection_ms = 1500", ..options() };
    let fleet = spawn_fleet(2, options).await;
    let [first, second] = &fleet.apps[..] else { unreachable!() };
    first.primary.set_faults(down());
    for index in 0..2 {
        send(first, &format!("evt-trial-eject-{index}"), index).await;
    }
    within(5, wait_for_row(second, "twilio-primary", |row| health_state(row) == "ejected")).await;
    let primary_before = first.primary.received().len();

    // The ejection ends on both; with traffic on both, one trial goes out (and fails: the
    // provider is still down), and the key is out again, for longer, on both.
    within(10, wait_for_row(first, "twilio-primary", |row| health_state(row) != "ejected")).await;
    for round in 0..6 {
        let (event_a, event_b) = (format!("evt-trial-a-{round}"), format!("evt-trial-b-{round}"));
        let (a, b) =
            tokio::join!(send(first, &event_a, 100 + round), send(second, &event_b, 200 + round),);
        assert_eq!((a.as_str(), b.as_str()), ("twilio-backup", "twilio-backup"));
    }
    assert_eq!(
        first.primary.received().len(),
        primary_before + 1,
        "one trial, not one per replica"
    );
    let mut leases_won = 0;
    for app in [first, second] {
        let series = "switchboard_state_health_total{change=\"trial_won\",via=\"redis\"}";
        leases_won += counter(app, series).await;
    }
    assert_eq!(leases_won, 1, "the trial went out under the fleet's lease");
    for app in [first, second] {
        within(
            5,
            wait_for_row(app, "twilio-primary", |row| {
                health_state(row) == "ejected" && row["health"]["times_ejected"] == 2
            }),
        )
        .await;
    }
}

#[tokio::test]
async fn a_recovery_on_one_replica_brings_the_provider_back_on_all() {
    let options =
        || AppOptions { consecutive_failures: 2, health: "base_ejection_ms = 1000", ..options() };
    let fleet = spawn_fleet(2, options).await;
    let [first, second] = &fleet.apps[..] else { unreachable!() };
    first.primary.set_faults(down());
    for index in 0..2 {
        send(first, &format!("evt-recover-eject-{index}"), index).await;
    }
    within(5, wait_for_row(second, "twilio-primary", |row| health_state(row) == "ejected")).await;
    first.primary.set_faults(Faults::none());

    // Only the first replica has traffic: it takes the trial's lease and the trial succeeds.
    within(10, async {
        for index in 0.. {
            if send(first, &format!("evt-recover-{index}"), 100 + index).await == "twilio-primary" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    within(5, wait_for_row(second, "twilio-primary", |row| health_state(row) == "healthy")).await;
    assert_eq!(send(second, "evt-recover-second", 300).await, "twilio-primary");
    let ejections = fleet.redis.command(&["ZRANGE", "switchboard:health:{ejections}", "0", "-1"]);
    assert!(!ejections.contains("eject/twilio-primary"), "the recovery removed it: {ejections}");
    // The trial's lease (5 s) is given back at once, for the key's next probation.
    within(3, async {
        while fleet.redis.command(&["KEYS", "switchboard:health:trial:*"]).contains("trial") {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn without_redis_each_replica_keeps_its_own_health() {
    let mut fleet = spawn_fleet(2, || AppOptions { consecutive_failures: 2, ..options() }).await;
    fleet.redis.kill();
    let [first, second] = &fleet.apps[..] else { unreachable!() };
    first.primary.set_faults(down());
    for index in 0..2 {
        assert_eq!(send(first, &format!("evt-local-a-{index}"), index).await, "twilio-backup");
    }
    assert_eq!(health_state(&provider_row(first, "twilio-primary").await), "ejected");
    within(
        10,
        wait_for_metric(first, |line| {
            line.starts_with("switchboard_state_fallbacks_total{store=\"health\"")
        }),
    )
    .await;

    // The second replica learns nothing, so it finds out for itself.
    assert_eq!(health_state(&provider_row(second, "twilio-primary").await), "healthy");
    let primary_before = first.primary.received().len();
    for index in 0..3 {
        assert_eq!(
            send(second, &format!("evt-local-b-{index}"), 10 + index).await,
            "twilio-backup"
        );
    }
    assert_eq!(first.primary.received().len(), primary_before + 2, "its own two failures");
    assert_eq!(health_state(&provider_row(second, "twilio-primary").await), "ejected");

    // A switch Redis cannot take changes nothing, and says so.
    let (status, body) = set_state(first, "twilio-backup", "draining").await;
    assert_eq!(status, 503, "{body}");
    assert!(body["error"].as_str().unwrap().contains("not changed on any replica"), "{body}");
    assert_eq!(provider_row(first, "twilio-backup").await["operator_state"], "enabled");
}

/// Redis's clock, in milliseconds.
fn redis_now_ms(redis: &switchboard_sim::redis::RedisServer) -> i64 {
    let reply = redis.command(&["TIME"]);
    let numbers: Vec<i64> = reply.lines().filter_map(|line| line.trim().parse().ok()).collect();
    let [seconds, micros] = numbers[..] else { panic!("TIME answers two numbers: {reply}") };
    seconds * 1000 + micros / 1000
}

#[tokio::test]
async fn the_sync_loop_repairs_what_the_bus_did_not_carry() {
    let fleet = spawn_fleet(2, options).await;
    let [first, second] = &fleet.apps[..] else { unreachable!() };
    // An ejection that reached Redis and no replica's bus (a lost message): every replica
    // reads it within a sync interval or so, with its cause and count.
    let until = redis_now_ms(&fleet.redis) + 20_000;
    let member = "eject/twilio-primary/US/sms";
    let added = fleet.redis.command(&[
        "ZADD",
        "switchboard:health:{ejections}",
        &until.to_string(),
        member,
    ]);
    assert_eq!(added.trim(), ":1");
    let detailed = fleet.redis.command(&[
        "HSET",
        "switchboard:health:{ejections}:causes",
        member,
        "undelivered 3",
    ]);
    assert_eq!(detailed.trim(), ":1");
    for app in [first, second] {
        within(5, wait_for_row(app, "twilio-primary", |row| health_state(row) == "ejected")).await;
        let row = provider_row(app, "twilio-primary").await;
        assert_eq!(row["health"]["times_ejected"], 3, "{row}");
        let remaining = row["health"]["remaining_ms"].as_u64().unwrap();
        assert!((10_000..=20_000).contains(&remaining), "{row}");
    }
    let primary_before = first.primary.received().len();
    assert_eq!(send(second, "evt-repair", 1).await, "twilio-backup");
    assert_eq!(first.primary.received().len(), primary_before);

    // Its recovery, likewise: gone from Redis before its end, so a trial succeeded somewhere.
    let removed = fleet.redis.command(&["ZREM", "switchboard:health:{ejections}", member]);
    assert_eq!(removed.trim(), ":1");
    for app in [first, second] {
        within(5, wait_for_row(app, "twilio-primary", |row| health_state(row) == "healthy")).await;
    }
    assert_eq!(send(second, "evt-repaired", 2).await, "twilio-primary");
}

#[tokio::test]
async fn a_new_replica_starts_with_the_ejections_in_force() {
    let fleet = spawn_fleet(1, || AppOptions { consecutive_failures: 2, ..options() }).await;
    let first = &fleet.apps[0];
    first.primary.set_faults(down());
    for index in 0..2 {
        send(first, &format!("evt-start-{index}"), index).await;
    }
    within(5, async {
        while !fleet
            .redis
            .command(&["ZRANGE", "switchboard:health:{ejections}", "0", "-1"])
            .contains("twilio-primary")
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let emulators = (first.primary.clone(), first.backup.clone());
    let joined = spawn_replica(&fleet.redis, emulators, options()).await;
    // Read before it served its first request: no send of its own finds the provider dead.
    let primary_before = first.primary.received().len();
    assert_eq!(send(&joined, "evt-start-joined", 5).await, "twilio-backup");
    assert_eq!(first.primary.received().len(), primary_before);
    assert_eq!(health_state(&provider_row(&joined, "twilio-primary").await), "ejected");
}

#[tokio::test]
async fn a_hung_redis_never_holds_up_the_hook() {
    // Background calls wait 5 s for a hung Redis: a hook that waited on one would miss its
    // 2.5 s deadline.
    let redis = switchboard_sim::redis::RedisServer::start();
    let state = redis_state(&redis.url(), "background_timeout_ms = 5000");
    let app = spawn_app_with(AppOptions { consecutive_failures: 2, state, ..options() }).await;
    within(10, wait_for_metric(&app, |line| line == "switchboard_state_backend_up 1")).await;
    redis.pause();
    app.primary.set_faults(down());
    // Ejections to share and trial leases to ask for queue up behind calls that hang until
    // their timeout; the hook's answers wait for none of them.
    for index in 0..4 {
        let started = std::time::Instant::now();
        assert_eq!(send(&app, &format!("evt-hung-{index}"), index).await, "twilio-backup");
        assert!(started.elapsed() < Duration::from_millis(2500), "answered within the deadline");
    }
    assert_eq!(health_state(&provider_row(&app, "twilio-primary").await), "ejected");
    redis.resume();
}
