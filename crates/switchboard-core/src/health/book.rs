//! The [`HealthBook`]: every key's state (`key.rs`) and the provider-wide state beside it (a
//! rate limit, the last exploration), what dispatch records outcomes and receipts into, asks
//! before each send ([`HealthBook::admit`], [`HealthBook::claim`]) and the planner reads; and
//! the snapshots the admin API and explain show.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::config::{HealthPolicy, later};
use super::delivery::{DeliveryEvidence, Judging, judge};
use super::estimators::{FADING_ATTEMPTS, Fading, PRIOR_REQUESTS, PRIOR_SUCCESS_RATE, Tally};
use super::key::{EjectionCause, HealthKey, HealthStatus, KeyEstimate, KeyHealth};
use crate::domain::ProviderId;
use crate::outcome::{AttemptOutcome, Certainty, Conversion, Delivery, ErrorClass};
use crate::switch::{OperatorState, OperatorSwitches};

/// Shortest time between two early trials of one ejected key ([`HealthBook::claim_early_trial`]).
pub const EARLY_TRIAL_INTERVAL: Duration = Duration::from_secs(1);

/// A learned hedge delay needs this many samples in the window; below, the Peak-EWMA estimate
/// stands in for the quantile.
pub const MIN_QUANTILE_SAMPLES: u32 = 10;

/// One row of [`HealthBook::snapshot`].
#[derive(Clone, Debug, PartialEq)]
pub struct HealthSnapshot {
    /// What the row is about.
    pub key: HealthKey,
    /// Observed health.
    pub status: HealthStatus,
    /// The operator's switch for the key's provider.
    pub operator: OperatorState,
    /// Provider-fault failures in the current run.
    pub consecutive_failures: u32,
    /// Why the key was last ejected, while it is ejected or on probation.
    pub ejection_cause: Option<EjectionCause>,
    /// Successes in the window.
    pub successes: u32,
    /// Provider-fault failures in the window.
    pub failures: u32,
    /// The estimates ranking uses, with the delivery evidence (receipts, conversions, receipt
    /// coverage) and its verdicts.
    pub estimate: KeyEstimate,
}

/// One row of [`HealthBook::providers`]: the provider-wide state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderSnapshot {
    /// Which provider.
    pub provider: ProviderId,
    /// The operator's switch.
    pub operator: OperatorState,
    /// Until when it asked us to wait, if it still does.
    pub rate_limited_until: Option<Instant>,
}

/// What [`HealthBook::admit`] let go, to be claimed with [`HealthBook::claim`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use = "an admitted attempt claims its trial with `HealthBook::claim`"]
pub struct HealthClaim {
    key: HealthKey,
    claims_trial: bool,
    is_exploration: bool,
}

/// Why health refused an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HealthRefusal {
    /// The key is on probation and its one trial is already running.
    TrialInFlight,
}

/// Provider-wide state: a rate limit and the last exploration.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct ProviderState {
    pub(super) rate_limited_until: Option<Instant>,
    /// When the last exploration attempt started.
    explored_at: Option<Instant>,
}

/// Observed health of every key and provider. One per running config; the server keeps it
/// behind a lock and passes `now` in. The operator's switch is not here ([`OperatorSwitches`]).
#[derive(Clone, Debug, PartialEq)]
pub struct HealthBook {
    policy: HealthPolicy,
    pub(super) keys: BTreeMap<HealthKey, KeyHealth>,
    pub(super) providers: BTreeMap<ProviderId, ProviderState>,
    pools: BTreeMap<ProviderId, Fading>,
}

impl HealthBook {
    /// An empty book: every key healthy.
    #[must_use]
    pub fn new(policy: HealthPolicy) -> HealthBook {
        HealthBook {
            policy,
            keys: BTreeMap::new(),
            providers: BTreeMap::new(),
            pools: BTreeMap::new(),
        }
    }

    /// The policy in force.
    #[must_use]
    pub fn policy(&self) -> &HealthPolicy {
        &self.policy
    }

