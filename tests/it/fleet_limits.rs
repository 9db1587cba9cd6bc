//! The guard's velocity limits, its daily spend cap and a provider's throughput cap, held by a
//! fleet of replicas sharing one real `redis-server`; what they fall back to when Redis dies;
//! and that nothing Redis holds names a phone number.

use std::time::{Duration, Instant};

use crate::fleet::wait_for_metric;
use crate::helpers::{AppOptions, TestApp, TestFleet, action, okta_request, spawn_fleet, within};

/// Okta's answer's status for one code to `phone` through `app`.
async fn status(app: &TestApp, event_id: &str, phone: &str) -> String {
    let (_, answer) = app.hook_json(&okta_request(event_id, phone, "482915", "SMS")).await;
    action(&answer)["status"].as_str().unwrap().to_owned()
}

/// The metric's value on `app`, 0 when it has no such line yet.
async fn metric(app: &TestApp, prefix: &str) -> f64 {
    let metrics = app.metrics().await;
    metrics
        .lines()
        .find(|line| line.starts_with(prefix))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
        .unwrap_or(0.0)
}

/// Waits until every replica knows there are `count` of them and has run a whole sync round
/// since (the spend sync comes last in a round, after membership and the throughput shares).
async fn wait_for_fleet(fleet: &TestFleet, count: usize) {
    let gauge = format!("switchboard_state_replicas {count}");
    within(15, async {
        for app in &fleet.apps {
            wait_for_metric(app, |line| line == gauge).await;
        }
        for app in &fleet.apps {
            wait_for_another_spend_sync(app).await;
        }
    })
    .await;
}

