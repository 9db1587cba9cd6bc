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

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU32;
use std::sync::{PoisonError, RwLock};

use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use switchboard_core::{Country, ProviderId};

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
        buckets.retain(|key, bucket| wanted.get(key) == Some(&bucket.cap));
        for (key, cap) in wanted {
            buckets.entry(key).or_insert_with(|| Bucket::new(cap));
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
