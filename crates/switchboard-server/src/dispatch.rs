//! Dispatch: carry one delivery through the planned candidates, on time.
//!
//! Two clocks bound a delivery. Okta must be answered by the *answer deadline*
//! (`okta.deadline_ms` from the request's arrival); the handler takes care of that, reading the
//! progress this module publishes. Attempts themselves run until the *attempt deadline*: the
//! answer deadline when switchboard reports truthfully (Okta may then send through its own
//! providers, so nothing may go on afterwards), or the OTP's expiry when it always answers
//! SUCCESSFUL (it then owns the failure, and keeps delivering in the background).
//!
//! Within a pass the cascade tries one provider at a time, each attempt bounded by the
//! provider's own timeout and by the attempt deadline. Number-level verdicts (invalid, blocked,
//! fraud block) stop the delivery: every other provider would refuse too, and trying them costs
//! money or launders pumping traffic. An attempt that may have been accepted (timeout, broken
//! connection) still fails over, because a missing code is worse than a duplicate one; it is
//! counted as a possible duplicate and that provider goes last in later passes.
//!
//! # A code answered SUCCESSFUL is delivered while any provider can take it
//!
//! In the background a delivery ends only when a provider accepts the code, a provider refuses
//! the number itself, the OTP expires, or `delivery.max_attempts` sends that may have reached a
//! provider (accepted or cut off) have gone unconfirmed. Nothing else abandons it:
//!
//! - failover is never refused by the retry budget (it replaces a send that ended; see
//!   `switchboard_core::budget`), so a burst of codes against a dead primary all reach the
//!   backup at once;
//! - definite refusals (an error answer, a refused connection) do not count against
//!   `max_attempts`: they cost nothing and cannot duplicate the code;
//! - when a pass finds no provider it may send to (every one ejected, resting after a 429, or
//!   holding its probation trial), the delivery waits and plans again, rather than ending, and
//!   picks the provider up the moment its ejection ends. It fails open only for its first
//!   send: a thousand waiting codes failing open would each hit the dead provider; instead
//!   health's single probation trial decides, and the waiting codes follow it.
//!
//! When a whole pass fails, the next one starts after a growing backoff, re-planned from fresh
//! health.
//!
//! # Layout
//!
//! This file holds the delivery loop: plan a pass, run it, wait, plan again. Beside it,
//! `planning` orders a pass's candidates from live health (and claims early trials), `pass`
//! runs one pass (cascade, hedge, race), `attempt` makes one send and records its outcome in
//! one place, `waiting` paces the passes, and `outcome` holds what a delivery reports.

mod attempt;
mod outcome;
mod pass;
mod planning;
#[cfg(test)]
mod tests;
mod waiting;

use std::collections::HashSet;
use std::time::Duration;

use switchboard_core::plan::{Candidate, RouteQuery, Strategy};
use switchboard_core::{OutboundMessage, ProviderId, Purpose};
use tokio::sync::watch;
use tokio::time::Instant;

pub(crate) use self::outcome::{AttemptRecord, DispatchResult, Progress, Undelivered};
use self::pass::{Pass, PassEnd};
use self::planning::{PassPlan, plan_pass};
use self::waiting::Backoff;
use crate::state::{Runtime, Shared};

/// The bounds of one delivery.
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    /// Attempts end by this time.
    pub(crate) attempt_deadline: Instant,
    /// Sends that may have reached a provider (accepted, timed out, cut off) at most.
    pub(crate) max_attempts: u32,
    /// Whether passes go on after the first (background delivery until `attempt_deadline`).
    pub(crate) is_background: bool,
    /// Pause before the second pass; doubles after each further pass.
    pub(crate) retry_backoff: Duration,
    /// The provider that took the previous code for this number (a resend): ranked last.
    pub(crate) avoid: Option<ProviderId>,
    /// Why Okta asked (rules may match on it).
    pub(crate) purpose: Purpose,
    /// SMS segments of the text (prices are per segment).
    pub(crate) segments: u32,
}

/// Runs the delivery to its end, publishing progress as it goes.
pub(crate) async fn deliver(
    shared: &Shared,
    runtime: &Runtime,
    message: &OutboundMessage,
    limits: &Limits,
    progress: &watch::Sender<Progress>,
) -> DispatchResult {
    let cx = Context { shared, runtime, message, limits };
    let result = run(cx, progress).await;
    progress.send_modify(|p| {
        p.is_waiting = false;
        p.result = Some(result.clone());
    });
    result
}

