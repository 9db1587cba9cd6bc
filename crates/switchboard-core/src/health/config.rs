//! The `[health]` section as written ([`HealthConfig`]) and validated ([`HealthPolicy`]), with
//! the limits validation enforces. The retry budget's `[health.budget]` is parsed here, as part
//! of the section, but validated and kept by `budget.rs`.

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::budget::{BudgetConfig, BudgetPolicy};
use crate::config::ConfigError;

/// Longest ejection an operator may configure; also bounds every `Instant` addition here.
const MAX_EJECTION_LIMIT_MS: u64 = 24 * 60 * 60 * 1000;

/// Longest trial lease an operator may configure.
const MAX_TRIAL_TIMEOUT_MS: u64 = 10 * 60 * 1000;

/// Time buckets per window: a window slides in steps of a sixth of its length.
pub(super) const WINDOW_BUCKETS: usize = 6;

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
    /// Final receipts (after decay) needed before they can eject a key; half as many already
    /// demote it (default 10).
    #[serde(default = "default_receipt_min_count")]
    pub receipt_min_count: u32,
    /// The absolute floor: delivered share of final receipts, of every class, in percent, below
    /// which a key with no peer to compare with is a route problem; 0 turns receipt verdicts off
    /// (default 50). Receipts feed the scored ranking either way.
    #[serde(default = "default_receipt_min_delivery_percent")]
    pub receipt_min_delivery_percent: u32,
    /// How much worse than the best peer (another provider to the same country on the same
    /// channel) a key's delivered share must be to be a route problem, in percent of the peer's
    /// share (default 25: a peer delivering 98 % makes anything below 73.5 % a route problem).
    #[serde(default = "default_receipt_peer_margin_percent")]
    pub receipt_peer_margin_percent: u32,
    /// How long after acceptance a message without a final receipt counts as "unknown", in
    /// milliseconds (default 900000: carriers report within minutes).
    #[serde(default = "default_receipt_grace_ms")]
    pub receipt_grace_ms: u64,
    /// Share of accepted messages, in percent, that must get a final receipt; below it the key
    /// is flagged `receipts_stopped` (metric, explain, admin API), never ejected (default 50).
    #[serde(default = "default_receipt_min_coverage_percent")]
    pub receipt_min_coverage_percent: u32,
    /// Half-life of conversion counts (codes entered, or not, in Okta), in milliseconds
    /// (default 3600000).
    #[serde(default = "default_conversion_half_life_ms")]
    pub conversion_half_life_ms: u64,
    /// Conversions (after decay) needed before they can eject a key; half as many already
    /// demote it (default 20). Users abandon sign-ins: keep this well above a handful.
    #[serde(default = "default_conversion_min_count")]
    pub conversion_min_count: u32,
    /// How much worse than the best peer a key's conversion rate must be to be a route problem,
    /// in percent of the peer's rate (default 35).
    #[serde(default = "default_conversion_peer_margin_percent")]
    pub conversion_peer_margin_percent: u32,
    /// The absolute floor for a key with no peer, in percent; 0 (the default) compares with
    /// peers only, since a country's abandonment rate is not the provider's doing.
    #[serde(default)]
    pub conversion_min_percent: u32,
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
    10
}

fn default_receipt_min_delivery_percent() -> u32 {
    50
}

fn default_receipt_peer_margin_percent() -> u32 {
    25
}

fn default_receipt_grace_ms() -> u64 {
    900_000
}

fn default_receipt_min_coverage_percent() -> u32 {
    50
}

fn default_conversion_half_life_ms() -> u64 {
    3_600_000
}

fn default_conversion_min_count() -> u32 {
    20
}

fn default_conversion_peer_margin_percent() -> u32 {
    35
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
            receipt_peer_margin_percent: default_receipt_peer_margin_percent(),
            receipt_grace_ms: default_receipt_grace_ms(),
            receipt_min_coverage_percent: default_receipt_min_coverage_percent(),
            conversion_half_life_ms: default_conversion_half_life_ms(),
            conversion_min_count: default_conversion_min_count(),
            conversion_peer_margin_percent: default_conversion_peer_margin_percent(),
            conversion_min_percent: 0,
            budget: BudgetConfig::defaults(),
        }
    }
}

/// Validated health settings.
#[derive(Clone, Debug, PartialEq)]
pub struct HealthPolicy {
    pub(super) consecutive_failures: NonZeroU32,
    pub(super) failure_percentage: u32,
    pub(super) failure_percentage_min_requests: NonZeroU32,
    pub(super) window: Duration,
    pub(super) base_ejection: Duration,
    pub(super) max_ejection: Duration,
    pub(super) trial_timeout: Duration,
    pub(super) latency_tau: Duration,
    pub(super) latency_prior: Duration,
    pub(super) receipt_half_life: Duration,
    pub(super) receipt_min_count: u32,
    pub(super) receipt_min_delivery_percent: u32,
    pub(super) receipt_peer_margin_percent: u32,
    pub(super) receipt_grace: Duration,
    pub(super) receipt_min_coverage_percent: u32,
    pub(super) conversion_half_life: Duration,
    pub(super) conversion_min_count: u32,
    pub(super) conversion_peer_margin_percent: u32,
    pub(super) conversion_min_percent: u32,
    pub(super) budget: BudgetPolicy,
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
        let receipt_peer_margin_percent =
            percent("receipt_peer_margin_percent", config.receipt_peer_margin_percent, 1)?;
        let receipt_min_coverage_percent =
            percent("receipt_min_coverage_percent", config.receipt_min_coverage_percent, 0)?;
        let conversion_peer_margin_percent =
            percent("conversion_peer_margin_percent", config.conversion_peer_margin_percent, 1)?;
        let conversion_min_percent =
            percent("conversion_min_percent", config.conversion_min_percent, 0)?;
        let receipt_min_count = at_least_one("receipt_min_count", config.receipt_min_count)?.get();
        let conversion_min_count =
            at_least_one("conversion_min_count", config.conversion_min_count)?.get();
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
        let receipt_grace = in_range("receipt_grace_ms", config.receipt_grace_ms, 1_000, day)?;
        let conversion_half_life =
            in_range("conversion_half_life_ms", config.conversion_half_life_ms, 1_000, 7 * day)?;
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
            receipt_min_count,
            receipt_min_delivery_percent,
            receipt_peer_margin_percent,
            receipt_grace,
            receipt_min_coverage_percent,
            conversion_half_life,
            conversion_min_count,
            conversion_peer_margin_percent,
            conversion_min_percent,
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

    /// How long after acceptance a message without a final receipt counts as unknown.
    #[must_use]
    pub fn receipt_grace(&self) -> Duration {
        self.receipt_grace
    }

    pub(super) fn ejection_for(&self, times_ejected: u32) -> Duration {
        self.base_ejection.saturating_mul(times_ejected).min(self.max_ejection)
    }

    pub(super) fn bucket_width(&self) -> Duration {
        self.window / WINDOW_BUCKETS as u32
    }
}

/// `now + duration`; durations here are bounded by validated config, so the fallback (no wait
/// at all) is only reachable with an `Instant` at the end of the platform's range.
pub(super) fn later(now: Instant, duration: Duration) -> Instant {
    now.checked_add(duration).unwrap_or(now)
}
