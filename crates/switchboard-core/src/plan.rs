//! Planning: the ordered list of candidates for one delivery, and why the others were left out.
//!
//! Selection and use are separate steps (pingora's `selection/mod.rs`): [`plan`] only decides
//! which providers may be tried and in what order; dispatch decides how to spend the deadline on
//! them (cascade, race, hedge) and calls [`HealthBook::begin_attempt`] right before each send.
//! Candidates keep the rule's configured order, which is the operator's preference. A probation
//! trial keeps its place too: placed last it would run only when every healthy provider had
//! failed, so a recovered primary would never get its traffic back (the flapping-free "revert to
//! primary" that Airlock's failover gateway needs a timer for). At most one delivery per ejection
//! period pays for a failed trial, and dispatch may hedge a candidate marked `is_trial`.
//!
//! # Why fail open?
//!
//! Health is a guess from recent failures; a user waiting for a code needs a send. If health has
//! excluded every enabled provider that can carry the channel, the plan still offers the one
//! whose exclusion ends soonest, marked [`Candidate::is_fail_open`]. An empty plan would turn a
//! partial or already-healed outage into a certain one: LiteLLM's health-check routing returns
//! every deployment when all are filtered out, LiteLLM users report 503s when every deployment
//! sits in cooldown (BerriAI/litellm#3646), and Envoy ejects at most `max_ejection_percent` of
//! hosts. We never fail open to a provider the operator disabled or drained, or to one that cannot
//! carry the channel: those exclusions are intent and fact, not guesses.
//!
//! Every provider of the matched rule ends up exactly once in either `candidates` or `excluded`.

use std::time::Instant;

use crate::domain::{Channel, Country, ProviderId};
use crate::health::{HealthBook, HealthStatus, OperatorState};
use crate::route::{RouteTable, RuleId};

/// What is being routed. Later versions add purpose and number prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RouteQuery {
    /// The destination's country.
    pub country: Country,
    /// SMS or voice.
    pub channel: Channel,
}

/// A provider dispatch may try.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// Which provider.
    pub provider: ProviderId,
    /// On probation: this attempt, if it runs, is the single trial that decides its health.
    pub is_trial: bool,
    /// Excluded by health but offered anyway because nothing else is left.
    pub is_fail_open: bool,
}

/// Why a provider of the matched rule is not a candidate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExclusionReason {
    /// The provider cannot carry the requested channel.
    ChannelUnsupported,
    /// The operator disabled it.
    Disabled,
    /// The operator is draining it.
    Draining,
    /// Ejected after consecutive failures.
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

/// The providers to try for one delivery, best first, and the ones left out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The rule that matched; `None` when no rule covers the query (nothing to try).
    pub rule: Option<RuleId>,
    /// Providers to try, in configured order; never a repeat, never a disabled or drained one.
    pub candidates: Vec<Candidate>,
    /// The rule's other providers, in configured order.
    pub excluded: Vec<Exclusion>,
}

/// Plans one delivery: the matched rule's providers, filtered by channel, operator switch and
/// health at `now`, failing open when health alone would leave nothing.
#[must_use]
pub fn plan(table: &RouteTable, health: &HealthBook, query: &RouteQuery, now: Instant) -> Plan {
    let Some(found) = table.find(query.country, query.channel) else {
        return Plan { rule: None, candidates: Vec::new(), excluded: Vec::new() };
    };
    let mut candidates = Vec::new();
    let mut excluded = Vec::new();
    for provider in found.rule.providers() {
        match judge(table, health, provider, query.channel, now) {
            Ok(is_trial) => candidates.push(Candidate {
                provider: provider.clone(),
                is_trial,
                is_fail_open: false,
            }),
            Err(reason) => excluded.push(Exclusion { provider: provider.clone(), reason }),
        }
    }
    if candidates.is_empty() {
        if let Some(position) = soonest_health_exclusion(health, &excluded, now) {
            let exclusion = excluded.remove(position);
            candidates.push(Candidate {
                provider: exclusion.provider,
                is_trial: false,
                is_fail_open: true,
            });
        }
    }
    Plan { rule: Some(found.rule.id().clone()), candidates, excluded }
}

/// `Ok(is_trial)` for a candidate, or why it is excluded. Operator intent and channel support are
/// checked before health, so a provider that is both disabled and ejected is reported disabled
/// (and can never be picked to fail open).
fn judge(
    table: &RouteTable,
    health: &HealthBook,
    provider: &ProviderId,
    channel: Channel,
    now: Instant,
) -> Result<bool, ExclusionReason> {
    if !table.catalog().supports(provider, channel) {
        return Err(ExclusionReason::ChannelUnsupported);
    }
    match health.operator_state(provider) {
        OperatorState::Enabled => {}
        OperatorState::Draining => return Err(ExclusionReason::Draining),
        OperatorState::Disabled => return Err(ExclusionReason::Disabled),
    }
    match health.status(provider, now) {
        HealthStatus::Healthy => Ok(false),
        HealthStatus::Probation { trial_in_flight: false } => Ok(true),
        HealthStatus::Probation { trial_in_flight: true } => Err(ExclusionReason::TrialInFlight),
        HealthStatus::Ejected { until, .. } => Err(ExclusionReason::Ejected { until }),
        HealthStatus::RateLimited { until } => Err(ExclusionReason::RateLimited { until }),
    }
}

/// Position in `excluded` of the health exclusion that ends soonest; the earliest configured
/// wins a tie. A running trial ends at the latest when its lease does.
fn soonest_health_exclusion(
    health: &HealthBook,
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
                    health.trial_lease(&exclusion.provider, now).unwrap_or(now)
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

#[cfg(test)]
mod tests;
