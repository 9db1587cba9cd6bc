//! Observed provider health: consecutive-failure ejection with growing cooldowns and a single
//! probation trial, kept apart from the operator's switch.
//!
//! # Why consecutive failures, and why probation?
//!
//! A region has two to six providers, far too few for Envoy's success-rate outlier test (it
//! wants five hosts with a hundred requests each), and an OTP cannot wait for a per-minute
//! failure ratio the way LiteLLM's cooldown does: every failed attempt spends part of a ~2.5 s
//! deadline. So a provider is ejected after `consecutive_failures` provider-fault failures in a
//! row (Envoy's `consecutive_5xx`, default 5), for `base_ejection × times ejected`, capped at
//! `max_ejection` (Envoy: 30 s × n, at most 300 s). Each `base_ejection` spent healthy since the
//! last recovery forgives one past ejection, as Envoy decrements its multiplier while a host
//! stays healthy, so a provider that flaps is kept out longer and one that recovered is not
//! punished forever.
//!
//! Ejection ends only through probation (linkerd's `breaker/consecutive_failures.rs`): once the
//! ejection time has passed, exactly one trial attempt may run. Its success restores the provider;
//! its failure ejects it again, for longer. Letting all traffic back at once would send a burst of
//! real users' OTPs to a provider that may still be down. The trial is claimed by
//! [`HealthBook::begin_attempt`] and leased for `trial_timeout`, so a trial whose outcome is
//! never recorded (a crashed task, a lost future) cannot wedge the provider in probation forever.
//! Any outcome recorded while a provider is in probation is taken as the trial's: the core cannot
//! tell one attempt from another, and a late answer from the provider is evidence all the same.
//!
//! # What counts
//!
//! Only [`ErrorClass::is_provider_fault`] failures count. A number-level verdict (invalid,
//! blocked, fraud block) says nothing about the provider, so it neither counts nor resets the run;
//! during probation it only frees the trial for another attempt.
//!
//! A `RateLimited` failure that says when to come back (`retry_after`) marks the provider
//! [`HealthStatus::RateLimited`] until then (clamped to `max_ejection`) and does not count toward
//! ejection: the provider is up and told us exactly how long to wait, and a 429 reflects our
//! volume rather than its health (LiteLLM's health-check routing likewise skips 429s). A
//! `RateLimited` failure without `retry_after` gives no such time and counts like any other fault.
//!
//! # The operator's switch
//!
//! [`OperatorState`] is separate from observed health (pingora's `enabled` flag beside its
//! health check): draining or disabling a provider does not touch its failure history, and
//! enabling it again does not pretend it is healthy. The planner never plans a provider that is
//! not enabled, whatever its health. Health here never decides to use a provider: "never eject
//! the last candidate" is the planner's rule (see `plan.rs`).

use std::collections::BTreeMap;
use std::fmt;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::config::ConfigError;
use crate::domain::ProviderId;
use crate::outcome::{AttemptOutcome, ErrorClass};
use crate::plan::Candidate;

/// Longest ejection an operator may configure; also bounds every `Instant` addition here.
const MAX_EJECTION_LIMIT_MS: u64 = 24 * 60 * 60 * 1000;

/// Longest trial lease an operator may configure.
const MAX_TRIAL_TIMEOUT_MS: u64 = 10 * 60 * 1000;

/// The `[health]` section as written in the config file.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    /// Provider-fault failures in a row that eject a provider (Envoy's default: 5).
    #[serde(default = "default_consecutive_failures")]
    pub consecutive_failures: u32,
    /// First ejection, in milliseconds; the n-th lasts n times as long (Envoy's default: 30 s).
    #[serde(default = "default_base_ejection_ms")]
    pub base_ejection_ms: u64,
    /// Longest ejection, in milliseconds (Envoy's default: 300 s).
    #[serde(default = "default_max_ejection_ms")]
    pub max_ejection_ms: u64,
    /// How long a probation trial may run unanswered before another may start, in milliseconds.
    #[serde(default = "default_trial_timeout_ms")]
    pub trial_timeout_ms: u64,
}

fn default_consecutive_failures() -> u32 {
    5
}

fn default_base_ejection_ms() -> u64 {
    30_000
}

