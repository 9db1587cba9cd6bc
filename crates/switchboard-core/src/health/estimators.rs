//! The estimators a key is judged by, each a small value type that takes samples and answers
//! at an instant `now`: the time-bucketed [`Window`] (success and failure counts, a latency
//! histogram), [`PeakEwma`] accept latency, [`Fading`] rates (a key's recent rate, a
//! provider's pool) and decayed [`Tally`]s of receipts and conversions, plus the Wilson interval ranking and
//! exploration read.
//!
//! # Success rates: what ranking and exploration read
//!
//! A key's success rate comes from three sources, each answering a failure of the others (the
//! simulator's brownout, where a cheap primary slows down and times out on a third of its sends,
//! is where each was found necessary; BENCHMARKS.md has the figures):
//!
//! - the **window**: successes and failures in the last `window_ms`, in time buckets (not the
//!   last N attempts: at low traffic those can be an hour old). Alone, a minute of good history
//!   hides a brownout for many seconds, and a key whose failures aged out looks new again.
//! - the **recent rate**: about the last 20 attempts, however old, whose weight halves every
//!   window bucket (10 s by default). A brownout shows within a few answers; and what a key last
//!   showed stays its recent rate until new attempts replace it, only weighing less with time.
//! - the **provider's pool**: the same kind of fading rate over all of a provider's keys, with
//!   a half-life of the window. It is each key's prior (eight attempts' worth, topped up with a
//!   constant 90 % while the pool has less to say): a provider browning out everywhere is
//!   learnt once rather than in every country, and a key with no history of its own starts from
//!   what the provider does elsewhere instead of from a blank "probably fine". A failure in one
//!   country lowers the provider's other countries only while they have little history of their
//!   own (a regional outage still moves only its region's busy keys).
//!
//! Ranking reads the *lower* of the window's Wilson lower bound (so a handful of lucky answers
//! cannot outrank thousands of good ones) and the recent rate (so neither can a minute of good
//! history). Exploration reads the *upper* bounds of both: a key is worth a send only if it
//! might turn out better than the leader (see `plan.rs`). Ejection and probation still work on
//! the window alone; clearing a key's counts on ejection or recovery does not clear its
//! provider's pool, so a recovered key is judged on its own attempts and on what the provider
//! did recently.
//!
//! # Latency: Peak-EWMA
//!
//! Accept latency is estimated with tower's Peak-EWMA (`load/peak_ewma.rs`, after Finagle): a
//! sample above the estimate replaces it at once, a lower one is blended in with weight
//! `1 - exp(-Δt/τ)`, so a slowdown is believed immediately and a recovery only over time. A key
//! with no samples is assumed slow (`latency_prior_ms`, Zebra's pessimistic default for untrusted
//! peers), and the prior weighs like one sample, so it fades after a few answers instead of after
//! τ. Unlike tower we do not decay the estimate toward zero on read: there it pairs with a count
//! of pending requests to spread load, here latency is a quality signal, and a key nobody used
//! for a while would look fastest. Timeouts and other possibly-accepted failures are samples too
//! (a lower bound of the real latency, so they peak the estimate); a fast refusal is not, or a
//! dead provider would look quick. The same samples fill a coarse histogram per window bucket,
//! from which a learned hedge delay takes its quantile (tower's `hedge` does the same with a
//! rotating histogram).
//!

use std::time::{Duration, Instant};

use super::config::{HealthPolicy, WINDOW_BUCKETS};

/// Upper bounds (ms) of the latency histogram's buckets; one more bucket holds the rest.
pub(super) const LATENCY_BOUNDS_MS: [u32; 13] =
    [25, 50, 75, 100, 150, 200, 300, 400, 600, 800, 1200, 1600, 2400];

/// What the histogram reports for samples above its last bound.
pub(super) const LATENCY_OVERFLOW_MS: u32 = 3_200;

/// Prior of a key's success rates: `PRIOR_REQUESTS` attempts at its provider's pooled rate (see
/// the module docs), topped up with attempts at `PRIOR_SUCCESS_RATE`, slightly below a proven
/// provider, while the pool has less to say.
pub(super) const PRIOR_REQUESTS: f64 = 8.0;
pub(super) const PRIOR_SUCCESS_RATE: f64 = 0.9;

/// How many of the latest attempts the fading rates (a key's recent rate, a provider's pool)
/// stand for at most.
pub(super) const FADING_ATTEMPTS: f64 = 20.0;

/// Width of the success-rate interval, in standard deviations (about an 84 % one-sided bound).
pub(super) const CONFIDENCE_Z: f64 = 1.0;

