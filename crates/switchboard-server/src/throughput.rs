//! The throughput store: how many sends each provider account may take per second.
//!
//! Providers grant an account a throughput (a US 10DLC campaign's messages per second, an AWS
//! origination identity's MPS, a long code's one) and queue or refuse beyond it; a sign-in wave
//! at 9 am is exactly when that bites. With `max_per_second` set on a provider, every send
//! takes a token from its bucket (a GCRA from `governor`, a burst of one second's worth, on
//! tokio's clock so paused time refills it); a provider with none left is skipped for the next
//! candidate (`Admission::AtCapacity`) rather than fed into its queue or a storm of 429s.
//!
//! A reload hands the store the new caps ([`ThroughputLimits::configure`]): a provider whose
//! cap is unchanged keeps its bucket, so a reload cannot hand out a fresh second's worth.

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU32;
use std::sync::{PoisonError, RwLock};

use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use switchboard_core::ProviderId;

use crate::clock::{TokioClock, TokioInstant};

type Limiter = RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<TokioInstant>>;

/// One provider's cap and its bucket.
struct Bucket {
    cap: NonZeroU32,
    limiter: Limiter,
}

impl Bucket {
    fn new(cap: NonZeroU32) -> Bucket {
        Bucket { cap, limiter: RateLimiter::direct_with_clock(Quota::per_second(cap), TokioClock) }
    }
}

/// Each capped provider's bucket; providers without a cap have none.
#[derive(Default)]
pub(crate) struct ThroughputLimits {
    buckets: RwLock<HashMap<ProviderId, Bucket>>,
}

impl std::fmt::Debug for ThroughputLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThroughputLimits").field("caps", &self.caps()).finish()
    }
}

impl ThroughputLimits {
    /// Buckets for `caps`, full.
    pub(crate) fn new(caps: &BTreeMap<ProviderId, NonZeroU32>) -> ThroughputLimits {
        let limits = ThroughputLimits::default();
        limits.configure(caps);
        limits
    }

    /// The caps of a reloaded configuration: unchanged caps keep their buckets, changed ones
    /// start full, providers without a cap lose theirs.
    pub(crate) fn configure(&self, caps: &BTreeMap<ProviderId, NonZeroU32>) {
        let mut buckets = self.buckets.write().unwrap_or_else(PoisonError::into_inner);
        buckets.retain(|provider, bucket| caps.get(provider) == Some(&bucket.cap));
        for (provider, cap) in caps {
            buckets.entry(provider.clone()).or_insert_with(|| Bucket::new(*cap));
        }
    }

    /// Takes one send from `provider`'s bucket; `false` when it is at its cap (nothing taken).
    /// A provider without a cap always has room.
    pub(crate) fn take(&self, provider: &ProviderId) -> bool {
        let buckets = self.buckets.read().unwrap_or_else(PoisonError::into_inner);
        buckets.get(provider).is_none_or(|bucket| bucket.limiter.check().is_ok())
    }

    /// The configured caps, by provider.
    pub(crate) fn caps(&self) -> BTreeMap<ProviderId, NonZeroU32> {
        let buckets = self.buckets.read().unwrap_or_else(PoisonError::into_inner);
        buckets.iter().map(|(provider, bucket)| (provider.clone(), bucket.cap)).collect()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn id(name: &str) -> ProviderId {
        ProviderId::parse(name).expect("a valid id")
    }

    fn caps(cap: u32) -> BTreeMap<ProviderId, NonZeroU32> {
        [(id("capped"), NonZeroU32::new(cap).expect("not zero"))].into_iter().collect()
    }

    fn taken(limits: &ThroughputLimits, provider: &ProviderId, tries: u32) -> u32 {
        (0..tries).map(|_| u32::from(limits.take(provider))).sum()
    }

    #[tokio::test(start_paused = true)]
    async fn a_cap_allows_a_seconds_worth_then_refills_with_tokio_time() {
        let limits = ThroughputLimits::new(&caps(4));
        let capped = id("capped");
        assert_eq!(taken(&limits, &capped, 10), 4, "a burst of one second's worth");
        tokio::time::advance(Duration::from_millis(500)).await;
        assert_eq!(taken(&limits, &capped, 10), 2, "half a second refills half");
        assert_eq!(taken(&limits, &id("uncapped"), 100), 100, "no cap, no limit");
    }

    #[tokio::test(start_paused = true)]
    async fn a_reload_keeps_an_unchanged_bucket_and_refills_a_changed_one() {
        let limits = ThroughputLimits::new(&caps(2));
        let capped = id("capped");
        assert_eq!(taken(&limits, &capped, 5), 2);
        limits.configure(&caps(2));
        assert_eq!(taken(&limits, &capped, 5), 0, "the same cap keeps its empty bucket");
        limits.configure(&caps(3));
        assert_eq!(taken(&limits, &capped, 5), 3, "a new cap starts full");
        limits.configure(&BTreeMap::new());
        assert_eq!(taken(&limits, &capped, 5), 5, "a removed cap limits nothing");
        assert!(limits.caps().is_empty());
    }
}
