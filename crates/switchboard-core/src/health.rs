//! Observed health per (provider, country, channel): ejection with growing cooldowns and a single
//! probation trial, windowed, recent and provider-wide success rates, Peak-EWMA accept latency
//! and delivery receipts, kept apart from the operator's switch. The retry budget is not here:
//! it is its own state (`budget.rs`), and [`crate::attempt::begin_attempt`] asks both.
//!
//! # Why per (provider, country, channel)?
//!
//! A provider is rarely down everywhere: a carrier route in one country browns out, voice breaks
//! while SMS works, a sender id is refused in one market. Keying health by [`HealthKey`] keeps a
//! failure in one place from costing traffic everywhere else. Account-wide answers are the
//! exception: a rate limit (`Retry-After`) and the operator's switch apply to the provider as a
//! whole.
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
//! test, judged per key instead of across hosts). A key whose delivery receipts say that fewer
//! than `receipt_min_delivery_percent` of its accepted messages arrive is ejected as well: an API
//! that accepts but does not deliver must lose traffic (the "201 Created, never delivered"
//! incidents in the research notes).
//!
//! An ejection lasts `base_ejection × times ejected`, capped at `max_ejection` (Envoy: 30 s × n,
//! at most 300 s). Each `base_ejection` spent healthy since the last recovery forgives one past
//! ejection, as Envoy decrements its multiplier while a host stays healthy, so a provider that
//! flaps is kept out longer and one that recovered is not punished forever.
//!
//! Ejection ends only through probation (linkerd's `breaker/consecutive_failures.rs`): once the
//! ejection time has passed, exactly one trial attempt may run. Its success restores the key;
//! its failure ejects it again, for longer. Letting all traffic back at once would send a burst of
//! real users' OTPs to a provider that may still be down. The trial is claimed by
//! [`HealthBook::begin_attempt`] and leased for `trial_timeout`, so a trial whose outcome is
//! never recorded (a crashed task, a cancelled hedge) cannot wedge the key in probation forever.
//! Any outcome recorded while a key is in probation is taken as the trial's: the core cannot
//! tell one attempt from another, and a late answer from the provider is evidence all the same.
//! The window and receipt counts are cleared on ejection and on recovery, so a recovered key is
//! judged on what it does from then on.
//!
//! # What counts
//!
//! Only [`ErrorClass::is_provider_fault`] failures count. A number-level verdict (invalid,
//! blocked, fraud block) says nothing about the provider, so it neither counts nor resets the run;
//! during probation it only frees the trial for another attempt. The same holds for receipts.
//!
//! A `RateLimited` failure that says when to come back (`retry_after`) marks the *provider*
//! [`HealthStatus::RateLimited`] until then (clamped to `max_ejection`) and does not count toward
//! ejection: the provider is up and told us exactly how long to wait, and a 429 reflects our
//! volume rather than its health (LiteLLM's health-check routing likewise skips 429s). A
//! `RateLimited` failure without `retry_after` gives no such time and counts like any other fault.
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

use crate::budget::{BudgetConfig, BudgetPolicy};
use crate::config::ConfigError;
use crate::domain::{Channel, Country, ProviderId};
use crate::outcome::{AttemptOutcome, Certainty, Delivery, ErrorClass};
use crate::plan::Candidate;

/// Longest ejection an operator may configure; also bounds every `Instant` addition here.
const MAX_EJECTION_LIMIT_MS: u64 = 24 * 60 * 60 * 1000;

/// Longest trial lease an operator may configure.
const MAX_TRIAL_TIMEOUT_MS: u64 = 10 * 60 * 1000;

/// Time buckets per window: a window slides in steps of a sixth of its length.
const WINDOW_BUCKETS: usize = 6;

/// Upper bounds (ms) of the latency histogram's buckets; one more bucket holds the rest.
const LATENCY_BOUNDS_MS: [u32; 13] =
    [25, 50, 75, 100, 150, 200, 300, 400, 600, 800, 1200, 1600, 2400];

/// What the histogram reports for samples above its last bound.
const LATENCY_OVERFLOW_MS: u32 = 3_200;

/// Shortest time between two early trials of one ejected key ([`HealthBook::claim_early_trial`]).
pub const EARLY_TRIAL_INTERVAL: Duration = Duration::from_secs(1);