    /// Takes in the outcome of one attempt on `key` that ended at `now`, `elapsed` after it
    /// started.
    pub fn record(
        &mut self,
        key: &HealthKey,
        outcome: &AttemptOutcome,
        elapsed: Duration,
        now: Instant,
    ) {
        let policy = &self.policy;
        let health = self.keys.entry(key.clone()).or_default();
        // Accept latency: an acceptance, or a lower bound of it when no answer came.
        if matches!(outcome.certainty(), Certainty::Accepted | Certainty::PossiblyAccepted) {
            health.latency.observe(elapsed, policy, now);
            health.window.record_latency(policy.bucket_width(), elapsed, now);
        }
        // The pool counts what the keys count (a rate limit with a time to wait is not a fault).
        let pooled = match outcome {
            AttemptOutcome::Accepted { .. } => Some(true),
            AttemptOutcome::Failed(failure) => (failure.class.is_provider_fault()
                && !(failure.class == ErrorClass::RateLimited && failure.retry_after.is_some()))
            .then_some(false),
        };
        if let Some(is_success) = pooled {
            let pool = self.pools.entry(key.provider().clone()).or_default();
            pool.add(is_success, FADING_ATTEMPTS, self.policy.window, now);
        }
        let policy = &self.policy;
        let health = self.keys.entry(key.clone()).or_default();
        match outcome {
            AttemptOutcome::Accepted { .. } => health.on_success(policy, now),
            AttemptOutcome::Failed(failure) if !failure.class.is_provider_fault() => {
                health.release_trial(now)
            }
            AttemptOutcome::Failed(failure) => match (failure.class, failure.retry_after) {
                (ErrorClass::RateLimited, Some(retry_after)) => {
                    let until = later(now, retry_after.min(policy.max_ejection));
                    health.release_trial(now);
                    let provider = self.providers.entry(key.provider().clone()).or_default();
                    provider.rate_limited_until =
                        Some(provider.rate_limited_until.map_or(until, |known| known.max(until)));
                }
                _ => health.on_provider_fault(policy, now),
            },
        }
    }

    /// Takes in a final delivery receipt for a message `key`'s provider accepted. Every class
    /// counts: one number-level receipt (filtered, blocked, unknown subscriber) is a verdict on
    /// its number, and dispatch does not fail over on it, but many on one route while peers
    /// deliver are a verdict on the route (`delivery.rs`). Ejects the key when its receipts are
    /// a sustained route problem.
    pub fn record_receipt(&mut self, key: &HealthKey, delivery: Delivery, now: Instant) {
        let is_delivered = matches!(delivery, Delivery::Delivered);
        let (half_life, cap) =
            (self.policy.receipt_half_life, f64::from(self.policy.receipt_min_count));
        let health = self.keys.entry(key.clone()).or_default();
        health.receipts.add(is_delivered, 1.0, half_life, now);
        health.recent_receipts.add(is_delivered, cap, half_life, now);
        if !is_delivered && health.ejection.is_none() && self.evidence(key, now).receipts.ejects() {
            self.eject(key, EjectionCause::Undelivered, now);
        }
    }

    /// A message `key`'s provider accepted got no final receipt within `receipt_grace_ms`: it
    /// counts toward the key's receipt coverage, never against its delivery.
    pub fn record_receipt_missing(&mut self, key: &HealthKey, now: Instant) {
        let half_life = self.policy.receipt_half_life;
        self.keys.entry(key.clone()).or_default().receipts_missing.add(false, 1.0, half_life, now);
    }

    /// Takes in what Okta said (or did not say) about a code sent on `key`. Ejects the key when
    /// its conversions are a sustained route problem.
    pub fn record_conversion(&mut self, key: &HealthKey, conversion: Conversion, now: Instant) {
        let (half_life, cap) =
            (self.policy.conversion_half_life, f64::from(self.policy.conversion_min_count));
        let (is_entered, weight) = (conversion.is_entered(), conversion.weight());
        let health = self.keys.entry(key.clone()).or_default();
        health.conversions.add(is_entered, weight, half_life, now);
        if conversion.is_timely() {
            health.recent_conversions.add_weighted(is_entered, weight, cap, half_life, now);
        }
        if !conversion.is_entered()
            && health.ejection.is_none()
            && self.evidence(key, now).conversions.ejects()
        {
            self.eject(key, EjectionCause::Unconverted, now);
        }
    }