/// One time slice of the window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Bucket {
    /// Which slice this is, counted from the key's origin, from 1; 0 means never used.
    pub(super) epoch: u64,
    pub(super) successes: u32,
    pub(super) failures: u32,
    pub(super) latency: [u32; LATENCY_BOUNDS_MS.len() + 1],
}

/// Sums over the buckets still inside the window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Totals {
    pub(super) successes: u32,
    pub(super) failures: u32,
    pub(super) latency: [u32; LATENCY_BOUNDS_MS.len() + 1],
}

impl Totals {
    pub(super) fn requests(&self) -> u32 {
        self.successes.saturating_add(self.failures)
    }

    pub(super) fn latency_samples(&self) -> u32 {
        self.latency.iter().fold(0u32, |sum, count| sum.saturating_add(*count))
    }

    /// The upper bound of the histogram bucket holding the `quantile` sample.
    pub(super) fn latency_quantile(&self, quantile: f64) -> Option<Duration> {
        let samples = self.latency_samples();
        if samples == 0 {
            return None;
        }
        let rank = (f64::from(samples) * quantile).ceil().max(1.0);
        let mut seen = 0u32;
        for (index, count) in self.latency.iter().enumerate() {
            seen = seen.saturating_add(*count);
            if f64::from(seen) >= rank {
                let millis = LATENCY_BOUNDS_MS.get(index).copied().unwrap_or(LATENCY_OVERFLOW_MS);
                return Some(Duration::from_millis(u64::from(millis)));
            }
        }
        Some(Duration::from_millis(u64::from(LATENCY_OVERFLOW_MS)))
    }
}

/// A sliding window of time buckets (not the last N attempts: at low traffic, the last N
/// attempts can be an hour old, and at high traffic a few seconds).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Window {
    pub(super) origin: Option<Instant>,
    pub(super) buckets: [Bucket; WINDOW_BUCKETS],
}

impl Window {
    pub(super) fn epoch(&self, width: Duration, now: Instant) -> u64 {
        let Some(origin) = self.origin else { return 1 };
        let elapsed = now.saturating_duration_since(origin).as_nanos();
        u64::try_from(elapsed / width.as_nanos().max(1)).unwrap_or(u64::MAX - 1) + 1
    }

    pub(super) fn bucket_mut(&mut self, width: Duration, now: Instant) -> &mut Bucket {
        if self.origin.is_none() {
            self.origin = Some(now);
        }
        let epoch = self.epoch(width, now);
        let bucket = &mut self.buckets[(epoch % WINDOW_BUCKETS as u64) as usize];
        if bucket.epoch != epoch {
            *bucket = Bucket { epoch, ..Bucket::default() };
        }
        bucket
    }

    pub(super) fn totals(&self, width: Duration, now: Instant) -> Totals {
        let current = self.epoch(width, now);
        let mut totals = Totals::default();
        for bucket in &self.buckets {
            let is_live = bucket.epoch != 0
                && bucket.epoch <= current
                && bucket.epoch + WINDOW_BUCKETS as u64 > current;
            if !is_live {
                continue;
            }
            totals.successes = totals.successes.saturating_add(bucket.successes);
            totals.failures = totals.failures.saturating_add(bucket.failures);
            for (sum, count) in totals.latency.iter_mut().zip(bucket.latency) {
                *sum = sum.saturating_add(count);
            }
        }
        totals
    }

    pub(super) fn record_latency(&mut self, width: Duration, latency: Duration, now: Instant) {
        let millis = latency.as_millis();
        let index = LATENCY_BOUNDS_MS
            .iter()
            .position(|bound| millis <= u128::from(*bound))
            .unwrap_or(LATENCY_BOUNDS_MS.len());
        let bucket = self.bucket_mut(width, now);
        bucket.latency[index] = bucket.latency[index].saturating_add(1);
    }

    /// Forgets successes and failures (not latency): a fresh start after ejection or recovery.
    pub(super) fn clear_counts(&mut self) {
        for bucket in &mut self.buckets {
            bucket.successes = 0;
            bucket.failures = 0;
        }
    }
}

/// Peak-EWMA accept latency (see the module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(super) struct PeakEwma {
    pub(super) estimate_ms: f64,
    pub(super) samples: u32,
    pub(super) updated: Option<Instant>,
}

impl PeakEwma {
    pub(super) fn get(&self, prior: Duration) -> Duration {
        if self.samples == 0 {
            prior
        } else {
            Duration::from_secs_f64(self.estimate_ms.max(0.0) / 1_000.0)
        }
    }

