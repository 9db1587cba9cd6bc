//! The guard's live counters: one GCRA bucket per key per limit, from `governor`, on tokio's
//! clock ([`TokioClock`]), so paused tokio time refills them as it fires every other timer.
//!
//! The rules ([`Guard`](super::Guard), part of the reloadable configuration) say which limits
//! apply with which [`LimitQuota`]; this store, owned by the server, keeps the counters. A reload
//! hands it the new quotas ([`GuardLimits::configure`]): a limit whose quota is unchanged keeps
//! its counters (a reload must not hand a pumping campaign a fresh allowance), a changed one
//! starts afresh (counting under the old quota would mean something else), a removed one is
//! dropped. Methods take keys and return plain values; no bucket leaves the store.
//!
//! In Redis mode the counters that count are the fleet's (`fleet/limits.rs`, one GCRA script
//! per request for all its limits, through [`Counters`]); this store then only keeps the fallback the fleet uses while
//! Redis is unavailable: buckets at this replica's share of each quota ([`GuardLimits::take_share`],
//! quota ÷ live replicas, Envoy's local-limit pattern), so N replicas cut off from Redis together
//! still allow about one quota, not N.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{PoisonError, RwLock};
use std::time::Duration;

use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use switchboard_core::{Channel, Country};

use super::Rule;
use crate::clock::TokioClock;

/// What a limit counts by. Numbers, prefixes and users are keyed hashes, never clear text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum LimitKey {
    Digest([u8; 32]),
    Ip(IpAddr),
    Country(Country),
}

/// One limit as configured: `burst` requests per `window`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LimitQuota {
    burst: NonZeroU32,
    window: Duration,
    /// What else gives the keys their meaning (the prefix limit's hidden digits; 0 otherwise):
    /// with another value the same key counts something else.
    scope: u8,
}

impl LimitQuota {
    /// `None` when the window is too short to refill one request per `window / burst`.
    pub(crate) fn new(burst: NonZeroU32, window: Duration, scope: u8) -> Option<LimitQuota> {
        let quota = LimitQuota { burst, window, scope };
        quota.governor().map(|_| quota)
    }

    /// The burst: how many requests a full bucket allows at once.
    pub(crate) fn burst(self) -> NonZeroU32 {
        self.burst
    }

    /// How long one request takes to refill (window / burst): GCRA's emission interval.
    pub(crate) fn interval(self) -> Duration {
        self.window / self.burst.get()
    }

    /// What tells two quotas' counters apart (`3-3600000-0`: burst, window in ms, scope), so
    /// replicas that briefly disagree on a limit during a rolling reload count it apart, and a
    /// changed quota starts afresh in the fleet as it does here.
    pub(crate) fn label(self) -> String {
        format!("{}-{}-{}", self.burst, self.window.as_millis(), self.scope)
    }

    /// One replica's share of this quota among `replicas`: the burst divided (rounded down, at
    /// least one) over the same window, so the shares together never allow more than the quota.
    #[must_use]
    pub(crate) fn share(self, replicas: u32) -> LimitQuota {
        let burst = (self.burst.get() / replicas.max(1)).max(1);
        LimitQuota { burst: NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN), ..self }
    }

    /// N per window as a GCRA bucket: a burst of N, refilling one every window / N.
    fn governor(self) -> Option<Quota> {
        Some(Quota::with_period(self.window / self.burst.get())?.allow_burst(self.burst))
    }
}

/// What taking one request from a limit came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Take {
    Allowed,
    /// Allowed, with at most a fifth of the burst left.
    NearLimit,
    /// Over the limit: nothing was taken.
    Over,
}

type Limiter =
    RateLimiter<LimitKey, DefaultKeyedStateStore<LimitKey>, TokioClock, StateInformationMiddleware>;

struct Live {
    quota: LimitQuota,
    limiter: Limiter,
}

impl Live {
    fn new(quota: LimitQuota) -> Live {
        // Validated when the quota was made.
        let governor = quota.governor().unwrap_or_else(|| Quota::per_hour(quota.burst));
        let limiter: Limiter =
            RateLimiter::new(governor, DefaultKeyedStateStore::default(), TokioClock);
        Live { quota, limiter }
    }
}

impl Take {
    /// What a take that left `remaining` of `burst` came to.
    pub(crate) fn taken(remaining: u32, burst: NonZeroU32) -> Take {
        if remaining.saturating_mul(5) <= burst.get() { Take::NearLimit } else { Take::Allowed }
    }
}

/// One velocity limit a request counts against: the rule, what it counts by, and its quota.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limit {
    pub(crate) rule: Rule,
    pub(crate) key: LimitKey,
    pub(crate) quota: LimitQuota,
}

