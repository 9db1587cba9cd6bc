//! What health is kept per ([`HealthKey`]) and the state machine of one key ([`KeyHealth`]):
//! counting outcomes, ejection, probation and its single trial, early trials, and the
//! [`KeyEstimate`] ranking reads. Public results ([`HealthStatus`], [`EjectionCause`]) are here
//! too; the book (`book.rs`) holds one [`KeyHealth`] per key.
//!
//! # Ejection: consecutive failures and failure percentage
//!
//! A region has two to six providers, far too few for Envoy's success-rate outlier test (it
//! wants five hosts with a hundred requests each), and an OTP cannot wait for a per-minute
//! failure ratio the way LiteLLM's cooldown does: every failed attempt spends part of a ~2.5 s
//! deadline. So a key is ejected after `consecutive_failures` provider-fault failures in a row
//! (Envoy's `consecutive_5xx`, default 5). A brownout that fails every other request never makes
//! such a run, so a key is also ejected when `failure_percentage` of the attempts in the window
//! failed, once the window holds `failure_percentage_min_requests` (Envoy's failure-percentage
//! test, judged per key instead of across hosts). A key whose receipts or conversions say its
//! accepted messages do not reach phones, clearly worse than its peers do, is ejected as well
//! (`delivery.rs`): an API that accepts but does not deliver must lose traffic (Twilio's 30007
//! "filtered" on a whole country, "201 Created, never delivered").
//!
//! An ejection lasts `base_ejection × times ejected`, capped at `max_ejection` (Envoy: 30 s × n,
//! at most 300 s). Each `base_ejection` spent healthy since the last recovery forgives one past
//! ejection, as Envoy decrements its multiplier while a host stays healthy, so a provider that
//! flaps is kept out longer and one that recovered is not punished forever.
//!
//! Ejection ends only through probation (linkerd's `breaker/consecutive_failures.rs`): once the
//! ejection time has passed, exactly one trial attempt may run. Its success restores the key;
//! its failure ejects it again, for longer. Letting all traffic back at once would send a burst of
//! real users' OTPs to a provider that may still be down. The trial is claimed through
//! [`crate::attempt::begin_attempt`] and leased for `trial_timeout`, so a trial whose outcome is
//! never recorded (a crashed task, a cancelled hedge) cannot wedge the key in probation forever.
//! Any outcome recorded while a key is in probation is taken as the trial's: the core cannot
//! tell one attempt from another, and a late answer from the provider is evidence all the same.
//! The window's counts are cleared on ejection and on recovery, so a recovered key is judged on
//! what it does from then on; delivery evidence is not (it fades with its half-life): a trial's
//! acceptance says nothing about whether messages arrive.
//!
//! # What counts
//!
//! Only [`ErrorClass::is_provider_fault`](crate::outcome::ErrorClass::is_provider_fault)
//! failures count. A number-level verdict (invalid, blocked, fraud block) says nothing about the
//! provider, so it neither counts nor resets the run; during probation it only frees the trial
//! for another attempt. Receipts differ: one number-level receipt is a verdict on the number, but
//! many on one route are a verdict on the route, so every final receipt is evidence
//! (`delivery.rs`).
//!
//! A `RateLimited` failure that says when to come back (`retry_after`) marks the *provider*
//! [`HealthStatus::RateLimited`] until then (clamped to `max_ejection`) and does not count toward
//! ejection: the provider is up and told us exactly how long to wait, and a 429 reflects our
//! volume rather than its health (LiteLLM's health-check routing likewise skips 429s). A
//! `RateLimited` failure without `retry_after` gives no such time and counts like any other fault.
//!

use std::fmt;
use std::time::{Duration, Instant};

use super::config::{HealthPolicy, later};
use super::delivery::DeliveryEvidence;
use super::estimators::{
    FADING_ATTEMPTS, Fading, PRIOR_REQUESTS, PeakEwma, Tally, Window, wilson_interval,
};
use crate::domain::{Channel, Country, ProviderId};

/// What health is tracked per: one provider's traffic to one country on one channel.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HealthKey {
    provider: ProviderId,
    country: Country,
    channel: Channel,
}

