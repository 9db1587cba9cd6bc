//! Why a provider of the matched rule is not a candidate ([`ExclusionReason`]). Channel support
//! and the operator's switch are checked before health: they are fact and intent, and a
//! provider excluded for either is never picked to fail open; a health exclusion is a guess,
//! and the one that ends soonest is what the planner fails open to.

use std::time::Instant;

use crate::domain::ProviderId;
use crate::health::{HealthBook, HealthKey, HealthStatus};
use crate::query::RouteQuery;
use crate::route::RouteTable;
use crate::switch::{OperatorState, OperatorSwitches};

/// Why a provider of the matched rule is not a candidate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExclusionReason {
    /// The provider cannot carry the requested channel.
    ChannelUnsupported,
    /// The operator disabled it.
    Disabled,
    /// The operator is draining it.
    Draining,
    /// Ejected after failures (consecutive, percentage or undelivered).
    Ejected {
        /// When probation starts.
        until: Instant,
    },
    /// The provider asked us to wait.
    RateLimited {
        /// When it may be used again.
        until: Instant,
    },
    /// On probation, and its one trial is already running.
    TrialInFlight,
}

impl ExclusionReason {
    /// Lower-case label for explain output and metrics.
    #[must_use]
    pub fn as_str(&self) -> &'static str {
        match self {
            ExclusionReason::ChannelUnsupported => "channel_unsupported",
            ExclusionReason::Disabled => "disabled",
            ExclusionReason::Draining => "draining",
            ExclusionReason::Ejected { .. } => "ejected",
            ExclusionReason::RateLimited { .. } => "rate_limited",
            ExclusionReason::TrialInFlight => "trial_in_flight",
        }
    }

    /// Whether the exclusion comes from observed health, and so may be overridden to fail open.
    #[must_use]
    pub fn is_health(&self) -> bool {
        matches!(
            self,
            ExclusionReason::Ejected { .. }
                | ExclusionReason::RateLimited { .. }
                | ExclusionReason::TrialInFlight
        )
    }
}

/// A provider left out of the plan, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exclusion {
    /// Which provider.
    pub provider: ProviderId,
    /// Why.
    pub reason: ExclusionReason,
}

/// `Ok(is_trial)` for a candidate, or why it is excluded. Operator intent and channel support are
/// checked before health, so a provider that is both disabled and ejected is reported disabled
/// (and can never be picked to fail open).
pub(super) fn judge(
    table: &RouteTable,
    health: &HealthBook,
    switches: &OperatorSwitches,
    key: &HealthKey,
    now: Instant,
) -> Result<bool, ExclusionReason> {
    if !table.catalog().supports(key.provider(), key.channel()) {
        return Err(ExclusionReason::ChannelUnsupported);
    }
    match switches.state(key.provider()) {
        OperatorState::Enabled => {}
        OperatorState::Draining => return Err(ExclusionReason::Draining),
        OperatorState::Disabled => return Err(ExclusionReason::Disabled),
    }
    match health_exclusion(health, key, now) {
        Some(reason) => Err(reason),
        None => Ok(matches!(health.status(key, now), HealthStatus::Probation { .. })),
    }
}

/// Why health would leave `key` out of a plan at `now`, if it would (ejected, resting after a
/// rate limit, or holding its probation trial): what a caller that sets a fail-open candidate
/// aside reports instead.
#[must_use]
pub fn health_exclusion(
    health: &HealthBook,
    key: &HealthKey,
    now: Instant,
) -> Option<ExclusionReason> {
    match health.status(key, now) {
        HealthStatus::Healthy | HealthStatus::Probation { trial_in_flight: false } => None,
        HealthStatus::Probation { trial_in_flight: true } => Some(ExclusionReason::TrialInFlight),
        HealthStatus::Ejected { until, .. } => Some(ExclusionReason::Ejected { until }),
        HealthStatus::RateLimited { until } => Some(ExclusionReason::RateLimited { until }),
    }
}

/// Position in `excluded` of the health exclusion that ends soonest; the earliest configured
/// wins a tie. A running trial ends at the latest when its lease does.
pub(super) fn soonest_health_exclusion(
    health: &HealthBook,
    query: &RouteQuery,
    excluded: &[Exclusion],
    now: Instant,
) -> Option<usize> {
    excluded
        .iter()
        .enumerate()
        .filter_map(|(position, exclusion)| {
            let ends = match exclusion.reason {
                ExclusionReason::Ejected { until } | ExclusionReason::RateLimited { until } => {
                    until
                }
                ExclusionReason::TrialInFlight => {
                    let key =
                        HealthKey::new(exclusion.provider.clone(), query.country, query.channel);
                    health.trial_lease(&key, now).unwrap_or(now)
                }
                ExclusionReason::ChannelUnsupported
                | ExclusionReason::Disabled
                | ExclusionReason::Draining => {
                    return None;
                }
            };
            Some((ends, position))
        })
        .min()
        .map(|(_, position)| position)
}