/// Where a guard check takes its requests from: this replica's counters ([`GuardLimits`]) or
/// the fleet's (Redis, falling back to this replica's share).
pub(crate) trait Counters {
    /// Takes one request from each of `limits` on `channel`, in order; with `stop_when_over`
    /// (enforce mode) the takes end at the first limit that is over (later limits keep their
    /// tokens), so the answer may be shorter than `limits`.
    fn take_all(
        &self,
        channel: Channel,
        limits: &[Limit],
        stop_when_over: bool,
    ) -> impl Future<Output = Vec<Take>> + Send;
}

/// Takes from `limits` in order through `take`, stopping after the first over when asked.
pub(crate) fn take_each(
    limits: &[Limit],
    stop_when_over: bool,
    mut take: impl FnMut(&Limit) -> Take,
) -> Vec<Take> {
    let mut takes = Vec::with_capacity(limits.len());
    for limit in limits {
        let taken = take(limit);
        takes.push(taken);
        if stop_when_over && taken == Take::Over {
            break;
        }
    }
    takes
}

/// The guard's counters, per channel and rule. The maps are read-locked per check (the buckets
/// themselves are concurrent) and write-locked only by a reload (or, for the fallback shares,
/// when the number of replicas changes).
#[derive(Default)]
pub(crate) struct GuardLimits {
    limits: RwLock<HashMap<(Channel, Rule), Live>>,
    /// Redis mode only: this replica's share of each limit, used while Redis is unavailable.
    /// Each bucket is at the share of the replicas counted when it was made; a count that changes
    /// the share makes a new (full) bucket.
    shares: RwLock<HashMap<(Channel, Rule), Live>>,
}

impl std::fmt::Debug for GuardLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardLimits").finish_non_exhaustive()
    }
}

impl GuardLimits {
    /// Counters for these limits, all fresh.
    pub(crate) fn new(quotas: impl IntoIterator<Item = (Channel, Rule, LimitQuota)>) -> Self {
        let limits = GuardLimits::default();
        limits.configure(quotas);
        limits
    }

    /// Applies the limits of a new configuration, keeping the counters of every limit whose
    /// quota did not change.
    pub(crate) fn configure(&self, quotas: impl IntoIterator<Item = (Channel, Rule, LimitQuota)>) {
        let mut limits = self.limits.write().unwrap_or_else(PoisonError::into_inner);
        let mut next = HashMap::new();
        for (channel, rule, quota) in quotas {
            let live = match limits.remove(&(channel, rule)) {
                Some(live) if live.quota == quota => live,
                _ => Live::new(quota),
            };
            next.insert((channel, rule), live);
        }
        *limits = next;
        // A share's bucket is remade on its next use when its quota changed; removed limits go.
        let mut shares = self.shares.write().unwrap_or_else(PoisonError::into_inner);
        shares.retain(|key, _| limits.contains_key(key));
    }

    /// Takes one request for `key` from the `rule` limit on `channel`. A limit this store does
    /// not have (a request that read the configuration just before a reload removed it) allows.
    pub(crate) fn take(&self, channel: Channel, rule: Rule, key: &LimitKey) -> Take {
        let limits = self.limits.read().unwrap_or_else(PoisonError::into_inner);
        let Some(live) = limits.get(&(channel, rule)) else { return Take::Allowed };
        match live.limiter.check_key(key) {
            Ok(snapshot) => Take::taken(snapshot.remaining_burst_capacity(), live.quota.burst),
            Err(_) => Take::Over,
        }
    }

    /// Takes one request from this replica's share (quota ÷ `replicas`) of the `rule` limit:
    /// the fallback while the fleet's counters in Redis are unavailable.
    pub(crate) fn take_share(
        &self,
        channel: Channel,
        rule: Rule,
        key: &LimitKey,
        quota: LimitQuota,
        replicas: u32,
    ) -> Take {
        let share = quota.share(replicas);
        let check = |live: &Live| match live.limiter.check_key(key) {
            Ok(snapshot) => Take::taken(snapshot.remaining_burst_capacity(), share.burst),
            Err(_) => Take::Over,
        };
        {
            let shares = self.shares.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(live) = shares.get(&(channel, rule)).filter(|live| live.quota == share) {
                return check(live);
            }
        }
        let mut shares = self.shares.write().unwrap_or_else(PoisonError::into_inner);
        let live = shares
            .entry((channel, rule))
            .and_modify(|live| {
                if live.quota != share {
                    *live = Live::new(share);
                }
            })
            .or_insert_with(|| Live::new(share));
        check(live)
    }

    /// Forgets keys whose buckets are full again, so memory follows recent traffic.
    pub(crate) fn prune(&self) {
        for map in [&self.limits, &self.shares] {
            let limits = map.read().unwrap_or_else(PoisonError::into_inner);
            for live in limits.values() {
                live.limiter.retain_recent();
            }
        }
    }
}

impl Counters for GuardLimits {
    /// This replica's own counters (memory mode), configured with the limits' quotas.
    async fn take_all(
        &self,
        channel: Channel,
        limits: &[Limit],
        stop_when_over: bool,
    ) -> Vec<Take> {
        take_each(limits, stop_when_over, |limit| self.take(channel, limit.rule, &limit.key))
    }
}
