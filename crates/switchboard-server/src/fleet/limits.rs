//! The guard's velocity limits, shared by the fleet: one GCRA bucket per key per limit in Redis,
//! taken by a script that reads Redis's own clock (`TIME`), so every replica counts against the
//! same bucket by the same clock and two replicas cannot both take a bucket's last request.
//!
//! One script takes all of a request's limits at once (one round trip; when Redis hangs, one
//! hook-path timeout per request rather than one per limit), in the guard's order and, in
//! enforce mode, stopping at the first limit that is over. The keys of one request live in
//! different hash slots, so the script needs one Redis, not Redis Cluster (the fleet's client is
//! not a cluster client either). Each bucket is governor's GCRA (the algorithm of the local
//! counters), so a limit means the same in both modes: a quota of N per window is a burst of N
//! that refills one request every window ÷ N. A bucket is its theoretical arrival time (µs, by
//! Redis's clock) under one key, which expires when the bucket would be full again: an idle key
//! costs nothing.
//!
//! Keys are `{prefix}guard:{channel}:{rule}:{quota}:{key}`: the quota's label keeps a changed
//! quota (or replicas briefly disagreeing during a rolling reload) from reading another quota's
//! bucket, and the key is never identifying: numbers, prefixes and users arrive as keyed digests
//! (hex), an IP address is digested here with the same key, and a country is its code.
//!
//! **When Redis is slow or down** (the hook path's timeout, or the breaker open) the take falls
//! back to this replica's share of the quota (quota ÷ live replicas, [`GuardLimits::take_share`])
//! and is counted (`switchboard_state_fallbacks_total{store="guard"}`): a fleet cut off from
//! Redis still allows about one quota in total, not one per replica (Envoy's pattern). A limit
//! never fails open and never waits past the hook path's timeout.
//!
//! [`GuardLimits::take_share`]: crate::guard::GuardLimits::take_share

use std::sync::LazyLock;

use switchboard_core::Channel;

use super::{Path, Redis};
use crate::guard::{Counters, Limit, LimitKey, LimitQuota, Rule, Take, take_each};
use crate::state::Shared;

/// The fleet's counters for one check, with this replica's share as the fallback.
pub(crate) struct FleetCounters<'a> {
    pub(crate) shared: &'a Shared,
    pub(crate) redis: &'a Redis,
}

impl FleetCounters<'_> {
    /// The bucket's key: nothing in it identifies a person.
    fn bucket(&self, channel: Channel, rule: Rule, key: &LimitKey, quota: LimitQuota) -> String {
        let key = match key {
            LimitKey::Digest(digest) => hex::encode(digest),
            LimitKey::Ip(address) => {
                hex::encode(self.shared.phones.digest(address.to_string().as_bytes()))
            }
            LimitKey::Country(country) => country.to_string(),
        };
        self.redis.key("guard", &[channel.as_str(), rule.as_str(), &quota.label(), &key])
    }
}

impl Counters for FleetCounters<'_> {
    /// One script for all of a request's limits: one round trip, and when Redis hangs one
    /// timeout per request, not one per limit.
    async fn take_all(
        &self,
        channel: Channel,
        limits: &[Limit],
        stop_when_over: bool,
    ) -> Vec<Take> {
        let mut invocation = GCRA.prepare_invoke();
        invocation.arg(u8::from(stop_when_over));
        for limit in limits {
            let interval = limit.quota.interval().as_micros();
            invocation.key(self.bucket(channel, limit.rule, &limit.key, limit.quota));
            invocation.arg(u64::try_from(interval).unwrap_or(u64::MAX).max(1));
            invocation.arg(limit.quota.burst().get());
        }
        match self.redis.query::<Vec<i64>>("guard", Path::Hook, &invocation).await {
            Ok(remaining) => limits
                .iter()
                .zip(remaining)
                .map(|(limit, remaining)| match u32::try_from(remaining) {
                    Ok(remaining) => Take::taken(remaining, limit.quota.burst()),
                    Err(_) => Take::Over,
                })
                .collect(),
            Err(why) => {
                self.redis.fell_back("guard", why);
                let replicas = self.shared.fleet.replicas();
                take_each(limits, stop_when_over, |limit| {
                    let guard_limits = &self.shared.guard_limits;
                    guard_limits.take_share(channel, limit.rule, &limit.key, limit.quota, replicas)
                })
            }
        }
    }
}

/// GCRA with Redis's clock, for each key in order. `ARGV[1]`: 1 to stop after the first key
/// that is over; then per key its emission interval (µs) and its burst. Returns, per key taken,
/// the requests left, or -1 for a key that was over (nothing taken from it). As governor: a
/// take is allowed while the new arrival time is at most burst × interval ahead of now.
static GCRA: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local stop = ARGV[1] == '1'
local answers = {}
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[2 * i])
  local tolerance = interval * tonumber(ARGV[2 * i + 1])
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then tat = now end
  local next = tat + interval
  if next - now > tolerance then
    answers[i] = -1
    if stop then break end
  else
    redis.call('SET', key, string.format('%.0f', next), 'PX', math.ceil((next - now) / 1000))
    answers[i] = math.floor((tolerance - (next - now)) / interval)
  end
end
return answers
",
    )
});
