//! Planning: the ranked list of candidates for one delivery, why each sits where it does, and
//! why the others were left out.
//!
//! Selection and use are separate steps (pingora's `selection/mod.rs`): [`plan`] only decides
//! which providers may be tried and in what order, and hands dispatch the rule's strategy
//! (cascade, hedge with its delay, race with its width); dispatch decides how to spend the
//! deadline on them and calls [`crate::attempt::begin_attempt`] right before each send.
//!
//! # Reading order
//!
//! - `exclusion.rs`: which of the matched rule's providers may not be planned, and why
//!   ([`ExclusionReason`]): channel, operator switch, then health.
//! - `score.rs`: how the others are scored and ordered ([`Score`], [`Candidate`]), and
//!   exploration.
//! - this file: [`plan`] itself, which puts the two together, fails open when it must, and
//!   resolves the rule's strategy for dispatch ([`Strategy`]).
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

mod exclusion;
mod score;

use std::time::{Duration, Instant};

use rand_core::RngCore;

pub use self::exclusion::{Exclusion, ExclusionReason, health_exclusion};
use self::exclusion::{judge, soonest_health_exclusion};
pub use self::score::{Candidate, RankNote, Score};
use self::score::{explore, score};
use crate::health::{HealthBook, HealthKey};
pub use crate::query::{MAX_NUMBER_DIGITS, NumberDigits, RouteQuery};
use crate::route::{HedgeDelay, Optimize, RouteTable, RuleId, StrategyPolicy};
use crate::switch::OperatorSwitches;

/// How dispatch should use the candidates, with its parameters resolved for this plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// One candidate at a time; the next only after a failure that allows failover.
    Cascade,
    /// Start the next candidate when the current one has not answered after `delay`; keep the
    /// first acceptance.
    Hedge {
        /// How long to wait for the current candidate before starting the next.
        delay: Duration,
        /// Whether `delay` was learned from the first candidate's latency (else configured).
        is_learned: bool,
    },
    /// Send to the first `width` candidates at once (at most the number of candidates).
    Race {
        /// How many to send to.
        width: usize,
    },
}

impl Strategy {
    /// Lower-case label for explain output and logs.
    #[must_use]
    pub fn as_str(&self) -> &'static str {
        match self {
            Strategy::Cascade => "cascade",
            Strategy::Hedge { .. } => "hedge",
            Strategy::Race { .. } => "race",
        }
    }
}

/// The providers to try for one delivery, best first, and the ones left out.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// The rule that matched; `None` when no rule covers the query (nothing to try).
    pub rule: Option<RuleId>,
    /// What the ranking favoured.
    pub optimize: Optimize,
    /// How dispatch should use the candidates.
    pub strategy: Strategy,
    /// Providers to try, best first; never a repeat, never a disabled or drained one.
    pub candidates: Vec<Candidate>,
    /// The rule's other providers, in configured order.
    pub excluded: Vec<Exclusion>,
}

/// Plans one delivery: the matched rule's providers, filtered by channel, operator switch and
/// health at `now`, ranked, failing open when health alone would leave nothing. Draws from `rng`
/// only to explore, so the same book, switches, query, `now` and RNG state give the same plan.
#[must_use]
pub fn plan(
    table: &RouteTable,
    health: &HealthBook,
    switches: &OperatorSwitches,
    query: &RouteQuery,
    now: Instant,
    rng: &mut impl RngCore,
) -> Plan {
    let Some(found) = table.find(query) else {
        return Plan {
            rule: None,
            optimize: Optimize::Priority,
            strategy: Strategy::Cascade,
            candidates: Vec::new(),
            excluded: Vec::new(),
        };
    };
    let rule = found.rule;
    // (configured position, key, is_trial, is_fail_open)
    let mut admitted: Vec<(usize, HealthKey, bool, bool)> = Vec::new();
    let mut excluded = Vec::new();
    for (position, provider) in rule.providers().iter().enumerate() {
        let key = HealthKey::new(provider.clone(), query.country, query.channel);
        match judge(table, health, switches, &key, now) {
            Ok(is_trial) => admitted.push((position, key, is_trial, false)),
            Err(reason) => excluded.push(Exclusion { provider: provider.clone(), reason }),
        }
    }
    if admitted.is_empty()
        && let Some(index) = soonest_health_exclusion(health, query, &excluded, now)
    {
        let exclusion = excluded.remove(index);
        let position = rule
            .providers()
            .iter()
            .position(|provider| *provider == exclusion.provider)
            .unwrap_or(0);
        let key = HealthKey::new(exclusion.provider, query.country, query.channel);
        admitted.push((position, key, false, true));
    }
    let mut candidates = score(table, health, rule, query, admitted, now);
    if rule.optimize().is_scored() {
        // Stable: equal scores keep the configured order.
        candidates.sort_by(|(_, a), (_, b)| b.score.total.total_cmp(&a.score.total));
    }
    let (mut candidates, demoted): (Vec<Candidate>, Vec<Candidate>) = candidates
        .into_iter()
        .map(|(_, candidate)| candidate)
        .partition(|candidate| !candidate.score.estimate.delivery.is_route_problem());
    // A route problem (receipts or conversions clearly worse than its peers') goes after every
    // provider that delivers, whatever `optimize` says: an operator's order is a preference
    // among providers that deliver.
    candidates.extend(demoted.into_iter().map(|mut candidate| {
        candidate.score.notes.push(RankNote::RouteProblem);
        candidate
    }));
    if let Some(avoid) = &query.avoid
        && candidates.len() > 1
        && let Some(index) = candidates.iter().position(|candidate| candidate.provider() == avoid)
    {
        let mut avoided = candidates.remove(index);
        avoided.score.notes.push(RankNote::Avoided);
        candidates.push(avoided);
    }
    explore(rule, query, health, now, &mut candidates, rng);
    let strategy = resolve_strategy(rule.strategy(), health, &candidates, now);
    Plan {
        rule: Some(rule.id().clone()),
        optimize: rule.optimize(),
        strategy,
        candidates,
        excluded,
    }
}

fn resolve_strategy(
    policy: StrategyPolicy,
    health: &HealthBook,
    candidates: &[Candidate],
    now: Instant,
) -> Strategy {
    match policy {
        StrategyPolicy::Cascade => Strategy::Cascade,
        StrategyPolicy::Race { width } => {
            Strategy::Race { width: (width as usize).min(candidates.len()).max(1) }
        }
        StrategyPolicy::Hedge(HedgeDelay::Fixed(delay)) => {
            Strategy::Hedge { delay, is_learned: false }
        }
        StrategyPolicy::Hedge(HedgeDelay::Learned { quantile, floor, ceiling }) => {
            let learned = candidates.first().map_or(ceiling, |first| {
                health
                    .latency_quantile(&first.key, quantile, now)
                    .unwrap_or(first.score.estimate.latency)
            });
            Strategy::Hedge { delay: learned.clamp(floor, ceiling), is_learned: true }
        }
    }
}

#[cfg(test)]
mod tests;