fn default_max_ejection_ms() -> u64 {
    300_000
}

fn default_trial_timeout_ms() -> u64 {
    5_000
}

impl HealthConfig {
    /// The values a missing `[health]` section stands for.
    #[must_use]
    pub fn defaults() -> HealthConfig {
        HealthConfig {
            consecutive_failures: default_consecutive_failures(),
            base_ejection_ms: default_base_ejection_ms(),
            max_ejection_ms: default_max_ejection_ms(),
            trial_timeout_ms: default_trial_timeout_ms(),
        }
    }
}

/// Validated health settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HealthPolicy {
    consecutive_failures: NonZeroU32,
    base_ejection: Duration,
    max_ejection: Duration,
    trial_timeout: Duration,
}

impl HealthPolicy {
    /// Validates a `[health]` section, naming the offending key.
    pub fn try_new(config: &HealthConfig) -> Result<HealthPolicy, ConfigError> {
        let consecutive_failures =
            NonZeroU32::new(config.consecutive_failures).ok_or_else(|| {
                ConfigError::invalid("health.consecutive_failures", "must be at least 1")
            })?;
        let in_range = |key: &str, value: u64, max: u64| {
            if (1..=max).contains(&value) {
                Ok(Duration::from_millis(value))
            } else {
                Err(ConfigError::invalid(
                    format!("health.{key}"),
                    format!("must be between 1 and {max}"),
                ))
            }
        };
        let base_ejection =
            in_range("base_ejection_ms", config.base_ejection_ms, MAX_EJECTION_LIMIT_MS)?;
        let max_ejection =
            in_range("max_ejection_ms", config.max_ejection_ms, MAX_EJECTION_LIMIT_MS)?;
        let trial_timeout =
            in_range("trial_timeout_ms", config.trial_timeout_ms, MAX_TRIAL_TIMEOUT_MS)?;
        if max_ejection < base_ejection {
            return Err(ConfigError::invalid(
                "health.max_ejection_ms",
                format!("must be at least base_ejection_ms ({})", config.base_ejection_ms),
            ));
        }
        Ok(HealthPolicy { consecutive_failures, base_ejection, max_ejection, trial_timeout })
    }

    /// Provider-fault failures in a row that eject a provider.
    #[must_use]
    pub fn consecutive_failures(&self) -> NonZeroU32 {
        self.consecutive_failures
    }

    /// First ejection; the n-th lasts n times as long.
    #[must_use]
    pub fn base_ejection(&self) -> Duration {
        self.base_ejection
    }

    /// Longest ejection, and longest rate-limit wait honoured.
    #[must_use]
    pub fn max_ejection(&self) -> Duration {
        self.max_ejection
    }

    /// How long a probation trial may run unanswered.
    #[must_use]
    pub fn trial_timeout(&self) -> Duration {
        self.trial_timeout
    }

    fn ejection_for(&self, times_ejected: u32) -> Duration {
        self.base_ejection.saturating_mul(times_ejected).min(self.max_ejection)
    }
}

/// What health is tracked per. Today one provider; later (provider, country, channel), which is
/// why this is a type of its own rather than a bare [`ProviderId`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HealthKey {
    provider: ProviderId,
}

impl HealthKey {
    /// The key for a provider.
    #[must_use]
    pub fn new(provider: ProviderId) -> HealthKey {
        HealthKey { provider }
    }

    /// The provider the key belongs to.
    #[must_use]
    pub fn provider(&self) -> &ProviderId {
        &self.provider
    }
}

impl fmt::Display for HealthKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.provider, f)
    }
}

/// The operator's switch for one provider, independent of observed health.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum OperatorState {
    /// Planned when healthy (the default).
    #[default]
    Enabled,
    /// Not planned any more; attempts from plans made earlier may still start.
    Draining,
    /// Never planned, and [`HealthBook::begin_attempt`] refuses it.
    Disabled,
}

impl OperatorState {
    /// Whether new plans may include the provider.
    #[must_use]
    pub fn is_enabled(self) -> bool {
        self == OperatorState::Enabled
    }

    /// Lower-case label for the admin API and metrics.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            OperatorState::Enabled => "enabled",
            OperatorState::Draining => "draining",
            OperatorState::Disabled => "disabled",
        }
    }
}