/// A learned hedge delay needs this many samples in the window; below, the Peak-EWMA estimate
/// stands in for the quantile.
pub const MIN_QUANTILE_SAMPLES: u32 = 10;

/// Prior of a key's success rates: `PRIOR_REQUESTS` attempts at its provider's pooled rate (see
/// the module docs), topped up with attempts at `PRIOR_SUCCESS_RATE`, slightly below a proven
/// provider, while the pool has less to say.
const PRIOR_REQUESTS: f64 = 8.0;
const PRIOR_SUCCESS_RATE: f64 = 0.9;

/// How many of the latest attempts the fading rates (a key's recent rate, a provider's pool)
/// stand for at most.
const FADING_ATTEMPTS: f64 = 20.0;

/// Width of the success-rate interval, in standard deviations (about an 84 % one-sided bound).
const CONFIDENCE_Z: f64 = 1.0;

/// The `[health]` section as written in the config file.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    /// Provider-fault failures in a row that eject a key (Envoy's default: 5).
    #[serde(default = "default_consecutive_failures")]
    pub consecutive_failures: u32,
    /// Share of failed attempts in the window, in percent, that ejects a key (default 50).
    #[serde(default = "default_failure_percentage")]
    pub failure_percentage: u32,
    /// Attempts the window must hold before `failure_percentage` applies (default 20).
    #[serde(default = "default_failure_percentage_min_requests")]
    pub failure_percentage_min_requests: u32,
    /// Length of the sliding window for success rates and the latency histogram, in
    /// milliseconds (default 60000).
    #[serde(default = "default_window_ms")]
    pub window_ms: u64,
    /// First ejection, in milliseconds; the n-th lasts n times as long (Envoy's default: 30 s).
    #[serde(default = "default_base_ejection_ms")]
    pub base_ejection_ms: u64,
    /// Longest ejection, in milliseconds (Envoy's default: 300 s).
    #[serde(default = "default_max_ejection_ms")]
    pub max_ejection_ms: u64,
    /// How long a probation trial may run unanswered before another may start, in milliseconds.
    #[serde(default = "default_trial_timeout_ms")]
    pub trial_timeout_ms: u64,
    /// Peak-EWMA time constant τ for accept latency, in milliseconds (linkerd's default: 10 s).
    #[serde(default = "default_latency_tau_ms")]
    pub latency_tau_ms: u64,
    /// Accept latency assumed for a key without samples, in milliseconds (default 1000).
    #[serde(default = "default_latency_prior_ms")]
    pub latency_prior_ms: u64,
    /// Half-life of delivery-receipt counts, in milliseconds (default 600000).
    #[serde(default = "default_receipt_half_life_ms")]
    pub receipt_half_life_ms: u64,
    /// Receipts (after decay) needed before they can eject a key (default 20).
    #[serde(default = "default_receipt_min_count")]
    pub receipt_min_count: u32,
    /// Delivered share of receipts, in percent, below which a key is ejected; 0 turns receipt
    /// ejection off (default 50). Receipts feed ranking either way.
    #[serde(default = "default_receipt_min_delivery_percent")]
    pub receipt_min_delivery_percent: u32,
    /// The retry budget for speculative sends: hedges and race extras.
    #[serde(default = "BudgetConfig::defaults")]
    pub budget: BudgetConfig,
}

fn default_consecutive_failures() -> u32 {
    5
}

fn default_failure_percentage() -> u32 {
    50
}

fn default_failure_percentage_min_requests() -> u32 {
    20
}

