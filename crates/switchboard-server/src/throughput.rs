//! The throughput store: how many sends each provider account may take per second.
//!
//! Providers grant an account a throughput (a US 10DLC campaign's messages per second, an AWS
//! origination identity's MPS, a long code's one) and queue or refuse beyond it; a sign-in wave
//! at 9 am is exactly when that bites. With `max_per_second` set on a provider, every send
//! takes a token from its bucket (a GCRA from `governor`, a burst of one second's worth, on
//! tokio's clock so paused time refills it); a provider with none left is skipped for the next
//! candidate (`Admission::AtCapacity`) rather than fed into its queue or a storm of 429s.
//!
//! Some providers grant throughput per sender rather than (or as well as) per account: a long
//! code sends one message a second, a registered sender its campaign's MPS. A per-country sender
//! with `senders.<CC>.max_per_second` has a bucket of its own, and a send to that country takes
//! from both (the sender's first; a refusal by the account's bucket then has used the sender's
//! token: the caps err on the side of sending less).
//!
//! A reload hands the store the new caps ([`ThroughputLimits::configure`]): a bucket whose cap
//! is unchanged is kept, so a reload cannot hand out a fresh second's worth.
//!
//! **In a fleet** (Redis mode) the provider grants its throughput to the account, not to each
//! replica, so each replica keeps buckets at its share: cap ÷ live replicas
//! ([`ThroughputLimits::share`], from the membership count the sync loop renews, and once before
//! a replica serves; the burst rounded down, at least one), and the replicas together stay
//! within the cap. Chosen over a
//! Redis GCRA per take because the take sits before every send attempt, failover included:
//! a shared bucket would put a Redis round trip (and, when Redis is slow, the hook path's whole
//! timeout) in front of every send in the 3 s Okta gives, for a limit that is a courtesy to
//! the provider (beyond it the provider queues or answers 429, which fails over anyway) rather
//! than a safety property. What it costs: a replica whose share is used while another's is idle
//! skips to the next candidate sooner than one shared bucket would (the load balancer spreads
//! sign-ins about evenly, so the shares are used about evenly), and a tiny cap over many
//! replicas rounds to one send per replica per (replicas ÷ cap) seconds. When Redis is
//! unavailable the last known count stays, which is the fallback: cap ÷ the last replicas seen.

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{PoisonError, RwLock};
use std::time::Duration;

use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use switchboard_core::{Country, ProviderId};

use crate::clock::{TokioClock, TokioInstant};

type Limiter = RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<TokioInstant>>;

/// One provider's cap and its bucket, at a share of the cap.
struct Bucket {
    cap: NonZeroU32,
    /// The replicas the cap is shared by (1 alone).
    replicas: u32,
    limiter: Limiter,
}

impl Bucket {
    fn new(cap: NonZeroU32, replicas: u32) -> Bucket {
        Bucket {
            cap,
            replicas,
            limiter: RateLimiter::direct_with_clock(share(cap, replicas), TokioClock),
        }
    }
}

/// One replica's share of `cap` per second among `replicas`: cap ÷ replicas per second, a burst
/// of that many (rounded down, at least one). Alone, `Quota::per_second(cap)`.
fn share(cap: NonZeroU32, replicas: u32) -> Quota {
    let replicas = replicas.max(1);
    let period = Duration::from_secs(u64::from(replicas)) / cap.get();
    let burst = NonZeroU32::new(cap.get() / replicas).unwrap_or(NonZeroU32::MIN);
    Quota::with_period(period).unwrap_or_else(|| Quota::per_second(cap)).allow_burst(burst)
}

/// The configured throughput caps: per provider account, and per (provider, destination
/// country) for a country's own sender.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Caps {
    pub(crate) providers: BTreeMap<ProviderId, NonZeroU32>,
    pub(crate) senders: BTreeMap<(ProviderId, Country), NonZeroU32>,
}

impl Caps {
    fn by_bucket(&self) -> impl Iterator<Item = ((ProviderId, Option<Country>), NonZeroU32)> {
        let providers = self.providers.iter().map(|(id, cap)| ((id.clone(), None), *cap));
        let senders = self.senders.iter().map(|((id, c), cap)| ((id.clone(), Some(*c)), *cap));
        providers.chain(senders)
    }

    /// The cap of `provider`'s sender for `country`, if it has one of its own.
    pub(crate) fn sender(&self, provider: &ProviderId, country: Country) -> Option<NonZeroU32> {
        self.senders.get(&(provider.clone(), country)).copied()
    }
}

/// Each capped account's and sender's bucket; those without a cap have none.
#[derive(Default)]
pub(crate) struct ThroughputLimits {
    buckets: RwLock<HashMap<(ProviderId, Option<Country>), Bucket>>,
    /// How many replicas share each cap (0 and 1 both mean alone).
    replicas: AtomicU32,
}

impl std::fmt::Debug for ThroughputLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThroughputLimits").field("caps", &self.caps()).finish()
    }
}