    fn eject(&mut self, key: &HealthKey, cause: EjectionCause, now: Instant) {
        if let Some(health) = self.keys.get_mut(key) {
            health.eject(&self.policy, cause, now);
        }
    }

    /// What receipts and conversions say about `key` at `now`, against its peers: the other
    /// providers' keys for the same country and channel.
    #[must_use]
    pub fn evidence(&self, key: &HealthKey, now: Instant) -> DeliveryEvidence {
        let Some(health) = self.keys.get(key) else { return DeliveryEvidence::NONE };
        let policy = &self.policy;
        let peers: Vec<&KeyHealth> = self
            .pools
            .keys()
            .filter(|provider| *provider != key.provider())
            .filter_map(|provider| {
                self.keys.get(&HealthKey::new(provider.clone(), key.country(), key.channel()))
            })
            .collect();
        let weigh = |tally: &Tally, half_life: Duration| tally.at(half_life, now);
        let receipts = judge(
            weigh(&health.receipts, policy.receipt_half_life),
            health.recent_receipts.as_tally(policy.receipt_half_life, now),
            peers.iter().map(|peer| weigh(&peer.receipts, policy.receipt_half_life)),
            Judging {
                min_count: f64::from(policy.receipt_min_count),
                floor: f64::from(policy.receipt_min_delivery_percent) / 100.0,
                margin: f64::from(policy.receipt_peer_margin_percent) / 100.0,
            },
        );
        let conversions = judge(
            weigh(&health.conversions, policy.conversion_half_life),
            health.recent_conversions.as_tally(policy.conversion_half_life, now),
            peers.iter().map(|peer| weigh(&peer.conversions, policy.conversion_half_life)),
            Judging {
                min_count: f64::from(policy.conversion_min_count),
                floor: f64::from(policy.conversion_min_percent) / 100.0,
                margin: f64::from(policy.conversion_peer_margin_percent) / 100.0,
            },
        );
        let (_, missing) = weigh(&health.receipts_missing, policy.receipt_half_life);
        let expected = receipts.count() + missing;
        let receipt_coverage = (expected > 0.0).then(|| receipts.count() / expected);
        let receipts_stopped = missing >= f64::from(policy.receipt_min_count) / 2.0
            && receipt_coverage.is_some_and(|coverage| {
                coverage * 100.0 < f64::from(policy.receipt_min_coverage_percent)
            });
        DeliveryEvidence {
            receipts,
            receipts_missing: missing,
            receipt_coverage,
            receipts_stopped,
            conversions,
        }
    }

    /// Called by dispatch right before sending on `key`: whether health lets it go. The flags are
    /// the planned candidate's ([`crate::plan::Candidate`]): `is_fail_open` when the planner
    /// offered it because nothing else is left, `is_exploration` when exploration put it first.
    ///
    /// Refuses when the key is on probation and its one trial is already running (the
    /// operator's switch is asked before, by [`crate::attempt::begin_attempt`]). A fail-open candidate is never
    /// refused for health: the planner chose it because nothing else is left. Nothing is claimed
    /// here: the returned [`HealthClaim`] is handed to [`HealthBook::claim`] once every other
    /// gate (the retry budget, for a speculative send) has let the attempt go, so a refusal
    /// anywhere claims nothing. See [`crate::attempt::begin_attempt`], which does both.
    pub fn admit(
        &mut self,
        key: &HealthKey,
        is_fail_open: bool,
        is_exploration: bool,
        now: Instant,
    ) -> Result<HealthClaim, HealthRefusal> {
        let claims_trial = match self.keys.get_mut(key).and_then(|health| health.probation(now)) {
            None => false,
            Some(probation) => match probation.trial_lease {
                Some(lease) if now < lease => {
                    if !is_fail_open {
                        return Err(HealthRefusal::TrialInFlight);
                    }
                    false
                }
                // No trial, or its lease ran out unanswered: this attempt is the trial.
                _ => true,
            },
        };
        Ok(HealthClaim { key: key.clone(), claims_trial, is_exploration })
    }