/// Observed health of one provider at one instant.
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
}

/// One row of [`HealthBook::snapshot`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthSnapshot {
    /// What the row is about.
    pub key: HealthKey,
    /// Observed health.
    pub status: HealthStatus,
    /// The operator's switch.
    pub operator: OperatorState,
    /// Provider-fault failures in the current run.
    pub consecutive_failures: u32,
}

/// An ejection in force or awaiting its probation trial.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Ejection {
    until: Instant,
    /// Expiry of the lease held by the running probation trial.
    trial_lease: Option<Instant>,
}

/// Everything remembered about one key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct KeyHealth {
    consecutive_failures: u32,
    times_ejected: u32,
    ejection: Option<Ejection>,
    rate_limited_until: Option<Instant>,
    /// When the last ejection ended, to forgive past ejections for healthy time.
    recovered_at: Option<Instant>,
}

impl KeyHealth {
    fn status(&self, now: Instant) -> HealthStatus {
        match (self.ejection, self.rate_limited_until) {
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
    fn probation(&mut self, now: Instant) -> Option<&mut Ejection> {
        self.ejection.as_mut().filter(|ejection| now >= ejection.until)
    }

    fn on_success(&mut self, now: Instant) {
        match self.ejection {
            None => self.consecutive_failures = 0,
            Some(ejection) if now >= ejection.until => {
                self.ejection = None;
                self.consecutive_failures = 0;
                self.recovered_at = Some(now);
            }
            // Still ejected: an attempt that started earlier, or a fail-open one, succeeded.
            // Ejection ends only through probation, so this changes nothing.
            Some(_) => {}
        }
    }

    fn on_provider_fault(&mut self, policy: &HealthPolicy, now: Instant) {
        match self.ejection {
            None => {
                self.consecutive_failures = self.consecutive_failures.saturating_add(1);
                if self.consecutive_failures >= policy.consecutive_failures.get() {
                    self.eject(policy, now);
                }
            }
            // The probation trial failed: out again, for longer.
            Some(ejection) if now >= ejection.until => self.eject(policy, now),
            // Late answers to attempts started before the ejection must not lengthen it.
            Some(_) => {}
        }
    }

    fn eject(&mut self, policy: &HealthPolicy, now: Instant) {
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
        self.ejection = Some(Ejection { until, trial_lease: None });
    }

    fn release_trial(&mut self, now: Instant) {
        if let Some(probation) = self.probation(now) {
            probation.trial_lease = None;
        }
    }
}

/// `now + duration`; durations here are bounded by validated config, so the fallback (no wait
/// at all) is only reachable with an `Instant` at the end of the platform's range.
fn later(now: Instant, duration: Duration) -> Instant {
    now.checked_add(duration).unwrap_or(now)
}

/// Observed health of every provider plus the operator's switches. One per running config; the
/// server keeps it behind a lock and passes `now` in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthBook {
    policy: HealthPolicy,
    keys: BTreeMap<HealthKey, KeyHealth>,
    operator: BTreeMap<ProviderId, OperatorState>,
}

impl HealthBook {
    /// An empty book: every provider healthy and enabled.
    #[must_use]
    pub fn new(policy: HealthPolicy) -> HealthBook {
        HealthBook { policy, keys: BTreeMap::new(), operator: BTreeMap::new() }
    }

    /// The policy in force.
    #[must_use]
    pub fn policy(&self) -> &HealthPolicy {
        &self.policy
    }

    /// Takes in the outcome of one attempt on `provider` that ended at `now`.
    pub fn record(&mut self, provider: &ProviderId, outcome: &AttemptOutcome, now: Instant) {
        let policy = self.policy;
        let health = self.keys.entry(HealthKey::new(provider.clone())).or_default();
        match outcome {
            AttemptOutcome::Accepted { .. } => health.on_success(now),
            AttemptOutcome::Failed(failure) if !failure.class.is_provider_fault() => {
                health.release_trial(now)
            }
            AttemptOutcome::Failed(failure) => match (failure.class, failure.retry_after) {
                (ErrorClass::RateLimited, Some(retry_after)) => {
                    let until = later(now, retry_after.min(policy.max_ejection));
                    health.rate_limited_until =
                        Some(health.rate_limited_until.map_or(until, |known| known.max(until)));
                    health.release_trial(now);
                }
                _ => health.on_provider_fault(&policy, now),
            },
        }
    }

