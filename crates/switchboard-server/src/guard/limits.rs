//! The guard's live counters: one GCRA bucket per key per limit, from `governor`, on tokio's
//! clock ([`TokioClock`]), so paused tokio time refills them as it fires every other timer.
//!
//! The rules ([`Guard`](super::Guard), part of the reloadable configuration) say which limits
//! apply with which [`LimitQuota`]; this store, owned by the server, keeps the counters. A reload
//! hands it the new quotas ([`GuardLimits::configure`]): a limit whose quota is unchanged keeps
//! its counters (a reload must not hand a pumping campaign a fresh allowance), a changed one
//! starts afresh (counting under the old quota would mean something else), a removed one is
//! dropped. Methods take keys and return plain values; no bucket leaves the store.

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

/// The guard's counters, per channel and rule. The map is read-locked per check (the buckets
/// themselves are concurrent) and write-locked only by a reload.
#[derive(Default)]
pub(crate) struct GuardLimits {
    limits: RwLock<HashMap<(Channel, Rule), Live>>,
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
    }

    /// Takes one request for `key` from the `rule` limit on `channel`. A limit this store does
    /// not have (a request that read the configuration just before a reload removed it) allows.
    pub(crate) fn take(&self, channel: Channel, rule: Rule, key: &LimitKey) -> Take {
        let limits = self.limits.read().unwrap_or_else(PoisonError::into_inner);
        let Some(live) = limits.get(&(channel, rule)) else { return Take::Allowed };
        match live.limiter.check_key(key) {
            Ok(snapshot) if snapshot.remaining_burst_capacity() * 5 <= live.quota.burst.get() => {
                Take::NearLimit
            }
            Ok(_) => Take::Allowed,
            Err(_) => Take::Over,
        }
    }

    /// Forgets keys whose buckets are full again, so memory follows recent traffic.
    pub(crate) fn prune(&self) {
        let limits = self.limits.read().unwrap_or_else(PoisonError::into_inner);
        for live in limits.values() {
            live.limiter.retain_recent();
        }
    }
}