    /// Makes what [`HealthBook::admit`] found true: claims the probation trial, and for an
    /// exploration starts the provider's wait before the next one ([`HealthBook::may_explore`]).
    pub fn claim(&mut self, claim: HealthClaim, now: Instant) {
        let HealthClaim { key, claims_trial, is_exploration } = claim;
        if is_exploration {
            self.providers.entry(key.provider().clone()).or_default().explored_at = Some(now);
        }
        let trial_timeout = self.policy.trial_timeout;
        if claims_trial
            && let Some(probation) =
                self.keys.get_mut(&key).and_then(|health| health.probation(now))
        {
            probation.trial_lease = Some(later(now, trial_timeout));
        }
    }

    /// Claims an early trial of an ejected `key`: at most one per [`EARLY_TRIAL_INTERVAL`],
    /// across every delivery. Dispatch asks for one when every provider a delivery could use is
    /// excluded and the delivery would otherwise wait for the soonest ejection to end (30 s and
    /// more): the trial's success ends the ejection at once, as probation's would, and every
    /// waiting delivery follows. One send per key per interval is all a dead provider sees,
    /// whatever the number of waiting codes. Keys that are not ejected (resting after a
    /// `Retry-After`, which the provider asked for, or on probation) are never claimed.
    pub fn claim_early_trial(&mut self, key: &HealthKey, now: Instant) -> bool {
        let Some(ejection) = self.keys.get_mut(key).and_then(|health| health.ejection.as_mut())
        else {
            return false;
        };
        let is_due = now < ejection.until
            && ejection
                .early_trial
                .is_none_or(|at| now.saturating_duration_since(at) >= EARLY_TRIAL_INTERVAL);
        if is_due {
            ejection.early_trial = Some(now);
        }
        is_due
    }

    /// When the last early trial of `key` started, if it is ejected and has had one.
    #[must_use]
    pub fn early_trial_at(&self, key: &HealthKey) -> Option<Instant> {
        self.keys.get(key).and_then(|health| health.ejection).and_then(|e| e.early_trial)
    }

    /// Dispatch gave up on an attempt it began without an outcome (a hedge cancelled because
    /// another provider answered first): frees the probation trial it may hold. Records nothing.
    pub fn abandon(&mut self, key: &HealthKey, now: Instant) {
        if let Some(health) = self.keys.get_mut(key) {
            health.release_trial(now);
        }
    }

    /// Whether an exploration may go to `provider` at `now`: at most one per window bucket, so
    /// that exploring costs a bounded number of sends whatever the traffic.
    #[must_use]
    pub fn may_explore(&self, provider: &ProviderId, now: Instant) -> bool {
        self.providers
            .get(provider)
            .and_then(|state| state.explored_at)
            .is_none_or(|at| now.saturating_duration_since(at) >= self.policy.bucket_width())
    }

    /// Until when `provider` asked us to wait (`Retry-After`), as last recorded; may be past.
    #[must_use]
    pub fn rate_limited_until(&self, provider: &ProviderId) -> Option<Instant> {
        self.providers.get(provider).and_then(|state| state.rate_limited_until)
    }

    /// Observed health of a key at `now` (healthy when nothing is known).
    #[must_use]
    pub fn status(&self, key: &HealthKey, now: Instant) -> HealthStatus {
        let rate_limited_until = self.rate_limited_until(key.provider());
        match self.keys.get(key) {
            Some(health) => health.status(rate_limited_until, now),
            None => KeyHealth::default().status(rate_limited_until, now),
        }
    }

    /// A provider's health summarised over its keys: the worst status any of them has (ejected,
    /// then rate limited, then probation), healthy when none is worse.
    #[must_use]
    pub fn provider_status(&self, provider: &ProviderId, now: Instant) -> HealthStatus {
        let rate_limited_until = self.rate_limited_until(provider);
        let mut worst = KeyHealth::default().status(rate_limited_until, now);
        for (key, health) in &self.keys {
            if key.provider() == provider {
                let status = health.status(rate_limited_until, now);
                if status.severity() > worst.severity() {
                    worst = status;
                }
            }
        }
        worst
    }

