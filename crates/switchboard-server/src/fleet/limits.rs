//! The guard's velocity limits, shared by the fleet: one GCRA bucket per key per limit in Redis,
//! each take one script that reads Redis's own clock (`TIME`), so every replica counts against
//! the same bucket by the same clock and two replicas cannot both take a bucket's last request.
//!
//! The script is governor's GCRA (the algorithm the local counters use), so a limit means the
//! same in both modes: a quota of N per window is a burst of N that refills one request every
//! window ÷ N. The bucket is its theoretical arrival time (µs, Redis's clock) under one key,
//! which expires when the bucket would be full again: an idle key costs nothing.
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
use crate::guard::{Counters, LimitKey, LimitQuota, Rule, Take};
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
    async fn take(&self, channel: Channel, rule: Rule, key: &LimitKey, quota: LimitQuota) -> Take {
        let interval_us = u64::try_from(quota.interval().as_micros()).unwrap_or(u64::MAX).max(1);
        let mut invocation = GCRA.key(self.bucket(channel, rule, key, quota));
        invocation.arg(interval_us).arg(quota.burst().get());
        match self.redis.query::<(u32, u32)>("guard", Path::Hook, &invocation).await {
            Ok((1, remaining)) => Take::allowed(remaining, quota.burst()),
            Ok(_) => Take::Over,
            Err(why) => {
                self.redis.fell_back("guard", why);
                let replicas = self.shared.fleet.replicas();
                self.shared.guard_limits.take_share(channel, rule, key, quota, replicas)
            }
        }
    }
}

/// GCRA with Redis's clock. `ARGV[1]`: the emission interval (µs), `ARGV[2]`: the burst.
/// Returns `{1, remaining}` when the request was taken, `{0, 0}` (nothing taken) when over.
/// As governor: allowed while the new arrival time is at most burst × interval ahead of now.
static GCRA: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local interval = tonumber(ARGV[1])
local tolerance = interval * tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local next = tat + interval
if next - now > tolerance then
  return {0, 0}
end
redis.call('SET', KEYS[1], string.format('%.0f', next), 'PX', math.ceil((next - now) / 1000))
return {1, math.floor((tolerance - (next - now)) / interval)}
",
    )
});
