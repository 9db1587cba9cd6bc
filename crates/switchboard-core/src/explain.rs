//! Decision records: why a delivery was routed the way it was, as data.
//!
//! Operators ask "why did this code go through that provider?" long after the fact, and the answer
//! must not depend on re-running the decision against a book that has moved on. So the core
//! hands out two records, both plain data that the server renders (for `switchboard explain`, the
//! admin endpoint and the per-request log line) and neither holding a phone number:
//!
//! - [`Explanation`], the full account: every rule checked and why it did not match, the plan
//!   with each candidate's score breakdown, the health rows of the matched rule's providers for
//!   this (country, channel), and the budget.
//! - [`DecisionRecord`], the compact one for every hook request's log line: rule, emphasis,
//!   strategy, order and flags, exclusions.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand_core::RngCore;

use crate::budget::{BudgetSnapshot, RetryBudget};
use crate::domain::ProviderId;
use crate::health::{HealthBook, HealthKey, HealthSnapshot};
use crate::plan::{Plan, RouteQuery, Strategy, plan};
use crate::route::{Mismatch, Optimize, RouteTable, RuleId};
use crate::spend::SpendBook;
use crate::switch::OperatorSwitches;

/// One rule looked at while matching, in config order, up to the one that matched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleCheck {
    /// Which rule.
    pub rule: RuleId,
    /// Why it did not match; `None` for the rule that did.
    pub mismatch: Option<Mismatch>,
}

/// Everything behind one routing decision.
#[derive(Clone, Debug, PartialEq)]
pub struct Explanation {
    /// What was asked (its number, if any, never prints).
    pub query: RouteQuery,
    /// The rules checked, in order; the last one matched unless `plan.rule` is `None`.
    pub rules: Vec<RuleCheck>,
    /// The decision itself.
    pub plan: Plan,
    /// Health of every provider of the matched rule for this country and channel, in the rule's
    /// order; providers never seen there appear with their default state.
    pub health: Vec<HealthSnapshot>,
    /// The retry budget at `now`.
    pub budget: BudgetSnapshot,
    /// What extra sends to this country may still spend, when it has a cap.
    pub spend_balance: Option<f64>,
}

/// The live state an explanation reads, each piece from its own owner.
#[derive(Clone, Copy, Debug)]
pub struct Live<'a> {
    /// Provider health.
    pub health: &'a HealthBook,
    /// The operator's switches.
    pub switches: &'a OperatorSwitches,
    /// The retry budget.
    pub budget: &'a RetryBudget,
    /// Spending, for the budget's hourly cap.
    pub spend: &'a SpendBook,
}

/// Plans `query` and explains the plan. Draws from `rng` exactly as [`plan`] does, so with the
/// same RNG state it explains the same plan.
#[must_use]
pub fn explain(
    table: &RouteTable,
    live: Live<'_>,
    query: &RouteQuery,
    now: Instant,
    rng: &mut impl RngCore,
) -> Explanation {
    let Live { health, switches, budget, spend } = live;
    let mut rules = Vec::new();
    for rule in table.rules() {
        let mismatch = rule.mismatch(query);
        rules.push(RuleCheck { rule: rule.id().clone(), mismatch });
        if mismatch.is_none() {
            break;
        }
    }
    let plan = plan(table, health, switches, query, now, rng);
    let snapshot = health.snapshot(switches, now);
    let matched = table.find(query);
    let providers = matched.map_or(&[][..], |found| found.rule.providers());
    let health_rows = providers
        .iter()
        .map(|provider| {
            let key = HealthKey::new(provider.clone(), query.country, query.channel);
            snapshot.iter().find(|row| row.key == key).cloned().unwrap_or_else(|| HealthSnapshot {
                status: health.status(&key, now),
                operator: switches.state(provider),
                consecutive_failures: 0,
                ejection_cause: None,
                successes: 0,
                failures: 0,
                estimate: health.estimate(&key, now),
                key,
            })
        })
        .collect();
    Explanation {
        query: query.clone(),
        rules,
        plan,
        health: health_rows,
        budget: budget.snapshot(now),
        spend_balance: budget.spend_balance(spend, query.country, now),
    }
}

/// One candidate in a [`DecisionRecord`].
#[derive(Clone, Debug, PartialEq)]
pub struct RecordedCandidate {
    /// Which provider.
    pub provider: ProviderId,
    /// Its score total (comparable within the record only).
    pub score: f64,
    /// It is the probation trial.
    pub is_trial: bool,
    /// It was offered only because nothing else was left.
    pub is_fail_open: bool,
    /// Exploration put it first.
    pub is_exploration: bool,
}

/// The compact, log-line-sized record of one plan.
#[derive(Clone, Debug, PartialEq)]
pub struct DecisionRecord {
    /// The matched rule's name; `None` when nothing matched.
    pub rule: Option<Arc<str>>,
    /// The emphasis.
    pub optimize: Optimize,
    /// The strategy label (`cascade`, `hedge`, `race`).
    pub strategy: &'static str,
    /// The hedge delay, for `hedge`.
    pub hedge_delay: Option<Duration>,
    /// The candidates, best first.
    pub candidates: Vec<RecordedCandidate>,
    /// Left-out providers and the reason label.
    pub excluded: Vec<(ProviderId, &'static str)>,
}

impl Plan {
    /// The compact record of this plan, for the request's log line.
    #[must_use]
    pub fn record(&self) -> DecisionRecord {
        DecisionRecord {
            rule: self.rule.as_ref().map(|rule| Arc::clone(&rule.name)),
            optimize: self.optimize,
            strategy: self.strategy.as_str(),
            hedge_delay: match self.strategy {
                Strategy::Hedge { delay, .. } => Some(delay),
                Strategy::Cascade | Strategy::Race { .. } => None,
            },
            candidates: self
                .candidates
                .iter()
                .map(|candidate| RecordedCandidate {
                    provider: candidate.provider().clone(),
                    score: candidate.score.total,
                    is_trial: candidate.is_trial,
                    is_fail_open: candidate.is_fail_open,
                    is_exploration: candidate.is_exploration,
                })
                .collect(),
            excluded: self
                .excluded
                .iter()
                .map(|exclusion| (exclusion.provider.clone(), exclusion.reason.as_str()))
                .collect(),
        }
    }
}