impl HealthKey {
    /// The key for a provider's traffic to `country` on `channel`.
    #[must_use]
    pub fn new(provider: ProviderId, country: Country, channel: Channel) -> HealthKey {
        HealthKey { provider, country, channel }
    }

    /// The provider the key belongs to.
    #[must_use]
    pub fn provider(&self) -> &ProviderId {
        &self.provider
    }

    /// The destination country.
    #[must_use]
    pub fn country(&self) -> Country {
        self.country
    }

    /// The channel.
    #[must_use]
    pub fn channel(&self) -> Channel {
        self.channel
    }
}

impl fmt::Display for HealthKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.provider, self.country, self.channel)
    }
}

/// Observed health of one key at one instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HealthStatus {
    /// Usable.
    Healthy,
    /// Out until `until`, then on probation; `times` is the ejection count behind its length.
    Ejected {
        /// When probation starts.
        until: Instant,
        /// Ejections that set this length (after forgiveness for healthy time).
        times: u32,
    },
    /// The ejection time has passed; one trial attempt decides.
    Probation {
        /// Whether the single trial is already running.
        trial_in_flight: bool,
    },
    /// The provider asked us to wait.
    RateLimited {
        /// When it may be used again.
        until: Instant,
    },
}

impl HealthStatus {
    /// Lower-case label for metrics.
    #[must_use]
    pub fn as_str(&self) -> &'static str {
        match self {
            HealthStatus::Healthy => "healthy",
            HealthStatus::Ejected { .. } => "ejected",
            HealthStatus::Probation { .. } => "probation",
            HealthStatus::RateLimited { .. } => "rate_limited",
        }
    }

    /// How much worse than healthy, for summarising keys: healthy < probation < rate limited <
    /// ejected.
    pub(super) fn severity(&self) -> u8 {
        match self {
            HealthStatus::Healthy => 0,
            HealthStatus::Probation { .. } => 1,
            HealthStatus::RateLimited { .. } => 2,
            HealthStatus::Ejected { .. } => 3,
        }
    }
}

/// Which test ejected a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EjectionCause {
    /// `consecutive_failures` provider faults in a row.
    ConsecutiveFailures,
    /// The window's failure share reached `failure_percentage`.
    FailurePercentage,
    /// Receipts said too few accepted messages were delivered, clearly fewer than its peers'.
    Undelivered,
    /// Conversions said too few codes were entered, clearly fewer than its peers'.
    Unconverted,
    /// The probation trial failed.
    TrialFailed,
}

impl EjectionCause {
    /// Lower-case label for explain output and metrics.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            EjectionCause::ConsecutiveFailures => "consecutive_failures",
            EjectionCause::FailurePercentage => "failure_percentage",
            EjectionCause::Undelivered => "undelivered",
            EjectionCause::Unconverted => "unconverted",
            EjectionCause::TrialFailed => "trial_failed",
        }
    }
}

/// What ranking needs to know about one key at one instant.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KeyEstimate {
    /// Windowed share of attempts the provider accepted, with the provider's pooled rate as the
    /// prior for few samples.
    pub success_rate: f64,
    /// The same over about the last 20 attempts, however old, with the same
    /// prior weighing more as they age: shows a brownout within a few answers.
    pub recent_success_rate: f64,
    /// The provider's success rate over all its keys (the prior above).
    pub provider_success_rate: f64,
    /// What ranking uses: the lower of `success_rate`'s lower bound (Wilson score interval) and
    /// `recent_success_rate`, so that neither a handful of lucky answers nor a minute of good
    /// history outweighs what the provider does now.
    pub success_lower: f64,
    /// What exploration uses: the lower of the upper bounds of `success_rate` and
    /// `recent_success_rate`, what the key might turn out to be with more samples. A key whose
    /// latest attempts failed stays unexplored until their weight fades.
    pub success_upper: f64,
    /// Share of final receipts, of every class, that say delivered, with the country's share
    /// (every provider's receipts there) as the prior.
    pub delivery_rate: f64,
    /// Share of conversions that say the code was entered, with the country's share as the
    /// prior. Shown by explain; ranking reads conversions only through their verdict (`plan`).
    pub conversion_rate: f64,
    /// Receipts and conversions, each judged against the key's peers.
    pub delivery: DeliveryEvidence,
    /// Peak-EWMA accept latency (the prior when there are no samples).
    pub latency: Duration,
    /// Whether `latency` is the prior: the key has never had a sample.
    pub is_latency_prior: bool,
    /// Attempts in the window that counted toward the success rate.
    pub requests: u32,
    /// Latency samples in the window.
    pub latency_samples: u32,
}