    /// What ranking needs to know about a key at `now`.
    #[must_use]
    pub fn estimate(&self, key: &HealthKey, now: Instant) -> KeyEstimate {
        let prior = self.prior(key.provider(), now);
        let delivery = self.evidence(key, now);
        match self.keys.get(key) {
            Some(health) => health.estimate(&self.policy, prior, delivery, now),
            None => KeyHealth::default().estimate(&self.policy, prior, delivery, now),
        }
    }

    /// The prior of each of `provider`'s keys: [`PRIOR_REQUESTS`] attempts at its success rate
    /// over all its keys (the pool), topped up with the constant prior while the pool weighs
    /// less. Capped so that a busy key's own attempts always outweigh its provider's.
    fn prior(&self, provider: &ProviderId, now: Instant) -> f64 {
        let (rate, weight) =
            self.pools.get(provider).map_or((0.0, 0.0), |pool| pool.at(self.policy.window, now));
        let pooled = weight.min(PRIOR_REQUESTS);
        (rate * pooled + PRIOR_SUCCESS_RATE * (PRIOR_REQUESTS - pooled)) / PRIOR_REQUESTS
    }

    /// The `quantile` of a key's accept latency over the window, when the window holds at least
    /// [`MIN_QUANTILE_SAMPLES`] samples.
    #[must_use]
    pub fn latency_quantile(
        &self,
        key: &HealthKey,
        quantile: f64,
        now: Instant,
    ) -> Option<Duration> {
        let totals = self.keys.get(key)?.window.totals(self.policy.bucket_width(), now);
        if totals.latency_samples() < MIN_QUANTILE_SAMPLES {
            return None;
        }
        totals.latency_quantile(quantile)
    }

    /// When the running probation trial's lease expires, if one is running at `now`.
    pub(crate) fn trial_lease(&self, key: &HealthKey, now: Instant) -> Option<Instant> {
        let ejection = self.keys.get(key)?.ejection?;
        ejection.trial_lease.filter(|lease| now >= ejection.until && now < *lease)
    }

    /// Every key the book has state for, in key order, with its provider's switch from
    /// `switches`. Keys never seen are healthy and do not appear.
    #[must_use]
    pub fn snapshot(&self, switches: &OperatorSwitches, now: Instant) -> Vec<HealthSnapshot> {
        let width = self.policy.bucket_width();
        self.keys
            .iter()
            .map(|(key, health)| {
                let totals = health.window.totals(width, now);
                HealthSnapshot {
                    key: key.clone(),
                    status: health.status(self.rate_limited_until(key.provider()), now),
                    operator: switches.state(key.provider()),
                    consecutive_failures: health.consecutive_failures,
                    ejection_cause: health.ejection.map(|ejection| ejection.cause),
                    successes: totals.successes,
                    failures: totals.failures,
                    estimate: self.estimate(key, now),
                }
            })
            .collect()
    }

    /// Providers with a provider-wide state (an operator switch set in `switches`, a rate
    /// limit), in id order.
    #[must_use]
    pub fn providers(&self, switches: &OperatorSwitches, now: Instant) -> Vec<ProviderSnapshot> {
        let mut providers: Vec<&ProviderId> =
            self.providers.keys().chain(switches.iter().map(|(provider, _)| provider)).collect();
        providers.sort();
        providers.dedup();
        providers
            .into_iter()
            .map(|provider| ProviderSnapshot {
                provider: provider.clone(),
                operator: switches.state(provider),
                rate_limited_until: self.rate_limited_until(provider).filter(|until| now < *until),
            })
            .collect()
    }

    /// A book for a reloaded config: the new policy, and the health and rate limits of the
    /// providers still configured (matched by id, every key of theirs). Ejections in force
    /// keep their end time.
    #[must_use]
    pub fn carry_over<'p>(
        &self,
        policy: HealthPolicy,
        providers: impl IntoIterator<Item = &'p ProviderId>,
    ) -> HealthBook {
        let mut book = HealthBook::new(policy);
        for provider in providers {
            for (key, health) in self.keys.iter().filter(|(key, _)| key.provider() == provider) {
                book.keys.insert(key.clone(), health.clone());
            }
            if let Some(state) = self.providers.get(provider) {
                book.providers.insert(provider.clone(), *state);
            }
        }
        book
    }
}
