//! Provider health shared by the fleet: ejections, `Retry-After` cool-downs, recoveries and the
//! probation trial's lease.
//!
//! # What is shared, and what is not
//!
//! A decision that must hold for the account is shared: when one replica ejects a key
//! (provider, country, channel) or a provider tells it to wait, every replica skips it within
//! about a second, and only one replica sends the probation trial that may bring it back (a
//! dead provider sees one trial, not one per replica). The estimates behind ranking (windowed
//! success, Peak-EWMA latency, receipts and conversions) stay per replica: they are cheap,
//! noisy and converge by themselves, since every replica sees a fair share of the same
//! traffic, and sharing them would cost a Redis write per attempt on the hook's path.
//!
//! # How
//!
//! - One sorted set per fleet, `{prefix}health:{ejections}`, holds every ejection
//!   (`eject/<provider>/<country>/<channel>`) and cool-down (`rate/<provider>`) in force, scored
//!   by its end on Redis's clock (`TIME` in the script, so replicas' clocks never meet). A score
//!   only ever moves later: a shorter ejection written after a longer one does not cut it short
//!   (LiteLLM's #40130). The set and its companion hash `{prefix}health:{ejections}:causes`
//!   (why, and how many times) expire at their latest end, and are bounded by providers ×
//!   countries × channels. One set rather than a key per ejection: the sync loop reads it in
//!   one call instead of scanning the keyspace every second.
//! - Each change is written off the request path (the background timeout) and published on
//!   the bus as remaining milliseconds, which the receiver turns into its own `Instant`:
//!   instants do not cross processes. Every sync re-reads the set, so a lost message is
//!   repaired within a sync interval.
//! - A recovery removes the ejection it ended (matched by its end, so a newer, longer one
//!   stays) and is published; a replica that missed the message sees the ejection gone from
//!   the set at its next sync and recovers too.
//! - The trial: when a key's probation trial is due on a replica, it asks for
//!   `SET {prefix}health:trial:<key> <replica> NX PX <trial_timeout>`; the winner sends the
//!   trial at its next attempt on the key, the others hold the key out (shown as a trial in
//!   flight) until the lease ends or the winner's outcome reaches them.
//! - Early trials (deliveries waiting while every provider is excluded, see
//!   `HealthBook::claim_early_trial`) stay per replica: at most one per key a second on each,
//!   and the first success ends the ejection everywhere like any recovery.
//!
//! # When Redis is slow or down
//!
//! Each replica keeps its own health, exactly as in memory mode: its ejections are its own,
//! its trials are its own (the lease is granted locally), and every fallback is counted
//! (`switchboard_state_fallbacks_total{store="health"}`). Nothing on the hook's path waits on
//! Redis.

use std::sync::Arc;
use std::time::{Duration, Instant};

use switchboard_core::health::{EjectionCause, EjectionNotice, HealthKey};
use switchboard_core::{Channel, Country, ProviderId};
use tokio_util::sync::CancellationToken;

use super::{Path, Redis};
use crate::health::HealthChange;
use crate::state::Shared;

/// The store's name in keys and metrics.
const STORE: &str = "health";
/// The bus topic.
pub(crate) const TOPIC: &str = "health";
/// The sorted set's name part; the braces are a hash tag, so that its companion hash sits in
/// the same Redis Cluster slot and one script may touch both.
const EJECTIONS: &str = "{ejections}";
/// How far apart two readings of one end may be on this clock and still be the same end: an
/// end crosses processes as milliseconds left, and the trip's latency shifts it.
const CONVERSION_TOLERANCE: Duration = Duration::from_millis(250);

/// Adds an ejection or a cool-down with its end `ARGV[2]` ms from Redis's now, unless a later
/// end is already there; returns Redis's now and the end in force.
static WRITE: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ends = now + tonumber(ARGV[2])
local known = redis.call('ZSCORE', KEYS[1], ARGV[1])
if known and tonumber(known) >= ends then
  return {now, tonumber(known)}
end
redis.call('ZADD', KEYS[1], ends, ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], tonumber(last[2]))
redis.call('PEXPIREAT', KEYS[2], tonumber(last[2]))
return {now, ends}
",
    )
});

/// Removes an ejection if it ends no later than `ARGV[2]` (the one a trial ended).
static RECOVER: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r"
local known = redis.call('ZSCORE', KEYS[1], ARGV[1])
if known and tonumber(known) <= tonumber(ARGV[2]) then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
  return 1
