//! Planning one pass from live health: the candidates in the order the pass tries them, the
//! providers left out and why, and the early trial that lets a waiting delivery bring an
//! ejected provider back.

use std::collections::HashSet;

use switchboard_core::ProviderId;
use switchboard_core::health::HealthKey;
use switchboard_core::plan::{
    Candidate, Exclusion, ExclusionReason, RouteQuery, Strategy, health_exclusion,
};
use tokio::time::Instant;

use super::Spent;
use crate::state::{Runtime, Shared};

/// What one pass will try.
pub(super) struct PassPlan {
    /// The matching rule's name; `None` when no rule matches.
    pub(super) rule: Option<String>,
    pub(super) strategy: Strategy,
    /// In the order the pass tries them.
    pub(super) candidates: Vec<Candidate>,
    /// Providers left out, and why.
    pub(super) excluded: Vec<Exclusion>,
}

/// Plans a pass from the health and randomness of this moment.
pub(super) fn plan_pass(
    shared: &Shared,
    runtime: &Runtime,
    query: &RouteQuery,
    spent: &Spent,
    now: Instant,
) -> PassPlan {
    let plan = shared.plan(&runtime.routes, query, now.into_std());
    let (mut candidates, mut held_back) =
        pass_order(plan.candidates, &spent.possibly_accepted, spent.attempts == 0);
    let mut excluded = plan.excluded;
    if candidates.is_empty()
        && let Some(fail_open) = held_back.first()
        && let Some(trial) =
            early_trial(shared, fail_open, &mut excluded, &spent.possibly_accepted, now.into_std())
    {
        held_back.retain(|candidate| candidate.key != trial.key);
        candidates.push(trial);
    }
    exclude_held_back(shared, &held_back, &mut excluded, now);
    let rule = plan.rule.as_ref().map(|rule| rule.name.to_string());
    PassPlan { rule, strategy: plan.strategy, candidates, excluded }
}

/// Candidates held back stay out of this pass; health says why.
fn exclude_held_back(
    shared: &Shared,
    held_back: &[Candidate],
    excluded: &mut Vec<Exclusion>,
    now: Instant,
) {
    if held_back.is_empty() {
        return;
    }
    shared.health.read(|health| {
        excluded.extend(held_back.iter().filter_map(|candidate| {
            let reason = health_exclusion(health, &candidate.key, now.into_std())?;
            Some(Exclusion { provider: candidate.provider().clone(), reason })
        }));
    });
}

/// With every provider excluded, a waiting delivery asks health for an early trial of one of
/// the ejected ones (those that may not have the message first, then the one tried longest
/// ago): at most one per provider a second across all deliveries, and its success brings
/// the provider back for every waiting code at once. Without it they would all wait for the
/// soonest ejection to end, 30 s or more. The chosen provider leaves `excluded`.
fn early_trial(
    shared: &Shared,
    fail_open: &Candidate,
    excluded: &mut Vec<Exclusion>,
    possibly_accepted: &HashSet<ProviderId>,
    now: std::time::Instant,
) -> Option<Candidate> {
    let key_of = |provider: &ProviderId| {
        HealthKey::new(provider.clone(), fail_open.key.country(), fail_open.key.channel())
    };
    // The ejected providers, those that may not have the message first, then the one tried
    // longest ago: a provider that keeps failing its trials does not starve the others.
    let options: Vec<(bool, HealthKey)> = std::iter::once(fail_open.provider().clone())
        .chain(
            excluded
                .iter()
                .filter(|exclusion| matches!(exclusion.reason, ExclusionReason::Ejected { .. }))
                .map(|exclusion| exclusion.provider.clone()),
        )
        .map(|provider| (possibly_accepted.contains(&provider), key_of(&provider)))
        .collect();
    let chosen = shared.health.claim_early_trial(options, now)?.provider().clone();
    excluded.retain(|exclusion| exclusion.provider != chosen);
    Some(Candidate { key: key_of(&chosen), is_trial: true, ..fail_open.clone() })
}

/// The order a pass tries the plan's candidates in: providers that may already have the message
/// go last (a fresh provider is the better bet, and their duplicate is the worse cost). A
/// fail-open candidate is tried only before the delivery's first send: the user is waiting for
/// that one, and Okta is answered as soon as a pass has failed. After that, rather than every
/// waiting code hitting the provider that recovers soonest, the delivery waits for health's
/// single probation trial to bring one back.
///
/// Returns the candidates in order, and those held back.
fn pass_order(
    candidates: Vec<Candidate>,
    possibly_accepted: &HashSet<ProviderId>,
    is_first_send: bool,
) -> (Vec<Candidate>, Vec<Candidate>) {
    let (candidates, held_back): (Vec<Candidate>, Vec<Candidate>) =
        candidates.into_iter().partition(|candidate| is_first_send || !candidate.is_fail_open);
    let (mut fresh, tried): (Vec<Candidate>, Vec<Candidate>) = candidates
        .into_iter()
        .partition(|candidate| !possibly_accepted.contains(candidate.provider()));
    fresh.extend(tried);
    (fresh, held_back)
}