fn default_window_ms() -> u64 {
    60_000
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

fn default_latency_tau_ms() -> u64 {
    10_000
}

fn default_latency_prior_ms() -> u64 {
    1_000
}

fn default_receipt_half_life_ms() -> u64 {
    600_000
}

fn default_receipt_min_count() -> u32 {
    20
}

fn default_receipt_min_delivery_percent() -> u32 {
    50
}

impl HealthConfig {
    /// The values a missing `[health]` section stands for.
    #[must_use]
    pub fn defaults() -> HealthConfig {
        HealthConfig {
            consecutive_failures: default_consecutive_failures(),
            failure_percentage: default_failure_percentage(),
            failure_percentage_min_requests: default_failure_percentage_min_requests(),
            window_ms: default_window_ms(),
            base_ejection_ms: default_base_ejection_ms(),
            max_ejection_ms: default_max_ejection_ms(),
            trial_timeout_ms: default_trial_timeout_ms(),
            latency_tau_ms: default_latency_tau_ms(),
            latency_prior_ms: default_latency_prior_ms(),
            receipt_half_life_ms: default_receipt_half_life_ms(),
            receipt_min_count: default_receipt_min_count(),
            receipt_min_delivery_percent: default_receipt_min_delivery_percent(),
            budget: BudgetConfig::defaults(),
        }
    }
}

/// Validated health settings.
#[derive(Clone, Debug, PartialEq)]
pub struct HealthPolicy {
    consecutive_failures: NonZeroU32,
    failure_percentage: u32,
    failure_percentage_min_requests: NonZeroU32,
    window: Duration,
    base_ejection: Duration,
    max_ejection: Duration,
    trial_timeout: Duration,
    latency_tau: Duration,
    latency_prior: Duration,
    receipt_half_life: Duration,
    receipt_min_count: u32,
    receipt_min_delivery_percent: u32,
    budget: BudgetPolicy,
}

impl HealthPolicy {
    /// The retry budget's policy (`[health.budget]`), for the budget kept beside the book.
    #[must_use]
    pub fn budget(&self) -> &BudgetPolicy {
        &self.budget
    }

    /// Validates a `[health]` section, naming the offending key.
    pub fn try_new(config: &HealthConfig) -> Result<HealthPolicy, ConfigError> {
        let at_least_one = |key: &str, value: u32| {
            NonZeroU32::new(value)
                .ok_or_else(|| ConfigError::invalid(format!("health.{key}"), "must be at least 1"))
        };
        let consecutive_failures =
            at_least_one("consecutive_failures", config.consecutive_failures)?;
        let failure_percentage_min_requests = at_least_one(
            "failure_percentage_min_requests",
            config.failure_percentage_min_requests,
        )?;
        let percent = |key: &str, value: u32, min: u32| {
            if (min..=100).contains(&value) {
                Ok(value)
            } else {
                Err(ConfigError::invalid(
                    format!("health.{key}"),
                    format!("must be between {min} and 100"),
                ))
            }
        };
        let failure_percentage = percent("failure_percentage", config.failure_percentage, 1)?;
        let receipt_min_delivery_percent =
            percent("receipt_min_delivery_percent", config.receipt_min_delivery_percent, 0)?;
        let in_range = |key: &str, value: u64, min: u64, max: u64| {
            if (min..=max).contains(&value) {
                Ok(Duration::from_millis(value))
            } else {
                Err(ConfigError::invalid(
                    format!("health.{key}"),
                    format!("must be between {min} and {max}"),
                ))
            }
        };
        let day = MAX_EJECTION_LIMIT_MS;
        let base_ejection = in_range("base_ejection_ms", config.base_ejection_ms, 1, day)?;
        let max_ejection = in_range("max_ejection_ms", config.max_ejection_ms, 1, day)?;
        let trial_timeout =
            in_range("trial_timeout_ms", config.trial_timeout_ms, 1, MAX_TRIAL_TIMEOUT_MS)?;
        let window = in_range("window_ms", config.window_ms, 600, 3_600_000)?;
        let latency_tau = in_range("latency_tau_ms", config.latency_tau_ms, 1, 3_600_000)?;
        let latency_prior = in_range("latency_prior_ms", config.latency_prior_ms, 1, 60_000)?;
        let receipt_half_life =
            in_range("receipt_half_life_ms", config.receipt_half_life_ms, 1_000, day)?;
        if max_ejection < base_ejection {
            return Err(ConfigError::invalid(
                "health.max_ejection_ms",
                format!("must be at least base_ejection_ms ({})", config.base_ejection_ms),
            ));
        }
        Ok(HealthPolicy {
            consecutive_failures,
            failure_percentage,
            failure_percentage_min_requests,
            window,
            base_ejection,
            max_ejection,
            trial_timeout,
            latency_tau,
            latency_prior,
            receipt_half_life,
            receipt_min_count: config.receipt_min_count,
            receipt_min_delivery_percent,
            budget: BudgetPolicy::try_new(&config.budget)?,
        })
    }

    /// Provider-fault failures in a row that eject a key.
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

    /// Length of the sliding window.
    #[must_use]
    pub fn window(&self) -> Duration {
        self.window
    }

    /// Accept latency assumed for a key without samples.
    #[must_use]
    pub fn latency_prior(&self) -> Duration {
        self.latency_prior
    }

    fn ejection_for(&self, times_ejected: u32) -> Duration {
        self.base_ejection.saturating_mul(times_ejected).min(self.max_ejection)
    }

    fn bucket_width(&self) -> Duration {
        self.window / WINDOW_BUCKETS as u32
    }
}

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
    fn severity(&self) -> u8 {
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
    /// Receipts said too few accepted messages were delivered.
    Undelivered,
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
    /// Share of accepted messages that receipts say arrived, with a prior for few receipts.
    pub delivery_rate: f64,
    /// Peak-EWMA accept latency (the prior when there are no samples).
    pub latency: Duration,
    /// Whether `latency` is the prior: the key has never had a sample.
    pub is_latency_prior: bool,
    /// Attempts in the window that counted toward the success rate.
    pub requests: u32,
    /// Latency samples in the window.
    pub latency_samples: u32,
}

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
    /// Receipts, after decay: delivered.
    pub delivered: f64,
    /// Receipts, after decay: not delivered for a provider-side reason.
    pub undelivered: f64,
    /// The estimates ranking uses.
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
    /// The operator disabled the provider since the plan was made.
    Disabled,
    /// The key is on probation and its one trial is already running.
    TrialInFlight,
}