end
return 0
",
    )
});

/// Drops what has ended; returns Redis's now and every entry in force with its end and detail.
static READ: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)) do
  redis.call('HDEL', KEYS[2], member)
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local live = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
local entries = {}
for i = 1, #live, 2 do
  local detail = redis.call('HGET', KEYS[2], live[i]) or ''
  table.insert(entries, {live[i], tonumber(live[i + 1]), detail})
end
return {now, entries}
",
    )
});

/// Takes the trial's lease if free; returns 1 and the lease's length, or 0 and what is left of
/// the holder's.
static TRIAL: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {1, tonumber(ARGV[2])}
end
return {0, redis.call('PTTL', KEYS[1])}
",
    )
});

/// Gives the trial's lease back if this replica holds it: the trial is over.
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

/// Starts sharing this replica's health: every change the store sends out is written to Redis
/// and published, in order, until `stopped`.
pub(crate) fn spawn(shared: &Arc<Shared>, redis: &Arc<Redis>, stopped: CancellationToken) {
    let Some(mut changes) = shared.health.share() else { return };
    let (shared, redis) = (Arc::clone(shared), Arc::clone(redis));
    tokio::spawn(async move {
        loop {
            let change = tokio::select! {
                () = stopped.cancelled() => return,
                change = changes.recv() => change,
            };
            let Some(change) = change else { return };
            send(&shared, &redis, change).await;
        }
    });
}

/// Shares one change, or answers one trial question.
async fn send(shared: &Shared, redis: &Arc<Redis>, change: HealthChange) {
    let now = tokio::time::Instant::now().into_std();
    match change {
        HealthChange::Ejected { key, notice } => {
            if notice.cause == EjectionCause::TrialFailed {
                release_trial(redis, &key).await;
            }
            let detail = format!("{} {}", notice.cause.as_str(), notice.times);
            let Some((until_ms, remaining)) =
                write(redis, &eject_member(&key), notice.until, &detail, now).await
            else {
                return;
            };
            if !shared.health.note_shared_ejection(&key, until_ms, now) {
                return;
            }
            // Redis may know a longer one (another replica's): take it here too.
            let notice = EjectionNotice { until: now + remaining, ..notice };
            shared.health.apply_ejection(&key, notice);
            redis.publish(
                TOPIC,
                serde_json::json!({
                    "eject": key_text(&key),
                    "remaining_ms": millis(remaining),
                    "until": until_ms,
                    "cause": notice.cause.as_str(),
                    "times": notice.times,
                }),
            );
        }
        HealthChange::RateLimited { provider, until } => {
            let member = format!("rate/{provider}");
            let Some((_, remaining)) = write(redis, &member, until, "", now).await else {
                return;
            };
            shared.health.apply_rate_limit(&provider, now + remaining);
            redis.publish(
                TOPIC,
                serde_json::json!({"rate_limit": provider.as_str(), "remaining_ms": millis(remaining)}),
            );
        }
        HealthChange::Recovered { key, until_ms } => {
            release_trial(redis, &key).await;
            // An ejection the fleet never had (Redis was down) removes nothing there.
            let until_ms = until_ms.unwrap_or(0);
            let mut invocation = RECOVER.key(redis.key(STORE, &[EJECTIONS]));
            invocation
                .key(redis.key(STORE, &[EJECTIONS, "causes"]))
                .arg(eject_member(&key))
                .arg(until_ms);
            if let Err(why) = redis.query::<i64>(STORE, Path::Background, &invocation).await {
                redis.fell_back(STORE, why);
                return;
            }
            redis.publish(TOPIC, serde_json::json!({"recover": key_text(&key), "until": until_ms}));
        }
        HealthChange::TrialWanted { key } => {
            let lease = shared.health.trial_timeout();
            let mut invocation = TRIAL.key(trial_key(redis, &key));
            invocation.arg(redis.replica()).arg(millis(lease));
            match redis.query::<(i64, i64)>(STORE, Path::Background, &invocation).await {
                Ok((1, _)) => {
                    shared.health.grant_trial(&key, now + lease);
                    shared.metrics.state_health("trial_won", "redis");
                }
                Ok((_, left)) => {
                    let left = Duration::from_millis(u64::try_from(left).unwrap_or(0));
                    shared.health.hold_trial(&key, now + left);
                    shared.metrics.state_health("trial_held", "redis");
                }
                Err(why) => {
                    // Decided locally, as in memory mode: one trial per replica at worst.
                    redis.fell_back(STORE, why);
                    shared.health.grant_trial(&key, now + lease);
                }
            }
        }
    }
}