/// What every step of one delivery reads.
#[derive(Clone, Copy)]
struct Context<'a> {
    shared: &'a Shared,
    runtime: &'a Runtime,
    message: &'a OutboundMessage,
    limits: &'a Limits,
}

/// What a delivery has spent so far, across passes.
#[derive(Debug, Default)]
struct Spent {
    /// Providers that may already have the message: they go last in later passes.
    possibly_accepted: HashSet<ProviderId>,
    /// Sends launched.
    attempts: u32,
    /// Sends that may have reached a provider without being confirmed (counted against
    /// `max_attempts`).
    unconfirmed: u32,
}

/// Passes until one ends the delivery, waiting between them.
async fn run(cx: Context<'_>, progress: &watch::Sender<Progress>) -> DispatchResult {
    let query = route_query(cx.message, cx.limits);
    let mut spent = Spent::default();
    let mut backoff = Backoff::new(cx.limits.retry_backoff);
    // One request, one deposit into the retry budget, however many passes it takes.
    cx.shared.budget.deposit(Instant::now().into_std());
    let mut is_first_pass = true;
    loop {
        let planned = plan_pass(cx.shared, cx.runtime, &query, &spent, Instant::now());
        let (strategy, candidates) = match publish_plan(planned, is_first_pass, progress) {
            Ok(pass) => pass,
            Err(result) => return result,
        };
        is_first_pass = false;
        let end = {
            let mut pass = Pass::new(cx, &candidates, &mut spent);
            pass.execute(strategy, progress).await
            // Dropping the pass drops any attempt still running (they were abandoned already).
        };
        let n_tried = match after_pass(end, cx.limits, &spent) {
            Ok(n_tried) => n_tried,
            Err(result) => return result,
        };
        let deadline = cx.limits.attempt_deadline;
        if !waiting::until_next_pass(&mut backoff, n_tried, deadline, progress).await {
            return DispatchResult::Undelivered { reason: Undelivered::Expired };
        }
    }
}

/// What the planner is asked for this message.
fn route_query(message: &OutboundMessage, limits: &Limits) -> RouteQuery {
    let query = RouteQuery::for_destination(&message.destination, message.channel)
        .with_purpose(limits.purpose)
        .with_segments(limits.segments);
    match &limits.avoid {
        Some(avoid) => query.with_avoid(avoid.clone()),
        None => query,
    }
}

/// Publishes what a pass will try, and returns its strategy and candidates. The first pass
/// also names the rule and strategy, and ends a delivery that has no rule or no candidate.
fn publish_plan(
    planned: PassPlan,
    is_first_pass: bool,
    progress: &watch::Sender<Progress>,
) -> Result<(Strategy, Vec<Candidate>), DispatchResult> {
    let PassPlan { rule, strategy, candidates, excluded } = planned;
    if !is_first_pass {
        // The last exclusions are what the final log line explains an ending with.
        progress.send_modify(|p| p.excluded = excluded);
        return Ok((strategy, candidates));
    }
    let is_unrouted = rule.is_none();
    progress.send_modify(|p| {
        p.rule = rule;
        p.strategy = strategy.as_str();
        p.excluded = excluded;
    });
    if is_unrouted {
        return Err(DispatchResult::Undelivered { reason: Undelivered::NoRoute });
    }
    if candidates.is_empty() {
        return Err(DispatchResult::Undelivered { reason: Undelivered::NoCandidate });
    }
    Ok((strategy, candidates))
}

/// What a pass's end means for the delivery: its result, or (when another pass may follow)
/// how many attempts the pass tried.
fn after_pass(end: PassEnd, limits: &Limits, spent: &Spent) -> Result<u32, DispatchResult> {
    let undelivered = |reason| Err(DispatchResult::Undelivered { reason });
    match end {
        PassEnd::Finished(DispatchResult::Undelivered { reason: Undelivered::DeadlineReached })
            if limits.is_background =>
        {
            undelivered(Undelivered::Expired)
        }
        PassEnd::Finished(result) => Err(result),
        PassEnd::Exhausted { .. } if !limits.is_background => undelivered(Undelivered::AllFailed),
        PassEnd::Exhausted { .. } if spent.unconfirmed >= limits.max_attempts => {
            undelivered(Undelivered::AttemptsExhausted)
        }
        PassEnd::Exhausted { n_tried } => Ok(n_tried),
    }
}
