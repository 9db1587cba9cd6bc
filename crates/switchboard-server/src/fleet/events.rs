//! Okta's events across the fleet. The event hook's delivery (or the System Log page) lands on
//! one replica, but the send an event is about is held in the conversion store of the replica
//! that made it. So:
//!
//! - each event is claimed once fleet-wide (`SET {p}events:seen:<digest of uuid> NX PX 3h`,
//!   one pipeline per batch): Okta's retry of a delivery on another replica, or the System Log
//!   seeing what the hook delivered, is a duplicate everywhere;
//! - the replica that claimed an event matches it against its own store and forwards it on the
//!   bus (topic [`TOPIC`]) in its read form only: the keyed hash of (user, channel), the
//!   `uuid`, when Okta published it and what it says; every other replica matches it against
//!   its own store. Nothing of Okta's event body (names, logins, addresses) goes through Redis;
//! - the System Log poller runs on one replica at a time: it holds a lease
//!   (`{p}events:poller`, [`hold_lease`]) renewed before each request, and the others stand by.
//!
//! When Redis is slow or down each replica takes in what reaches it, locally only (counted in
//! `switchboard_state_fallbacks_total{store="events"}`): events about another replica's sends
//! are unmatched, and every replica polls the System Log (for its own sends) until Redis is
//! back. A forwarded batch lost on the bus (counted in
//! `switchboard_state_bus_messages_lost_total{topic="events"}`) is not sent again: its sends
//! settle as never entered on their replicas, as they would had Okta's event never come.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Path, Redis, Unavailable};

/// The store's name in keys and metrics.
const STORE: &str = "events";
/// The bus topic for forwarded events.
pub(crate) const TOPIC: &str = "events";

/// An event in the form replicas exchange.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Sighting {
    /// Hex of the keyed hash of (Okta user id, channel).
    pub(crate) user: String,
    /// Okta's event id.
    pub(crate) uuid: String,
    /// When Okta published it, Unix milliseconds.
    pub(crate) published_ms: i64,
    /// `entered` or `wrong_code`.
    pub(crate) report: String,
    /// `sms` or `voice`.
    pub(crate) channel: String,
}

/// The bus message: one batch.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Forwarded {
    pub(crate) events: Vec<Sighting>,
}

/// Claims each of `uuids` fleet-wide: `true` for those seen here first.
pub(crate) async fn claim(
    redis: &Redis,
    uuids: &[&str],
    ttl: Duration,
) -> Result<Vec<bool>, Unavailable> {
    if uuids.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipeline = redis::pipe();
    for uuid in uuids {
        let digest = super::short_digest(uuid);
        pipeline
            .cmd("SET")
            .arg(redis.key(STORE, &["seen", &digest]))
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(ttl.as_millis() as u64);
    }
    let answers: Vec<Option<String>> = redis.query(STORE, Path::Background, &pipeline).await?;
    Ok(answers.into_iter().map(|answer| answer.is_some()).collect())
}

/// Forwards events this replica claimed to every other replica.
pub(crate) fn forward(redis: &Arc<Redis>, events: Vec<Sighting>) {
    if events.is_empty() {
        return;
    }
    let body = serde_json::to_value(Forwarded { events }).unwrap_or_default();
    redis.publish(TOPIC, body);
}

/// Whether this replica holds (or has just taken) the System Log poller's lease for `lease`.
/// `Err` when Redis cannot say: the caller polls anyway (see the module docs).
pub(crate) async fn hold_lease(redis: &Redis, lease: Duration) -> Result<bool, Unavailable> {
    let mut invocation = LEASE.key(redis.key(STORE, &["poller"]));
    invocation.arg(redis.replica()).arg(lease.as_millis() as u64);
    let held: i64 = redis.query(STORE, Path::Background, &invocation).await?;
    Ok(held == 1)
}

/// Gives the lease up (shutdown), so another replica takes over at once.
pub(crate) async fn release_lease(redis: &Redis) {
    let mut invocation = RELEASE.key(redis.key(STORE, &["poller"]));
    invocation.arg(redis.replica());
    if redis.query::<i64>(STORE, Path::Background, &invocation).await.is_err() {
        tracing::debug!("system log poller lease not released; it expires by itself");
    }
}

/// Takes the lease if free, renews it if ours: 1 when held by `ARGV[1]` afterwards.
static LEASE: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r"
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
  return 1
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', tonumber(ARGV[2]))
  return 1
end
return 0
",
    )
});

/// Deletes the lease if ours.
static RELEASE: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
",
    )
});