/// Gives back `key`'s trial lease if this replica holds it, so that the key's next probation
/// (which may come sooner than the lease's end) need not wait for it.
async fn release_trial(redis: &Redis, key: &HealthKey) {
    let mut invocation = RELEASE.key(trial_key(redis, key));
    invocation.arg(redis.replica());
    if let Err(why) = redis.query::<i64>(STORE, Path::Background, &invocation).await {
        redis.fell_back(STORE, why);
    }
}

fn trial_key(redis: &Redis, key: &HealthKey) -> String {
    redis.key(STORE, &["trial", &key_text(key)])
}

/// Writes an entry ending at `until` (this process's clock); returns its end as the fleet has
/// it (Redis's clock, ms) and how long that is from `now`. `None` when Redis is unavailable
/// (counted) or the entry has already ended.
async fn write(
    redis: &Redis,
    member: &str,
    until: Instant,
    detail: &str,
    now: Instant,
) -> Option<(i64, Duration)> {
    let remaining = until.saturating_duration_since(now);
    if remaining.is_zero() {
        return None;
    }
    let mut invocation = WRITE.key(redis.key(STORE, &[EJECTIONS]));
    invocation
        .key(redis.key(STORE, &[EJECTIONS, "causes"]))
        .arg(member)
        .arg(millis(remaining))
        .arg(detail);
    match redis.query::<(i64, i64)>(STORE, Path::Background, &invocation).await {
        Ok((redis_now, until_ms)) => Some((until_ms, ms_between(redis_now, until_ms))),
        Err(why) => {
            redis.fell_back(STORE, why);
            None
        }
    }
}

/// One round of the sync loop: re-reads every ejection and cool-down in force, applies what this
/// replica missed, and recovers the keys whose ejection the fleet no longer has.
pub(crate) async fn sync(shared: &Shared, redis: &Redis) {
    let asked = tokio::time::Instant::now().into_std();
    let mut invocation = READ.key(redis.key(STORE, &[EJECTIONS]));
    invocation.key(redis.key(STORE, &[EJECTIONS, "causes"]));
    let (redis_now, entries) = match redis
        .query::<(i64, Vec<(String, i64, String)>)>(STORE, Path::Background, &invocation)
        .await
    {
        Ok(read) => read,
        Err(why) => {
            redis.fell_back(STORE, why);
            return;
        }
    };
    let now = tokio::time::Instant::now().into_std();
    let runtime = shared.runtime();
    let is_configured = |provider: &ProviderId| runtime.providers.contains_key(provider);
    let mut live = Vec::new();
    for (member, until_ms, detail) in entries {
        let until = now + ms_between(redis_now, until_ms);
        if let Some(provider) = member.strip_prefix("rate/").and_then(ProviderId::parse) {
            // Read back, an end this replica knows moves by the clocks' conversion error.
            let is_known = shared
                .health
                .rate_limited_until(&provider)
                .is_some_and(|known| known + CONVERSION_TOLERANCE >= until);
            if is_configured(&provider)
                && !is_known
                && shared.health.apply_rate_limit(&provider, until)
            {
                shared.metrics.state_health("rate_limited", "sync");
            }
        } else if let Some(key) = member.strip_prefix("eject/").and_then(parse_key) {
            if !is_configured(key.provider()) {
                continue;
            }
            live.push(key.clone());
            // The same end read back (this replica wrote it, or had it from the bus): applying
            // it again would only move it by the clocks' conversion error.
            if shared.health.shared_until(&key) == Some(until_ms) {
                continue;
            }
            // Read before a recovery removed it: already over.
            if !shared.health.note_shared_ejection(&key, until_ms, now) {
                continue;
            }
            let (cause, times) = parse_detail(&detail);
            if shared.health.apply_ejection(&key, EjectionNotice { until, cause, times }) {
                shared.metrics.state_health("ejected", "sync");
            }
        }
    }
    // Ejections the fleet had and no longer has before their end: a trial succeeded somewhere
    // (and its message did not reach this replica). Those that simply ended are forgotten.
    // One learned after the read was asked for may not be in what it read.
    for (key, until_ms, learned) in shared.health.shared_ejections() {
        if live.contains(&key) || learned >= asked {
            continue;
        }
        if until_ms <= redis_now {
            shared.health.forget_shared_ejection(&key);
            continue;
        }
        shared.health.end_shared_ejection(&key, Some(until_ms));
        if shared.health.apply_recovery(&key, now) {
            shared.metrics.state_health("recovered", "sync");
        }
    }
}