impl ThroughputLimits {
    /// Buckets for `caps`, full.
    pub(crate) fn new(caps: &Caps) -> ThroughputLimits {
        let limits = ThroughputLimits::default();
        limits.configure(caps);
        limits
    }

    /// The caps of a reloaded configuration: unchanged caps keep their buckets, changed ones
    /// start full, accounts and senders without a cap lose theirs.
    pub(crate) fn configure(&self, caps: &Caps) {
        let wanted: HashMap<_, _> = caps.by_bucket().collect();
        let mut buckets = self.buckets.write().unwrap_or_else(PoisonError::into_inner);
        let replicas = self.replicas.load(Ordering::Relaxed).max(1);
        buckets.retain(|key, bucket| {
            wanted.get(key) == Some(&bucket.cap) && bucket.replicas == replicas
        });
        for (key, cap) in wanted {
            buckets.entry(key).or_insert_with(|| Bucket::new(cap, replicas));
        }
    }

    /// Shares every cap among `replicas` (the fleet's live count, renewed by the sync loop):
    /// when the count changes, each bucket starts afresh at its new share.
    pub(crate) fn share(&self, replicas: u32) {
        let replicas = replicas.max(1);
        if self.replicas.swap(replicas, Ordering::Relaxed).max(1) == replicas {
            return;
        }
        let mut buckets = self.buckets.write().unwrap_or_else(PoisonError::into_inner);
        for bucket in buckets.values_mut() {
            *bucket = Bucket::new(bucket.cap, replicas);
        }
    }

    /// Takes one send to `country` from `provider`'s buckets (its sender's for the country,
    /// then its account's); `false` when either is at its cap. Without caps there is always
    /// room.
    pub(crate) fn take(&self, provider: &ProviderId, country: Country) -> bool {
        let buckets = self.buckets.read().unwrap_or_else(PoisonError::into_inner);
        let has_room = |key: (ProviderId, Option<Country>)| {
            buckets.get(&key).is_none_or(|bucket| bucket.limiter.check().is_ok())
        };
        has_room((provider.clone(), Some(country))) && has_room((provider.clone(), None))
    }

    /// The configured caps.
    pub(crate) fn caps(&self) -> Caps {
        let buckets = self.buckets.read().unwrap_or_else(PoisonError::into_inner);
        let mut caps = Caps::default();
        for ((provider, country), bucket) in buckets.iter() {
            match country {
                None => caps.providers.insert(provider.clone(), bucket.cap),
                Some(country) => caps.senders.insert((provider.clone(), *country), bucket.cap),
            };
        }
        caps
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn id(name: &str) -> ProviderId {
        ProviderId::parse(name).expect("a valid id")
    }

    fn caps(cap: u32) -> Caps {
        let providers =
            [(id("capped"), NonZeroU32::new(cap).expect("not zero"))].into_iter().collect();
        Caps { providers, senders: BTreeMap::new() }
    }

    fn us() -> Country {
        Country::parse("US").unwrap()
    }

    fn taken(limits: &ThroughputLimits, provider: &ProviderId, tries: u32) -> u32 {
        (0..tries).map(|_| u32::from(limits.take(provider, us()))).sum()
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
        limits.configure(&Caps::default());
        assert_eq!(taken(&limits, &capped, 5), 5, "a removed cap limits nothing");
        assert_eq!(limits.caps(), Caps::default());
    }

    #[tokio::test(start_paused = true)]
    async fn a_fleet_shares_each_cap_among_its_replicas() {
        let limits = ThroughputLimits::new(&caps(5));
        let capped = id("capped");
        limits.share(2);
        assert_eq!(taken(&limits, &capped, 10), 2, "half of five, rounded down");
        tokio::time::advance(Duration::from_millis(400)).await;
        assert_eq!(taken(&limits, &capped, 10), 1, "refilling at 2.5 a second");
        limits.share(2);
        assert_eq!(taken(&limits, &capped, 10), 0, "the same count keeps the buckets");
        limits.configure(&caps(5));
        assert_eq!(taken(&limits, &capped, 10), 0, "and so does a reload that keeps the cap");
        limits.share(1);
        assert_eq!(taken(&limits, &capped, 10), 5, "alone again: the whole cap");
    }

    #[tokio::test(start_paused = true)]
    async fn a_countrys_sender_has_its_own_bucket_inside_the_accounts() {
        let gb = Country::parse("GB").unwrap();
        let mut caps = caps(5);
        caps.senders.insert((id("capped"), gb), NonZeroU32::new(1).unwrap());
        let limits = ThroughputLimits::new(&caps);
        let capped = id("capped");
        let to_gb = (0..3).filter(|_| limits.take(&capped, gb)).count();
        assert_eq!(to_gb, 1, "the British long code sends one a second");
        assert_eq!(taken(&limits, &capped, 10), 4, "the account has the rest of its five");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(limits.take(&capped, gb), "a second later the sender has room again");
        assert_eq!(limits.caps(), caps);
    }
}