/// An ejection in force or awaiting its probation trial.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Ejection {
    pub(super) until: Instant,
    pub(super) cause: EjectionCause,
    /// Expiry of the lease held by the running probation trial.
    pub(super) trial_lease: Option<Instant>,
    /// When the last early trial started ([`HealthBook::claim_early_trial`](super::HealthBook::claim_early_trial)).
    pub(super) early_trial: Option<Instant>,
}

/// Everything remembered about one key.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct KeyHealth {
    pub(super) consecutive_failures: u32,
    pub(super) times_ejected: u32,
    pub(super) ejection: Option<Ejection>,
    /// When the last ejection ended, to forgive past ejections for healthy time.
    pub(super) recovered_at: Option<Instant>,
    pub(super) window: Window,
    pub(super) latency: PeakEwma,
    /// Final receipts: delivered, or not (any class).
    pub(super) receipts: Tally,
    /// Messages whose final receipt never came (only `bad` is used).
    pub(super) receipts_missing: Tally,
    /// Codes entered in Okta, or not.
    pub(super) conversions: Tally,
    /// The latest final receipts (about `receipt_min_count` of them, however old): shows a
    /// route that starts losing messages after a long good history.
    pub(super) recent_receipts: Fading,
    /// The latest timely conversions (about `conversion_min_count` of them): entries and the
    /// sends they superseded ([`crate::outcome::Conversion::is_timely`]).
    pub(super) recent_conversions: Fading,
    /// The latest attempts, their weight halving every window bucket.
    pub(super) recent: Fading,
}

impl KeyHealth {
    pub(super) fn status(&self, rate_limited_until: Option<Instant>, now: Instant) -> HealthStatus {
        match (self.ejection, rate_limited_until) {
            (Some(ejection), _) if now < ejection.until => {
                HealthStatus::Ejected { until: ejection.until, times: self.times_ejected }
            }
            // A rate limit holds back the probation trial too: the provider asked for quiet.
            (_, Some(until)) if now < until => HealthStatus::RateLimited { until },
            (Some(ejection), _) => HealthStatus::Probation {
                trial_in_flight: ejection.trial_lease.is_some_and(|lease| now < lease),
            },
            (None, _) => HealthStatus::Healthy,
        }
    }

    /// The running probation ejection, if the ejection time has passed.
    pub(super) fn probation(&mut self, now: Instant) -> Option<&mut Ejection> {
        self.ejection.as_mut().filter(|ejection| now >= ejection.until)
    }

    /// The key's estimates, given its prior: [`PRIOR_REQUESTS`] attempts at `prior` (its
    /// provider's pooled rate, see `HealthBook::prior`).
    pub(super) fn estimate(
        &self,
        policy: &HealthPolicy,
        prior: f64,
        delivery: DeliveryEvidence,
        now: Instant,
    ) -> KeyEstimate {
        let totals = self.window.totals(policy.bucket_width(), now);
        let counted = f64::from(totals.requests()) + PRIOR_REQUESTS;
        let success_rate = (f64::from(totals.successes) + PRIOR_REQUESTS * prior) / counted;
        let (window_lower, window_upper) = wilson_interval(success_rate, counted);
        let (rate, weight) = self.recent.at(policy.bucket_width(), now);
        let recent_success_rate =
            (rate * weight + PRIOR_REQUESTS * prior) / (weight + PRIOR_REQUESTS);
        let (_, recent_upper) = wilson_interval(recent_success_rate, weight + PRIOR_REQUESTS);
        KeyEstimate {
            success_rate,
            recent_success_rate,
            provider_success_rate: prior,
            success_lower: window_lower.min(recent_success_rate),
            success_upper: window_upper.min(recent_upper),
            delivery_rate: delivery.receipts.rate,
            conversion_rate: delivery.conversions.rate,
            delivery,
            latency: self.latency.get(policy.latency_prior),
            is_latency_prior: self.latency.samples == 0,
            requests: totals.requests(),
            latency_samples: totals.latency_samples(),
        }
    }