/// A message from another replica on the health topic.
pub(crate) fn receive(shared: &Shared, body: &serde_json::Value) {
    let now = tokio::time::Instant::now().into_std();
    let remaining = Duration::from_millis(body["remaining_ms"].as_u64().unwrap_or(0));
    let runtime = shared.runtime();
    let is_configured = |provider: &ProviderId| runtime.providers.contains_key(provider);
    if let Some(key) = body["eject"].as_str().and_then(parse_key) {
        if !is_configured(key.provider()) {
            return;
        }
        let cause = body["cause"].as_str().and_then(parse_cause);
        let notice = EjectionNotice {
            until: now + remaining,
            cause: cause.unwrap_or(EjectionCause::ConsecutiveFailures),
            times: body["times"].as_u64().and_then(|t| u32::try_from(t).ok()).unwrap_or(1),
        };
        if let Some(until_ms) = body["until"].as_i64()
            && !shared.health.note_shared_ejection(&key, until_ms, now)
        {
            return;
        }
        if shared.health.apply_ejection(&key, notice) {
            shared.metrics.state_health("ejected", "bus");
        }
    } else if let Some(provider) = body["rate_limit"].as_str().and_then(ProviderId::parse) {
        if is_configured(&provider) && shared.health.apply_rate_limit(&provider, now + remaining) {
            shared.metrics.state_health("rate_limited", "bus");
        }
    } else if let Some(key) = body["recover"].as_str().and_then(parse_key) {
        let until_ms = body["until"].as_i64().unwrap_or(0);
        // A later ejection than the one the trial ended stands.
        if shared.health.shared_until(&key).is_some_and(|known| known > until_ms) {
            return;
        }
        shared.health.end_shared_ejection(&key, Some(until_ms));
        if shared.health.apply_recovery(&key, now) {
            shared.metrics.state_health("recovered", "bus");
        }
    }
}

fn eject_member(key: &HealthKey) -> String {
    format!("eject/{}", key_text(key))
}

/// `provider/country/channel`: provider ids have no `/`.
fn key_text(key: &HealthKey) -> String {
    format!("{}/{}/{}", key.provider(), key.country().as_str(), key.channel().as_str())
}

fn parse_key(text: &str) -> Option<HealthKey> {
    let mut parts = text.split('/');
    let provider = ProviderId::parse(parts.next()?)?;
    let country = Country::parse(parts.next()?)?;
    let channel = Channel::parse(parts.next()?)?;
    parts.next().is_none().then(|| HealthKey::new(provider, country, channel))
}

/// `cause times`, as written by [`send`].
fn parse_detail(detail: &str) -> (EjectionCause, u32) {
    let mut parts = detail.split(' ');
    let cause = parts.next().and_then(parse_cause).unwrap_or(EjectionCause::ConsecutiveFailures);
    let times = parts.next().and_then(|times| times.parse().ok()).unwrap_or(1);
    (cause, times)
}

fn parse_cause(text: &str) -> Option<EjectionCause> {
    [
        EjectionCause::ConsecutiveFailures,
        EjectionCause::FailurePercentage,
        EjectionCause::Undelivered,
        EjectionCause::Unconverted,
        EjectionCause::TrialFailed,
    ]
    .into_iter()
    .find(|cause| cause.as_str() == text)
}

fn ms_between(from_ms: i64, to_ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(to_ms.saturating_sub(from_ms)).unwrap_or(0))
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_details_read_back_as_written() {
        let key = HealthKey::new(
            ProviderId::parse("twilio-primary").unwrap(),
            Country::parse("GB").unwrap(),
            Channel::Voice,
        );
        assert_eq!(parse_key(&key_text(&key)), Some(key));
        assert_eq!(parse_key("twilio/GB/voice/extra"), None);
        assert_eq!(parse_detail("trial_failed 3"), (EjectionCause::TrialFailed, 3));
        assert_eq!(parse_detail(""), (EjectionCause::ConsecutiveFailures, 1));
    }
}