/// An ejection in force or awaiting its probation trial.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Ejection {
    until: Instant,
    cause: EjectionCause,
    /// Expiry of the lease held by the running probation trial.
    trial_lease: Option<Instant>,
    /// When the last early trial started ([`HealthBook::claim_early_trial`]).
    early_trial: Option<Instant>,
}

/// One time slice of the window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Bucket {
    /// Which slice this is, counted from the key's origin, from 1; 0 means never used.
    epoch: u64,
    successes: u32,
    failures: u32,
    latency: [u32; LATENCY_BOUNDS_MS.len() + 1],
}

/// Sums over the buckets still inside the window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Totals {
    successes: u32,
    failures: u32,
    latency: [u32; LATENCY_BOUNDS_MS.len() + 1],
}

impl Totals {
    fn requests(&self) -> u32 {
        self.successes.saturating_add(self.failures)
    }

    fn latency_samples(&self) -> u32 {
        self.latency.iter().fold(0u32, |sum, count| sum.saturating_add(*count))
    }

    /// The upper bound of the histogram bucket holding the `quantile` sample.
    fn latency_quantile(&self, quantile: f64) -> Option<Duration> {
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
struct Window {
    origin: Option<Instant>,
    buckets: [Bucket; WINDOW_BUCKETS],
}

impl Window {
    fn epoch(&self, width: Duration, now: Instant) -> u64 {
        let Some(origin) = self.origin else { return 1 };
        let elapsed = now.saturating_duration_since(origin).as_nanos();
        u64::try_from(elapsed / width.as_nanos().max(1)).unwrap_or(u64::MAX - 1) + 1
    }

    fn bucket_mut(&mut self, width: Duration, now: Instant) -> &mut Bucket {
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

    fn totals(&self, width: Duration, now: Instant) -> Totals {
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

    fn record_latency(&mut self, width: Duration, latency: Duration, now: Instant) {
        let millis = latency.as_millis();
        let index = LATENCY_BOUNDS_MS
            .iter()
            .position(|bound| millis <= u128::from(*bound))
            .unwrap_or(LATENCY_BOUNDS_MS.len());
        let bucket = self.bucket_mut(width, now);
        bucket.latency[index] = bucket.latency[index].saturating_add(1);
    }

    /// Forgets successes and failures (not latency): a fresh start after ejection or recovery.
    fn clear_counts(&mut self) {
        for bucket in &mut self.buckets {
            bucket.successes = 0;
            bucket.failures = 0;
        }
    }
}

/// Peak-EWMA accept latency (see the module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct PeakEwma {
    estimate_ms: f64,
    samples: u32,
    updated: Option<Instant>,
}

impl PeakEwma {
    fn get(&self, prior: Duration) -> Duration {
        if self.samples == 0 {
            prior
        } else {
            Duration::from_secs_f64(self.estimate_ms.max(0.0) / 1_000.0)
        }
    }

    fn observe(&mut self, sample: Duration, policy: &HealthPolicy, now: Instant) {
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

/// Delivery receipts as exponentially decayed counts, so old receipts fade.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Receipts {
    delivered: f64,
    undelivered: f64,
    updated: Option<Instant>,
}

impl Receipts {
    fn at(&self, half_life: Duration, now: Instant) -> (f64, f64) {
        let elapsed = self
            .updated
            .map_or(0.0, |updated| now.saturating_duration_since(updated).as_secs_f64());
        let factor = 0.5f64.powf(elapsed / half_life.as_secs_f64());
        (self.delivered * factor, self.undelivered * factor)
    }

    fn add(&mut self, is_delivered: bool, half_life: Duration, now: Instant) {
        let (delivered, undelivered) = self.at(half_life, now);
        self.delivered = delivered + if is_delivered { 1.0 } else { 0.0 };
        self.undelivered = undelivered + if is_delivered { 0.0 } else { 1.0 };
        self.updated = Some(self.updated.map_or(now, |updated| updated.max(now)));
    }
}

/// A success rate over roughly the last `cap` attempts, however old, held with a weight (how
/// many attempts it stands for) that fades with time: what was last seen stays the estimate
/// until new attempts replace it, but counts for less the older it is.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Fading {
    rate: f64,
    weight: f64,
    updated: Option<Instant>,
}

impl Fading {
    fn at(&self, half_life: Duration, now: Instant) -> (f64, f64) {
        let elapsed = self
            .updated
            .map_or(0.0, |updated| now.saturating_duration_since(updated).as_secs_f64());
        (self.rate, self.weight * 0.5f64.powf(elapsed / half_life.as_secs_f64()))
    }

    fn add(&mut self, is_good: bool, cap: f64, half_life: Duration, now: Instant) {
        let (rate, weight) = self.at(half_life, now);
        let sample = if is_good { 1.0 } else { 0.0 };
        self.rate = (rate * weight + sample) / (weight + 1.0);
        self.weight = (weight + 1.0).min(cap);
        self.updated = Some(self.updated.map_or(now, |updated| updated.max(now)));
    }
}

/// Everything remembered about one key.
#[derive(Clone, Debug, Default, PartialEq)]
struct KeyHealth {
    consecutive_failures: u32,
    times_ejected: u32,
    ejection: Option<Ejection>,
    /// When the last ejection ended, to forgive past ejections for healthy time.
    recovered_at: Option<Instant>,
    window: Window,
    latency: PeakEwma,
    receipts: Receipts,
    /// The latest attempts, their weight halving every window bucket.
    recent: Fading,
}

impl KeyHealth {
    fn status(&self, rate_limited_until: Option<Instant>, now: Instant) -> HealthStatus {
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
    fn probation(&mut self, now: Instant) -> Option<&mut Ejection> {
        self.ejection.as_mut().filter(|ejection| now >= ejection.until)
    }

    /// The key's estimates, given its prior: [`PRIOR_REQUESTS`] attempts at `prior` (its
    /// provider's pooled rate, see [`HealthBook::prior`]).
    fn estimate(&self, policy: &HealthPolicy, prior: f64, now: Instant) -> KeyEstimate {
        let totals = self.window.totals(policy.bucket_width(), now);
        let counted = f64::from(totals.requests()) + PRIOR_REQUESTS;
        let success_rate = (f64::from(totals.successes) + PRIOR_REQUESTS * prior) / counted;
        let (window_lower, window_upper) = wilson_interval(success_rate, counted);
        let (rate, weight) = self.recent.at(policy.bucket_width(), now);
        let recent_success_rate =
            (rate * weight + PRIOR_REQUESTS * prior) / (weight + PRIOR_REQUESTS);
        let (_, recent_upper) = wilson_interval(recent_success_rate, weight + PRIOR_REQUESTS);
        let (delivered, undelivered) = self.receipts.at(policy.receipt_half_life, now);
        // One delivered receipt as the prior: no news is taken as good news, and a handful of
        // undelivered receipts already weigh.
        let delivery_rate = (delivered + 1.0) / (delivered + undelivered + 1.0);
        KeyEstimate {
            success_rate,
            recent_success_rate,
            provider_success_rate: prior,
            success_lower: window_lower.min(recent_success_rate),
            success_upper: window_upper.min(recent_upper),
            delivery_rate,
            latency: self.latency.get(policy.latency_prior),
            is_latency_prior: self.latency.samples == 0,
            requests: totals.requests(),
            latency_samples: totals.latency_samples(),
        }
    }

    fn on_success(&mut self, policy: &HealthPolicy, now: Instant) {
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

    fn on_provider_fault(&mut self, policy: &HealthPolicy, now: Instant) {
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

    fn on_receipt(&mut self, is_delivered: bool, policy: &HealthPolicy, now: Instant) {
        self.receipts.add(is_delivered, policy.receipt_half_life, now);
        if self.ejection.is_some() || is_delivered || policy.receipt_min_delivery_percent == 0 {
            return;
        }
        let (delivered, undelivered) = self.receipts.at(policy.receipt_half_life, now);
        let total = delivered + undelivered;
        let is_sustained = total >= f64::from(policy.receipt_min_count.max(1));
        if is_sustained
            && delivered * 100.0 < f64::from(policy.receipt_min_delivery_percent) * total
        {
            self.eject(policy, EjectionCause::Undelivered, now);
        }
    }

    fn eject(&mut self, policy: &HealthPolicy, cause: EjectionCause, now: Instant) {
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
    fn count(&mut self, is_success: bool, policy: &HealthPolicy, now: Instant) {
        let bucket = self.window.bucket_mut(policy.bucket_width(), now);
        if is_success {
            bucket.successes = bucket.successes.saturating_add(1);
        } else {
            bucket.failures = bucket.failures.saturating_add(1);
        }
        self.recent.add(is_success, FADING_ATTEMPTS, policy.bucket_width(), now);
    }

    /// A fresh start after ejection or recovery: forgets attempts and receipts, not latency.
    fn clear_counts(&mut self) {
        self.window.clear_counts();
        self.recent = Fading::default();
        self.receipts = Receipts::default();
    }

    fn release_trial(&mut self, now: Instant) {
        if let Some(probation) = self.probation(now) {
            probation.trial_lease = None;
        }
    }
}

/// The Wilson score interval around a share `rate` observed over `count` attempts, at
/// [`CONFIDENCE_Z`] standard deviations. Unlike the normal approximation it stays inside [0, 1]
/// and is wide for few samples even when every one of them succeeded.
fn wilson_interval(rate: f64, count: f64) -> (f64, f64) {
    let z = CONFIDENCE_Z;
    let z2 = z * z;
    let denominator = 1.0 + z2 / count;
    let centre = rate + z2 / (2.0 * count);
    let spread = z * (rate * (1.0 - rate) / count + z2 / (4.0 * count * count)).max(0.0).sqrt();
    let lower = ((centre - spread) / denominator).clamp(0.0, 1.0);
    let upper = ((centre + spread) / denominator).clamp(0.0, 1.0);
    (lower, upper)
}

/// Provider-wide state: the operator's switch and a rate limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct ProviderState {
    operator: OperatorState,
    rate_limited_until: Option<Instant>,
    /// When the last exploration attempt started.
    explored_at: Option<Instant>,
}

/// `now + duration`; durations here are bounded by validated config, so the fallback (no wait
/// at all) is only reachable with an `Instant` at the end of the platform's range.
fn later(now: Instant, duration: Duration) -> Instant {
    now.checked_add(duration).unwrap_or(now)
}

/// Observed health of every key and the operators' switches. One per running
/// config; the server keeps it behind a lock and passes `now` in.
#[derive(Clone, Debug, PartialEq)]
pub struct HealthBook {
    policy: HealthPolicy,
    keys: BTreeMap<HealthKey, KeyHealth>,
    providers: BTreeMap<ProviderId, ProviderState>,
    pools: BTreeMap<ProviderId, Fading>,
}

impl HealthBook {
    /// An empty book: every key healthy, every provider enabled.
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
            let pool = self.pools.entry(key.provider.clone()).or_default();
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
                    let provider = self.providers.entry(key.provider.clone()).or_default();
                    provider.rate_limited_until =
                        Some(provider.rate_limited_until.map_or(until, |known| known.max(until)));
                }
                _ => health.on_provider_fault(policy, now),
            },
        }
    }

    /// Takes in a delivery receipt for a message `key`'s provider accepted. Number-level reasons
    /// (the recipient opted out, the number does not exist) say nothing about the provider.
    pub fn record_receipt(&mut self, key: &HealthKey, delivery: Delivery, now: Instant) {
        let is_delivered = match delivery {
            Delivery::Delivered => true,
            Delivery::Undelivered(class) if class.is_provider_fault() => false,
            Delivery::Undelivered(_) => return,
        };
        let policy = &self.policy;
        self.keys.entry(key.clone()).or_default().on_receipt(is_delivered, policy, now);
    }

    /// Called by dispatch right before sending to `candidate`: whether health lets it go.
    ///
    /// Refuses when the operator has disabled the provider since the plan was made, or when the
    /// key is on probation and its one trial is already running. A fail-open candidate is never
    /// refused for health: the planner chose it because nothing else is left. Nothing is claimed
    /// here: the returned [`HealthClaim`] is handed to [`HealthBook::claim`] once every other
    /// gate (the retry budget, for a speculative send) has let the attempt go, so a refusal
    /// anywhere claims nothing. See [`crate::attempt::begin_attempt`], which does both.
    pub fn admit(
        &mut self,
        candidate: &Candidate,
        now: Instant,
    ) -> Result<HealthClaim, HealthRefusal> {
        let key = &candidate.key;
        if self.operator_state(key.provider()) == OperatorState::Disabled {
            return Err(HealthRefusal::Disabled);
        }
        let claims_trial = match self.keys.get_mut(key).and_then(|health| health.probation(now)) {
            None => false,
            Some(probation) => match probation.trial_lease {
                Some(lease) if now < lease => {
                    if !candidate.is_fail_open {
                        return Err(HealthRefusal::TrialInFlight);
                    }
                    false
                }
                // No trial, or its lease ran out unanswered: this attempt is the trial.
                _ => true,
            },
        };
        Ok(HealthClaim { key: key.clone(), claims_trial, is_exploration: candidate.is_exploration })
    }

    /// Makes what [`HealthBook::admit`] found true: claims the probation trial, and for an
    /// exploration starts the provider's wait before the next one ([`HealthBook::may_explore`]).
    pub fn claim(&mut self, claim: HealthClaim, now: Instant) {
        let HealthClaim { key, claims_trial, is_exploration } = claim;
        if is_exploration {
            self.providers.entry(key.provider.clone()).or_default().explored_at = Some(now);
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

    /// Sets the operator's switch for a provider.
    pub fn set_operator_state(&mut self, provider: &ProviderId, state: OperatorState) {
        self.providers.entry(provider.clone()).or_default().operator = state;
    }

    /// The operator's switch for a provider (enabled unless set otherwise).
    #[must_use]
    pub fn operator_state(&self, provider: &ProviderId) -> OperatorState {
        self.providers.get(provider).map(|state| state.operator).unwrap_or_default()
    }

    fn rate_limited_until(&self, provider: &ProviderId) -> Option<Instant> {
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
        match self.keys.get(key) {
            Some(health) => health.estimate(&self.policy, prior, now),
            None => KeyHealth::default().estimate(&self.policy, prior, now),
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

    /// Every key the book has state for, in key order. Keys never seen are healthy and do not
    /// appear.
    #[must_use]
    pub fn snapshot(&self, now: Instant) -> Vec<HealthSnapshot> {
        let width = self.policy.bucket_width();
        self.keys
            .iter()
            .map(|(key, health)| {
                let totals = health.window.totals(width, now);
                let (delivered, undelivered) =
                    health.receipts.at(self.policy.receipt_half_life, now);
                HealthSnapshot {
                    key: key.clone(),
                    status: health.status(self.rate_limited_until(key.provider()), now),
                    operator: self.operator_state(key.provider()),
                    consecutive_failures: health.consecutive_failures,
                    ejection_cause: health.ejection.map(|ejection| ejection.cause),
                    successes: totals.successes,
                    failures: totals.failures,
                    delivered,
                    undelivered,
                    estimate: health.estimate(&self.policy, self.prior(key.provider(), now), now),
                }
            })
            .collect()
    }

    /// Providers with a provider-wide state (an operator switch set, a rate limit), in id order.
    #[must_use]
    pub fn providers(&self, now: Instant) -> Vec<ProviderSnapshot> {
        self.providers
            .iter()
            .map(|(provider, state)| ProviderSnapshot {
                provider: provider.clone(),
                operator: state.operator,
                rate_limited_until: state.rate_limited_until.filter(|until| now < *until),
            })
            .collect()
    }

    /// A book for a reloaded config: the new policy, and the health, switches and rate limits of
    /// the providers still configured (matched by id, every key of theirs). Ejections in force
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

#[cfg(test)]
mod tests;