    pub(super) fn observe(&mut self, sample: Duration, policy: &HealthPolicy, now: Instant) {
        let sample_ms = sample.as_secs_f64() * 1_000.0;
        let current = if self.samples == 0 {
            policy.latency_prior.as_secs_f64() * 1_000.0
        } else {
            self.estimate_ms
        };
        self.estimate_ms = if sample_ms > current {
            sample_ms
        } else {
            let elapsed = self
                .updated
                .map_or(0.0, |updated| now.saturating_duration_since(updated).as_secs_f64());
            let time_weight = (-elapsed / policy.latency_tau.as_secs_f64()).exp();
            // The prior weighs like one sample: early on this is a running mean.
            let count_weight = f64::from(self.samples.saturating_add(1))
                / f64::from(self.samples.saturating_add(2));
            let weight = time_weight.min(count_weight);
            current * weight + sample_ms * (1.0 - weight)
        };
        self.samples = self.samples.saturating_add(1);
        self.updated = Some(self.updated.map_or(now, |updated| updated.max(now)));
    }
}

/// Good and bad outcomes as exponentially decayed weights, so old evidence fades: final
/// delivery receipts (delivered or not), conversions (the code was entered in Okta, or not), and
/// messages whose receipt never came (only `bad` is used).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(super) struct Tally {
    pub(super) good: f64,
    pub(super) bad: f64,
    pub(super) updated: Option<Instant>,
}

impl Tally {
    pub(super) fn at(&self, half_life: Duration, now: Instant) -> (f64, f64) {
        let elapsed = self
            .updated
            .map_or(0.0, |updated| now.saturating_duration_since(updated).as_secs_f64());
        let factor = 0.5f64.powf(elapsed / half_life.as_secs_f64());
        (self.good * factor, self.bad * factor)
    }

    /// Adds one outcome weighing `weight` (1 for a full observation, less for a weak signal).
    pub(super) fn add(&mut self, is_good: bool, weight: f64, half_life: Duration, now: Instant) {
        let (good, bad) = self.at(half_life, now);
        self.good = good + if is_good { weight } else { 0.0 };
        self.bad = bad + if is_good { 0.0 } else { weight };
        self.updated = Some(self.updated.map_or(now, |updated| updated.max(now)));
    }
}

/// A success rate over roughly the last `cap` attempts, however old, held with a weight (how
/// many attempts it stands for) that fades with time: what was last seen stays the estimate
/// until new attempts replace it, but counts for less the older it is.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(super) struct Fading {
    pub(super) rate: f64,
    pub(super) weight: f64,
    pub(super) updated: Option<Instant>,
}

impl Fading {
    pub(super) fn at(&self, half_life: Duration, now: Instant) -> (f64, f64) {
        let elapsed = self
            .updated
            .map_or(0.0, |updated| now.saturating_duration_since(updated).as_secs_f64());
        (self.rate, self.weight * 0.5f64.powf(elapsed / half_life.as_secs_f64()))
    }

    pub(super) fn add(&mut self, is_good: bool, cap: f64, half_life: Duration, now: Instant) {
        self.add_weighted(is_good, 1.0, cap, half_life, now);
    }

    /// Adds an observation that weighs `weight` (less than one for a weak signal).
    pub(super) fn add_weighted(
        &mut self,
        is_good: bool,
        weight: f64,
        cap: f64,
        half_life: Duration,
        now: Instant,
    ) {
        let (rate, held) = self.at(half_life, now);
        let sample = if is_good { 1.0 } else { 0.0 };
        self.rate = (rate * held + sample * weight) / (held + weight);
        self.weight = (held + weight).min(cap);
        self.updated = Some(self.updated.map_or(now, |updated| updated.max(now)));
    }

    /// The same as a (good, bad) pair of weights, for judging like a [`Tally`].
    pub(super) fn as_tally(&self, half_life: Duration, now: Instant) -> (f64, f64) {
        let (rate, weight) = self.at(half_life, now);
        (rate * weight, (1.0 - rate) * weight)
    }
}

/// The Wilson score interval around a share `rate` observed over `count` attempts, at
/// [`CONFIDENCE_Z`] standard deviations. Unlike the normal approximation it stays inside [0, 1]
/// and is wide for few samples even when every one of them succeeded.
pub(super) fn wilson_interval(rate: f64, count: f64) -> (f64, f64) {
    let z = CONFIDENCE_Z;
    let z2 = z * z;
    let denominator = 1.0 + z2 / count;
    let centre = rate + z2 / (2.0 * count);
    let spread = z * (rate * (1.0 - rate) / count + z2 / (4.0 * count * count)).max(0.0).sqrt();
    let lower = ((centre - spread) / denominator).clamp(0.0, 1.0);
    let upper = ((centre + spread) / denominator).clamp(0.0, 1.0);
    (lower, upper)
}