    pub(super) fn on_success(&mut self, policy: &HealthPolicy, now: Instant) {
        match self.ejection {
            None => {
                self.consecutive_failures = 0;
                self.count(true, policy, now);
            }
            // Probation's trial, or an early trial (every provider was excluded and deliveries
            // were waiting), succeeded: the key is back.
            Some(ejection)
                if now >= ejection.until
                    || ejection.early_trial.is_some_and(|at| {
                        now.saturating_duration_since(at) <= policy.trial_timeout
                    }) =>
            {
                self.ejection = None;
                self.consecutive_failures = 0;
                self.recovered_at = Some(now);
                self.clear_counts();
                self.count(true, policy, now);
            }
            // Still ejected: an attempt that started earlier, or a fail-open one, succeeded.
            // Ejection ends only through a trial, so this changes nothing.
            Some(_) => {}
        }
    }

    pub(super) fn on_provider_fault(&mut self, policy: &HealthPolicy, now: Instant) {
        match self.ejection {
            None => {
                self.consecutive_failures = self.consecutive_failures.saturating_add(1);
                self.count(false, policy, now);
                let totals = self.window.totals(policy.bucket_width(), now);
                if self.consecutive_failures >= policy.consecutive_failures.get() {
                    self.eject(policy, EjectionCause::ConsecutiveFailures, now);
                } else if totals.requests() >= policy.failure_percentage_min_requests.get()
                    && u64::from(totals.failures) * 100
                        >= u64::from(policy.failure_percentage) * u64::from(totals.requests())
                {
                    self.eject(policy, EjectionCause::FailurePercentage, now);
                }
            }
            // The probation trial failed: out again, for longer.
            Some(ejection) if now >= ejection.until => {
                self.eject(policy, EjectionCause::TrialFailed, now)
            }
            // Late answers to attempts started before the ejection must not lengthen it.
            Some(_) => {}
        }
    }

    pub(super) fn eject(&mut self, policy: &HealthPolicy, cause: EjectionCause, now: Instant) {
        let forgiven = match self.recovered_at {
            Some(recovered_at) => {
                let healthy_for = now.saturating_duration_since(recovered_at);
                u32::try_from(healthy_for.as_nanos() / policy.base_ejection.as_nanos())
                    .unwrap_or(u32::MAX)
            }
            None => 0,
        };
        self.times_ejected = self.times_ejected.saturating_sub(forgiven).saturating_add(1);
        self.recovered_at = None;
        let until = later(now, policy.ejection_for(self.times_ejected));
        self.ejection = Some(Ejection { until, cause, trial_lease: None, early_trial: None });
        self.clear_counts();
    }

    /// Counts one attempt toward the window and the recent counts.
    pub(super) fn count(&mut self, is_success: bool, policy: &HealthPolicy, now: Instant) {
        let bucket = self.window.bucket_mut(policy.bucket_width(), now);
        if is_success {
            bucket.successes = bucket.successes.saturating_add(1);
        } else {
            bucket.failures = bucket.failures.saturating_add(1);
        }
        self.recent.add(is_success, FADING_ATTEMPTS, policy.bucket_width(), now);
    }

    /// A fresh start after ejection or recovery: forgets attempts, not latency and not delivery
    /// evidence (which fades by itself).
    pub(super) fn clear_counts(&mut self) {
        self.window.clear_counts();
        self.recent = Fading::default();
    }

    pub(super) fn release_trial(&mut self, now: Instant) {
        if let Some(probation) = self.probation(now) {
            probation.trial_lease = None;
        }
    }
}
