//! Replicas sharing state through a real `redis-server`: membership, the backend gauge, and what
//! the fleet does when Redis hangs or dies.

use std::time::Duration;

use crate::helpers::{AppOptions, TestApp, spawn_fleet};

/// Polls `/metrics` until a line satisfies `is_match` (or the test's own bound runs out).
pub(crate) async fn wait_for_metric(app: &TestApp, is_match: impl Fn(&str) -> bool) {
    loop {
        if app.metrics().await.lines().any(&is_match) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn replicas_find_each_other_and_the_gauge_follows_redis() {
    let fleet = spawn_fleet(2, AppOptions::default).await;
    let [first, second] = &fleet.apps[..] else { unreachable!() };
    crate::helpers::within(10, async {
        for app in [first, second] {
            wait_for_metric(app, |line| line == "switchboard_state_replicas 2").await;
            wait_for_metric(app, |line| line == "switchboard_state_backend_up 1").await;
        }
    })
    .await;
    let state: serde_json::Value = first
        .admin(reqwest::Method::GET, "/admin/state")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(state["backend"], "redis");
    assert_eq!(state["replicas"], 2);
    assert_eq!(state["reachable"], true);
    assert_eq!(state["url"], fleet.redis.url());
    // Redis hangs: the sync loop's calls time out, the breaker opens, the gauge says so, once.
    fleet.redis.pause();
    crate::helpers::within(
        10,
        wait_for_metric(first, |line| line == "switchboard_state_backend_up 0"),
    )
    .await;
    crate::helpers::within(10, fleet.logs().wait_for("circuit breaker open")).await;
    fleet.redis.resume();
    crate::helpers::within(
        10,
        wait_for_metric(first, |line| line == "switchboard_state_backend_up 1"),
    )
    .await;
    // Both replicas' breakers open and close: one line each per transition, however many calls
    // failed while Redis hung.
    crate::helpers::within(10, fleet.logs().wait_for_count("circuit breaker closed", 2)).await;
    let opened = fleet.logs().text().matches("circuit breaker open").count();
    assert_eq!(opened, 2, "one log line per transition and replica");
    // Readiness never depends on Redis.
    fleet.redis.pause();
    let ready = first.client.get(format!("{}/readyz", first.admin_url)).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    fleet.redis.resume();
}

/// AUTH: the password in `state.url` opens the connection and appears nowhere else: not in
/// `/admin/state`, the logs or the metrics.
#[tokio::test]
async fn a_password_protected_redis_is_used_and_its_password_never_shown() {
    let password = "fleet-redis-pa55word";
    let redis = switchboard_sim::redis::RedisServer::with_password(password);
    let app = crate::helpers::spawn_app_with(AppOptions {
        state: crate::helpers::redis_state(&redis.url(), ""),
        ..AppOptions::default()
    })
    .await;
    crate::helpers::within(
        10,
        wait_for_metric(&app, |line| line == "switchboard_state_backend_up 1"),
    )
    .await;
    let state = app.admin(reqwest::Method::GET, "/admin/state").send().await.unwrap();
    let state = state.text().await.unwrap();
    assert!(state.contains(&format!("127.0.0.1:{}", redis.port())), "{state}");
    for text in [state, app.logs.text(), app.metrics().await] {
        assert!(!text.contains(password), "the password leaked: {text}");
    }
    // The replica registered itself under the configured prefix, with a TTL (its first
    // renewal may come after other stores' first calls).
    crate::helpers::within(
        10,
        wait_for_metric(&app, |line| line == "switchboard_state_replicas 1"),
    )
    .await;
    let members = redis.command(&["ZCARD", "switchboard:replicas"]);
    assert!(members.starts_with(":1"), "{members}");
    let ttl = redis.command(&["PTTL", "switchboard:replicas"]);
    assert!(!ttl.starts_with(":-"), "every key expires: {ttl}");
}

/// `rediss://` with `tls_ca_file`: a Redis serving TLS only, its certificate signed by a private
/// CA, is reached once the CA is trusted; without it the connection is refused and the replica
/// stays on its fallbacks while still answering.
#[tokio::test]
async fn a_tls_redis_signed_by_a_private_ca_is_used_when_its_ca_is_configured() {
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(ca, rcgen::KeyPair::generate().unwrap()).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let server = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let redis = switchboard_sim::redis::RedisServer::with_tls(&server.pem(), &key.serialize_pem());
    assert!(redis.url().starts_with("rediss://"));
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();

    let trusted = crate::helpers::spawn_app_with(AppOptions {
        state: crate::helpers::redis_state(
            &redis.url(),
            &format!("tls_ca_file = \"{}\"", ca_file.display()),
        ),
        ..AppOptions::default()
    })
    .await;
    crate::helpers::within(
        10,
        wait_for_metric(&trusted, |line| line == "switchboard_state_backend_up 1"),
    )
    .await;
    drop(trusted);

    // The system's roots do not vouch for the private CA: no call succeeds, and the hook
    // still answers.
    let untrusted = crate::helpers::spawn_app_with(AppOptions {
        state: crate::helpers::redis_state(&redis.url(), ""),
        ..AppOptions::default()
    })
    .await;
    crate::helpers::within(
        10,
        wait_for_metric(&untrusted, |line| {
            line.starts_with("switchboard_state_calls_total{store=\"membership\",result=\"error\"}")
        }),
    )
    .await;
    let (status, _) = untrusted
        .hook_json(&crate::helpers::okta_request("evt-tls", "+14155550123", "123456", "SMS"))
        .await;
    assert_eq!(status, 200);
    let metrics = untrusted.metrics().await;
    assert!(metrics.lines().any(|line| line == "switchboard_state_backend_up 0"), "{metrics}");
}