/// Waits for `app`'s next successful spend sync.
async fn wait_for_another_spend_sync(app: &TestApp) {
    let line = r#"switchboard_state_calls_total{store="spend",result="ok"}"#;
    let before = metric(app, line).await;
    while metric(app, line).await <= before {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn enforce(extra: &'static str) -> impl Fn() -> AppOptions {
    move || AppOptions { extra, ..AppOptions::default() }
}

#[tokio::test]
async fn a_per_number_limit_holds_across_replicas() {
    let fleet = spawn_fleet(2, enforce("[guard.sms]\nper_number = \"3/1h\"")).await;
    let [first, second] = &fleet.apps[..] else { unreachable!() };
    wait_for_fleet(&fleet, 2).await;
    let phone = "+14155550142";
    // Three codes, alternating replicas: each replica alone would allow three more.
    for (index, app) in [first, second, first].into_iter().enumerate() {
        assert_eq!(status(app, &format!("evt-pn-{index}"), phone).await, "SUCCESSFUL");
    }
    for (index, app) in [second, first].into_iter().enumerate() {
        let (_, answer) = app
            .hook_json(&okta_request(&format!("evt-pn-over-{index}"), phone, "482915", "SMS"))
            .await;
        let answer = action(&answer);
        assert_eq!(answer["status"], "FAILED", "the fourth code, on either replica: {answer}");
        assert_eq!(answer["transactionMetadata"], "refused=guard; rule=per_number");
    }
    let (primary, backup) = first.sends();
    assert_eq!(primary.len() + backup.len(), 3, "blocked codes reach no provider");
    // Counted as before: the third code took the bucket's last request (a near miss), and each
    // replica counts the block it made.
    let near_miss = r#"switchboard_guard_near_misses_total{rule="per_number",channel="sms"} 1"#;
    assert!(first.metrics().await.contains(near_miss));
    let blocked =
        r#"switchboard_guard_blocked_total{rule="per_number",channel="sms",mode="enforce"} 1"#;
    for app in [first, second] {
        assert!(app.metrics().await.contains(blocked));
    }
    // Another number is unaffected, and nothing fell back.
    assert_eq!(status(second, "evt-pn-other", "+14155550143").await, "SUCCESSFUL");
    for app in [first, second] {
        assert_eq!(metric(app, r#"switchboard_state_fallbacks_total{store="guard""#).await, 0.0);
    }
    assert_no_phone_in_redis(&fleet, &["14155550142", "14155550143", "4155550142"]);
}

#[tokio::test]
async fn a_daily_spend_cap_holds_across_replicas() {
    let fleet = spawn_fleet(
        2,
        enforce(
            "[prices.twilio-primary]\ndefault = { sms = 1.0, voice_minute = 1.0 }\n[guard.spend]\ndaily_cap = 3.0",
        ),
    )
    .await;
    let [first, second] = &fleet.apps[..] else { unreachable!() };
    wait_for_fleet(&fleet, 2).await;
    for (index, app) in [first, second, first].into_iter().enumerate() {
        let phone = format!("+1415555031{index}");
        assert_eq!(status(app, &format!("evt-spend-{index}"), &phone).await, "SUCCESSFUL");
    }
    // Each replica has written what it spent and read the other's back.
    within(15, async {
        for _ in 0..3 {
            for app in [first, second] {
                wait_for_another_spend_sync(app).await;
            }
        }
    })
    .await;
    // Three of 3.0 spent by the fleet: one replica alone spent at most two.
    for (index, app) in [second, first].into_iter().enumerate() {
        let phone = format!("+1415555032{index}");
        let (_, answer) = app
            .hook_json(&okta_request(&format!("evt-spend-over-{index}"), &phone, "482915", "SMS"))
            .await;
        let answer = action(&answer);
        assert_eq!(answer["status"], "FAILED", "{answer}");
        assert_eq!(answer["transactionMetadata"], "refused=guard; rule=spend_cap");
    }
    assert_eq!(first.primary.received().len(), 3);
    assert_no_phone_in_redis(&fleet, &["14155550310", "14155550311", "14155550312"]);
}

/// Twenty US area codes, so no two of the burst's numbers share a prefix.
const AREA_CODES: [u16; 20] = [
    212, 213, 214, 215, 216, 217, 218, 219, 224, 225, 228, 229, 231, 234, 239, 240, 248, 251, 252,
    253,
];

#[tokio::test]
async fn a_providers_throughput_cap_is_shared_by_the_replicas() {
    // Monitor mode: the guard's per-user limit would otherwise stop twenty codes for one user.
    let fleet = spawn_fleet(
        2,
        enforce("[guard]\nmode = \"monitor\"\n[providers.twilio-primary.senders.US]\nsms = \"+15005550006\"\nmax_per_second = 5"),
    )
    .await;
    let [first, second] = &fleet.apps[..] else { unreachable!() };
    wait_for_fleet(&fleet, 2).await;
    let started = Instant::now();
    let requests = (0..20).map(|index| {
        let app = if index % 2 == 0 { first } else { second };
        let phone = format!("+1{}55501{index:02}", AREA_CODES[index]);
        async move { status(app, &format!("evt-tp-{index}"), &phone).await }
    });
    let statuses = within(30, futures::future::join_all(requests)).await;
    let elapsed = started.elapsed().as_secs_f64();
    assert!(statuses.iter().all(|s| s == "SUCCESSFUL"), "{statuses:?}");
    let (primary, backup) = (first.primary.received().len(), first.backup.received().len());
    // What the provider grants: a burst of five, then five a second. The replicas' shares (a
    // burst of two each, 2.5 a second each) stay inside it however long the burst took; two
    // replicas with a whole cap each would put ten on the primary at once.
    let granted = 5 + (5.0 * elapsed).floor() as usize;
    assert!(
        primary <= granted,
        "{primary} sends on the primary in {elapsed:.2}s (granted {granted})"
    );
    assert!(primary >= 2, "the primary took its shares: {primary}");
    assert_eq!(primary + backup, 20, "the rest went to the backup: {backup}");
    // Monitor mode takes from every shared limit and blocks nothing: the one user's ten an
    // hour let ten through, and the fleet counted the other ten as what it would have blocked.
    let per_user =
        r#"switchboard_guard_blocked_total{rule="per_user",channel="sms",mode="monitor"}"#;
    let would_block = metric(first, per_user).await + metric(second, per_user).await;
    assert_eq!(would_block, 10.0);
    for app in [first, second] {
        let skipped = metric(app, "switchboard_provider_at_capacity_total").await;
        assert!(skipped >= 1.0, "each replica skipped the capped primary at least once");
    }
}

#[tokio::test]
async fn with_redis_down_each_replica_allows_its_share_and_answers_in_time() {
    let mut fleet = spawn_fleet(2, enforce("[guard.sms]\nper_number = \"4/1h\"")).await;
    wait_for_fleet(&fleet, 2).await;
    fleet.redis.kill();
    let [first, second] = &fleet.apps[..] else { unreachable!() };
    let phone = "+14155550177";
    let deadline = Duration::from_millis(2500);
    for (name, app) in [("a", first), ("b", second)] {
        let mut statuses = Vec::new();
        for index in 0..3 {
            let started = Instant::now();
            statuses.push(status(app, &format!("evt-down-{name}-{index}"), phone).await);
            let took = started.elapsed();
            assert!(took < deadline, "answered in {took:?}, past Okta's deadline");
        }
        // Four an hour across two replicas known: two each while Redis is away.
        assert_eq!(statuses, ["SUCCESSFUL", "SUCCESSFUL", "FAILED"], "replica {name}");
        let fallbacks = metric(app, r#"switchboard_state_fallbacks_total{store="guard""#).await;
        assert!(fallbacks >= 1.0, "the fallback is counted on replica {name}");
    }
    // The spend meter's sync falls back to the local meter, counted too (the alert's signal).
    within(15, async {
        for app in [first, second] {
            let fallbacks = r#"switchboard_state_fallbacks_total{store="spend""#;
            wait_for_metric(app, |line| line.starts_with(fallbacks)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn with_redis_hanging_the_guard_waits_one_short_timeout_at_most_and_answers_in_time() {
    let fleet = spawn_fleet(2, enforce("[guard.sms]\nper_number = \"4/1h\"")).await;
    let [first, second] = &fleet.apps[..] else { unreachable!() };
    wait_for_fleet(&fleet, 2).await;
    // SIGSTOP: connections stay open and nothing answers, the slow Redis that is worse than a
    // dead one.
    fleet.redis.pause();
    let phone = "+14155550199";
    let deadline = Duration::from_millis(2500);
    for (name, app) in [("a", first), ("b", second)] {
        let mut statuses = Vec::new();
        for index in 0..3 {
            let started = Instant::now();
            statuses.push(status(app, &format!("evt-hang-{name}-{index}"), phone).await);
            let took = started.elapsed();
            assert!(took < deadline, "answered in {took:?}, past Okta's deadline");
        }
        assert_eq!(statuses, ["SUCCESSFUL", "SUCCESSFUL", "FAILED"], "replica {name}");
    }
    let metrics = first.metrics().await;
    let timed_out = r#"switchboard_state_fallbacks_total{store="guard",why="timeout"}"#;
    assert!(metrics.contains(timed_out), "{metrics}");
    fleet.redis.resume();
}

#[tokio::test]
async fn a_shared_bucket_refills_on_redis_clock_and_expires_once_full() {
    let fleet = spawn_fleet(2, enforce("[guard.sms]\nper_number = \"2/2s\"")).await;
    let [first, second] = &fleet.apps[..] else { unreachable!() };
    wait_for_fleet(&fleet, 2).await;
    let phone = "+14155550188";
    assert_eq!(status(first, "evt-refill-0", phone).await, "SUCCESSFUL");
    assert_eq!(status(second, "evt-refill-1", phone).await, "SUCCESSFUL");
    assert_eq!(status(first, "evt-refill-2", phone).await, "FAILED");
    // The bucket's key lives until the bucket is full again: at most the window.
    let bucket = per_number_key(&fleet);
    let ttl: i64 =
        fleet.redis.command(&["PTTL", &bucket]).trim_start_matches(':').trim().parse().unwrap();
    assert!((1..=2000).contains(&ttl), "PTTL {ttl}");
    // One request refills every second (a refused take took nothing): the other replica sees it.
    within(10, async {
        let mut index = 3;
        while status(second, &format!("evt-refill-{index}"), phone).await != "SUCCESSFUL" {
            index += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    within(10, async {
        while fleet.redis.command(&["EXISTS", &bucket]).trim() != ":0" {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn redis_holds_no_phone_number_user_or_address() {
    let fleet = spawn_fleet(
        2,
        enforce("[prices.twilio-primary]\ndefault = { sms = 1.0, voice_minute = 1.0 }\n[guard.sms]\nper_number = \"3/1h\""),
    )
    .await;
    let [first, second] = &fleet.apps[..] else { unreachable!() };
    wait_for_fleet(&fleet, 2).await;
    for (index, app) in [first, second, first, second].into_iter().enumerate() {
        let phone = format!("+1415555040{index}");
        assert_eq!(status(app, &format!("evt-pii-{index}"), &phone).await, "SUCCESSFUL");
    }
    within(15, async {
        for _ in 0..2 {
            for app in [first, second] {
                wait_for_another_spend_sync(app).await;
            }
        }
    })
    .await;
    let written = redis_text(&fleet);
    assert!(written.contains("switchboard:spend:"), "the day's spending is there: {written}");
    for clear in [
        "4155550400",
        "4155550401",
        "4155550402",
        "4155550403",
        "00uyxxSknGtK8022w0g3",
        "203.0.113.9",
        "482915",
    ] {
        assert!(!written.contains(clear), "{clear} in redis:\n{written}");
    }
}

/// The key of the one per-number bucket in Redis.
fn per_number_key(fleet: &TestFleet) -> String {
    let keys = resp_lines(&fleet.redis.command(&["KEYS", "*guard:sms:per_number:*"]));
    assert_eq!(keys.len(), 1, "{keys:?}");
    keys[0].clone()
}

/// Every key and value in Redis, as text, must be free of the numbers' digits.
fn assert_no_phone_in_redis(fleet: &TestFleet, digits: &[&str]) {
    let written = redis_text(fleet);
    assert!(written.contains("guard:sms:per_number:"), "the guard's buckets are there: {written}");
    for number in digits {
        assert!(!written.contains(number), "{number} in redis:\n{written}");
    }
}

/// Every key in Redis and its value, as raw replies.
fn redis_text(fleet: &TestFleet) -> String {
    let keys = resp_lines(&fleet.redis.command(&["KEYS", "*"]));
    assert!(!keys.is_empty(), "the fleet wrote something");
    let mut written = String::new();
    for key in &keys {
        written.push_str(key);
        written.push('\n');
        let kind = fleet.redis.command(&["TYPE", key]);
        let value = match kind.trim_start_matches('+').trim() {
            "string" => fleet.redis.command(&["GET", key]),
            "hash" => fleet.redis.command(&["HGETALL", key]),
            "zset" => fleet.redis.command(&["ZRANGE", key, "0", "-1", "WITHSCORES"]),
            "set" => fleet.redis.command(&["SMEMBERS", key]),
            "list" => fleet.redis.command(&["LRANGE", key, "0", "-1"]),
            other => panic!("a {other} at {key}"),
        };
        written.push_str(&value);
    }
    written
}

/// The elements of a RESP array reply of bulk strings.
fn resp_lines(reply: &str) -> Vec<String> {
    reply
        .split("\r\n")
        .filter(|line| !line.is_empty() && !line.starts_with('*') && !line.starts_with('$'))
        .map(str::to_owned)
        .collect()
}