    /// Called by dispatch right before sending to `candidate`; claims the probation trial.
    ///
    /// Returns false (skip this candidate) when the provider is on probation and its one trial is
    /// already running, or when the operator has disabled it since the plan was made. A fail-open
    /// candidate is never refused for health: the planner chose it because nothing else is left.
    #[must_use = "dispatch must skip the candidate when this is false"]
    pub fn begin_attempt(&mut self, candidate: &Candidate, now: Instant) -> bool {
        if self.operator_state(&candidate.provider) == OperatorState::Disabled {
            return false;
        }
        let trial_timeout = self.policy.trial_timeout;
        let Some(probation) = self
            .keys
            .get_mut(&HealthKey::new(candidate.provider.clone()))
            .and_then(|health| health.probation(now))
        else {
            return true;
        };
        match probation.trial_lease {
            Some(lease) if now < lease => candidate.is_fail_open,
            // No trial, or its lease ran out unanswered: this attempt is the trial.
            _ => {
                probation.trial_lease = Some(later(now, trial_timeout));
                true
            }
        }
    }

    /// Sets the operator's switch for a provider.
    pub fn set_operator_state(&mut self, provider: &ProviderId, state: OperatorState) {
        match state {
            OperatorState::Enabled => self.operator.remove(provider),
            _ => self.operator.insert(provider.clone(), state),
        };
    }

    /// The operator's switch for a provider (enabled unless set otherwise).
    #[must_use]
    pub fn operator_state(&self, provider: &ProviderId) -> OperatorState {
        self.operator.get(provider).copied().unwrap_or_default()
    }

    /// Observed health of a provider at `now` (healthy when nothing is known).
    #[must_use]
    pub fn status(&self, provider: &ProviderId, now: Instant) -> HealthStatus {
        self.keys
            .get(&HealthKey::new(provider.clone()))
            .map_or(HealthStatus::Healthy, |health| health.status(now))
    }

    /// When the running probation trial's lease expires, if one is running at `now`.
    pub(crate) fn trial_lease(&self, provider: &ProviderId, now: Instant) -> Option<Instant> {
        let ejection = self.keys.get(&HealthKey::new(provider.clone()))?.ejection?;
        ejection.trial_lease.filter(|lease| now >= ejection.until && now < *lease)
    }

    /// Every key the book has state for, in key order. Providers never seen are healthy and
    /// enabled and do not appear.
    #[must_use]
    pub fn snapshot(&self, now: Instant) -> Vec<HealthSnapshot> {
        let mut rows: BTreeMap<HealthKey, HealthSnapshot> = BTreeMap::new();
        for (key, health) in &self.keys {
            rows.insert(
                key.clone(),
                HealthSnapshot {
                    key: key.clone(),
                    status: health.status(now),
                    operator: self.operator_state(key.provider()),
                    consecutive_failures: health.consecutive_failures,
                },
            );
        }
        for (provider, state) in &self.operator {
            let key = HealthKey::new(provider.clone());
            rows.entry(key.clone()).or_insert(HealthSnapshot {
                key,
                status: HealthStatus::Healthy,
                operator: *state,
                consecutive_failures: 0,
            });
        }
        rows.into_values().collect()
    }

    /// A book for a reloaded config: the new policy, and the health and operator switches of the
    /// providers still configured (matched by id). Ejections in force keep their end time.
    #[must_use]
    pub fn carry_over<'p>(
        &self,
        policy: HealthPolicy,
        providers: impl IntoIterator<Item = &'p ProviderId>,
    ) -> HealthBook {
        let mut book = HealthBook::new(policy);
        for provider in providers {
            let key = HealthKey::new(provider.clone());
            if let Some(health) = self.keys.get(&key) {
                book.keys.insert(key, health.clone());
            }
            if let Some(state) = self.operator.get(provider) {
                book.operator.insert(provider.clone(), *state);
            }
        }
        book
    }
}

#[cfg(test)]
mod tests;
