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

use std::collections::HashSet;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use switchboard_core::health::HealthKey;
use switchboard_core::plan::{
    Candidate, Exclusion, ExclusionReason, RouteQuery, Strategy, health_exclusion,
};
use switchboard_core::{
    Admission, AttemptKind, AttemptOutcome, Certainty, ErrorClass, Failure, OutboundMessage,
    ProviderId, Purpose,
};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::sent::SentMessage;
use crate::state::{Runtime, Shared};

/// Below this much time left, another attempt cannot finish.
const MIN_ATTEMPT_TIME: Duration = Duration::from_millis(50);

/// The last pass of a background delivery starts at least this long before the code expires,
/// whatever the backoff says, so a provider has time to answer it.
const LAST_PASS_LEAD: Duration = Duration::from_secs(1);

/// Backoff between passes never grows past this: an OTP lives minutes, and a provider that
/// recovers should get the waiting codes within seconds. Failing providers are shielded by
/// ejection, not by the backoff.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// How often a background delivery with no provider it may send to looks again. Planning is
/// cheap and sends nothing, so this only bounds how late a recovered provider is noticed.
const WAIT_FOR_PROVIDER: Duration = Duration::from_millis(500);

/// One attempt, for the log line and the answer's metadata.
#[derive(Debug, Clone)]
pub(crate) struct AttemptRecord {
    pub(crate) provider: ProviderId,
    pub(crate) outcome: AttemptOutcome,
    pub(crate) elapsed: Duration,
}

/// How a delivery ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DispatchResult {
    /// A provider accepted the message.
    Delivered { provider: ProviderId, message_id: String },
    /// A provider said no provider can deliver to this number.
    Rejected { class: ErrorClass },
    /// Nothing was accepted.
    Undelivered { reason: Undelivered },
}

/// Why nothing was accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Undelivered {
    /// No route rule matches the destination and channel.
    NoRoute,
    /// The rule matched but every provider is disabled or cannot use the channel.
    NoCandidate,
    /// One pass only (truthful reporting, or no time left after the answer): every candidate
    /// was tried and failed.
    AllFailed,
    /// One pass only: the answer deadline came with candidates left.
    DeadlineReached,
    /// `delivery.max_attempts` sends may have reached a provider (timed out or cut off) and none
    /// was confirmed: more would risk more duplicates than it could save codes.
    AttemptsExhausted,
    /// The OTP expired before any provider took it. The log line's attempts and exclusions say
    /// what every provider was doing.
    Expired,
}

impl Undelivered {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Undelivered::NoRoute => "no_route",
            Undelivered::NoCandidate => "no_candidate",
            Undelivered::AllFailed => "all_failed",
            Undelivered::DeadlineReached => "deadline_reached",
            Undelivered::AttemptsExhausted => "attempts_exhausted",
            Undelivered::Expired => "expired",
        }
    }
}

impl DispatchResult {
    /// The metric labels: outcome and reason (the error class of a rejection, why nothing was
    /// delivered, `-` for a delivery).
    pub(crate) fn metric_labels(&self) -> (&'static str, &'static str) {
        match self {
            DispatchResult::Delivered { .. } => ("delivered", "-"),
            DispatchResult::Rejected { class } => ("rejected", class.as_str()),
            DispatchResult::Undelivered { reason } => ("undelivered", reason.as_str()),
        }
    }

    /// `delivered`, `rejected_<class>` or `undelivered_<reason>`.
    pub(crate) fn label(&self) -> String {
        match self {
            DispatchResult::Delivered { .. } => "delivered".to_owned(),
            DispatchResult::Rejected { class } => format!("rejected_{class}"),
            DispatchResult::Undelivered { reason } => format!("undelivered_{}", reason.as_str()),
        }
    }
}

/// What dispatch has done so far; published after every step so the handler can answer Okta
/// in the middle of a delivery.
#[derive(Debug, Clone, Default)]
pub(crate) struct Progress {
    pub(crate) rule: Option<String>,
    /// `cascade`, `hedge` or `race`.
    pub(crate) strategy: &'static str,
    pub(crate) excluded: Vec<Exclusion>,
    pub(crate) attempts: Vec<AttemptRecord>,
    /// Set while waiting between passes: nothing will happen for a while, so answer now.
    pub(crate) is_waiting: bool,
    /// Set once, at the end.
    pub(crate) result: Option<DispatchResult>,
}

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
    let result = run(shared, runtime, message, limits, progress).await;
    progress.send_modify(|p| {
        p.is_waiting = false;
        p.result = Some(result.clone());
    });
    result
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

async fn run(
    shared: &Shared,
    runtime: &Runtime,
    message: &OutboundMessage,
    limits: &Limits,
    progress: &watch::Sender<Progress>,
) -> DispatchResult {
    let mut query = RouteQuery::for_destination(&message.destination, message.channel)
        .with_purpose(limits.purpose)
        .with_segments(limits.segments);
    if let Some(avoid) = &limits.avoid {
        query = query.with_avoid(avoid.clone());
    }
    let mut spent = Spent::default();
    let mut backoff = limits.retry_backoff;
    {
        // One request, one deposit into the retry budget, however many passes it takes.
        shared.budget().deposit(Instant::now().into_std());
    }

    let mut is_first_pass = true;
    loop {
        let now = Instant::now();
        let plan = shared.plan(&runtime.routes, &query, now.into_std());
        let (mut candidates, mut held_back) =
            pass_order(plan.candidates, &spent.possibly_accepted, spent.attempts == 0);
        let mut excluded = plan.excluded;
        if candidates.is_empty()
            && let Some(fail_open) = held_back.first()
            && let Some(trial) = early_trial(
                shared,
                fail_open,
                &mut excluded,
                &spent.possibly_accepted,
                now.into_std(),
            )
        {
            held_back.retain(|candidate| candidate.key != trial.key);
            candidates.push(trial);
        }
        if !held_back.is_empty() {
            shared.health().read(|health| {
                excluded.extend(held_back.iter().filter_map(|candidate| {
                    let reason = health_exclusion(health, &candidate.key, now.into_std())?;
                    Some(Exclusion { provider: candidate.provider().clone(), reason })
                }));
            });
        }
        if is_first_pass {
            is_first_pass = false;
            let rule = plan.rule.as_ref().map(|rule| rule.name.to_string());
            let is_unrouted = rule.is_none();
            let strategy = plan.strategy.as_str();
            progress.send_modify(|p| {
                p.rule = rule;
                p.strategy = strategy;
                p.excluded = excluded;
            });
            if is_unrouted {
                return DispatchResult::Undelivered { reason: Undelivered::NoRoute };
            }
            if candidates.is_empty() {
                return DispatchResult::Undelivered { reason: Undelivered::NoCandidate };
            }
        } else {
            // The last exclusions are what the final log line explains an ending with.
            progress.send_modify(|p| p.excluded = excluded);
        }
        let mut pass_run = Pass {
            shared,
            runtime,
            message,
            deadline: limits.attempt_deadline,
            candidates: &candidates,
            next: 0,
            in_flight: FuturesUnordered::new(),
            running: HashSet::new(),
            spent: &mut spent,
            max_attempts: limits.max_attempts,
            segments: limits.segments,
        };
        let end = pass_run.execute(plan.strategy, progress).await;
        // Dropping the pass drops any attempt still running (they were abandoned already).
        drop(pass_run);
        let n_tried = match end {
            PassEnd::Finished(DispatchResult::Undelivered {
                reason: Undelivered::DeadlineReached,
            }) if limits.is_background => {
                return DispatchResult::Undelivered { reason: Undelivered::Expired };
            }
            PassEnd::Finished(result) => return result,
            PassEnd::Exhausted { n_tried } => n_tried,
        };
        if !limits.is_background {
            return DispatchResult::Undelivered { reason: Undelivered::AllFailed };
        }
        if spent.unconfirmed >= limits.max_attempts {
            return DispatchResult::Undelivered { reason: Undelivered::AttemptsExhausted };
        }
        // A pass that sent and failed backs off; a pass that found nobody to send to looks
        // again soon, so a provider whose ejection ends is used at once.
        let wait = if n_tried > 0 {
            let wait = backoff;
            backoff = (backoff * 2).min(MAX_BACKOFF);
            wait
        } else {
            WAIT_FOR_PROVIDER.min(backoff)
        };
        // A wait that would outlast the code is cut short for one last pass, with time left
        // for a provider to answer.
        let last_chance = limits.attempt_deadline.checked_sub(LAST_PASS_LEAD);
        let now = Instant::now();
        let next_pass = last_chance.map_or(now, |last| (now + wait).min(last));
        if next_pass <= now {
            return DispatchResult::Undelivered { reason: Undelivered::Expired };
        }
        progress.send_modify(|p| p.is_waiting = true);
        tokio::time::sleep_until(next_pass).await;
        progress.send_modify(|p| p.is_waiting = false);
    }
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
    let chosen = shared.health().claim_early_trial(options, now)?.provider().clone();
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

/// How a pass over the candidates ended.
enum PassEnd {
    /// Delivered, rejected, or out of time or attempts: the delivery is over.
    Finished(DispatchResult),
    /// Every candidate was tried (or skipped) and failed.
    Exhausted { n_tried: u32 },
}

/// What one finished attempt reports.
type Finished = (usize, AttemptOutcome, Duration);

/// One pass: launches attempts as the strategy says and gathers their outcomes.
struct Pass<'a, F> {
    shared: &'a Shared,
    runtime: &'a Runtime,
    message: &'a OutboundMessage,
    deadline: Instant,
    candidates: &'a [Candidate],
    /// Index of the next candidate not yet launched or skipped.
    next: usize,
    in_flight: FuturesUnordered<F>,
    /// Candidates launched and not finished, to abandon when the pass ends early.
    running: HashSet<usize>,
    spent: &'a mut Spent,
    max_attempts: u32,
    /// SMS parts, for pricing what was accepted.
    segments: u32,
}

/// What trying to launch the next candidate came to.
enum Launch {
    Started,
    /// Skipped (disabled since planning, trial taken); try the next one.
    Skipped,
    /// A speculative send (hedge, race extra) the retry budget refused: carry on without it.
    Declined,
    /// The clock or the attempt cap says no more sends.
    Stop(Undelivered),
    /// No candidates left.
    Exhausted,
}

/// How [`Pass::launch_next`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    Started,
    /// Nothing was launched, and nothing later will be in this pass.
    Stop(Undelivered),
    /// No candidate left to launch; attempts in flight go on.
    NoneLeft,
    /// The budget declined a speculative send; attempts in flight go on.
    Declined,
}

impl<'a> Pass<'a, std::pin::Pin<Box<dyn std::future::Future<Output = Finished> + Send + 'a>>> {
    async fn execute(&mut self, strategy: Strategy, progress: &watch::Sender<Progress>) -> PassEnd {
        let mut n_tried = 0;
        let mut stopped: Option<Undelivered> = None;
        // Only a delivery's first send is `First`; every later one replaces a failed one.
        let first_kind =
            if self.spent.attempts == 0 { AttemptKind::First } else { AttemptKind::Failover };
        match self.launch_next(first_kind) {
            Next::Stop(reason) => stopped = Some(reason),
            Next::Started | Next::NoneLeft | Next::Declined => {}
        }
        if let Strategy::Race { width } = strategy {
            for _ in 1..width.max(1) {
                if stopped.is_some() || self.launch_next(AttemptKind::Race) != Next::Started {
                    break;
                }
            }
        }
        let hedge_delay = match strategy {
            Strategy::Hedge { delay, .. } => Some(delay),
            _ => None,
        };
        let hedge_timer = tokio::time::sleep(hedge_delay.unwrap_or(Duration::MAX / 4));
        tokio::pin!(hedge_timer);
        let mut is_hedge_armed = hedge_delay.is_some();
        let deadline = tokio::time::sleep_until(self.deadline);
        tokio::pin!(deadline);

        loop {
            if self.in_flight.is_empty() {
                return match stopped {
                    Some(reason) => PassEnd::Finished(DispatchResult::Undelivered { reason }),
                    None => PassEnd::Exhausted { n_tried },
                };
            }
            tokio::select! {
                // In this order when several are ready at once (timers share a millisecond
                // tick): an outcome that has arrived is used before a hedge is launched or the
                // deadline declared, and the choice does not depend on a coin flip, so replays
                // are exact.
                biased;
                Some((index, outcome, elapsed)) = self.in_flight.next() => {
                    n_tried += 1;
                    self.running.remove(&index);
                    let candidate = &self.candidates[index];
                    let record = AttemptRecord { provider: candidate.provider().clone(), outcome: outcome.clone(), elapsed };
                    progress.send_modify(|p| p.attempts.push(record));
                    match outcome {
                        AttemptOutcome::Accepted { message_id } => {
                            self.abandon_in_flight();
                            return PassEnd::Finished(DispatchResult::Delivered { provider: candidate.provider().clone(), message_id });
                        }
                        AttemptOutcome::Failed(failure) if !failure.class.is_failover_allowed() => {
                            self.abandon_in_flight();
                            return PassEnd::Finished(DispatchResult::Rejected { class: failure.class });
                        }
                        AttemptOutcome::Failed(failure) => {
                            if failure.certainty == Certainty::PossiblyAccepted {
                                self.shared.metrics.possible_duplicate(candidate.provider());
                                self.spent.possibly_accepted.insert(candidate.provider().clone());
                                self.spent.unconfirmed += 1;
                            }
                            // A failure frees a slot: the next candidate takes it.
                            if stopped.is_none()
                                && let Next::Stop(reason) = self.launch_next(AttemptKind::Failover) {
                                    stopped = Some(reason);
                                }
                        }
                    }
                }
                () = &mut hedge_timer, if is_hedge_armed => {
                    // Hedge once: the cost of a second send is bounded, and the budget guards it.
                    // Nobody left to hedge to, or a budget that declines, is no reason to stop.
                    is_hedge_armed = false;
                    if stopped.is_none()
                        && let Next::Stop(reason) = self.launch_next(AttemptKind::Hedge) {
                            stopped = Some(reason);
                        }
                }
                () = &mut deadline => {
                    self.abandon_in_flight();
                    return PassEnd::Finished(DispatchResult::Undelivered { reason: Undelivered::DeadlineReached });
                }
            }
        }
    }

    /// Launches the next admissible candidate.
    fn launch_next(&mut self, kind: AttemptKind) -> Next {
        loop {
            match self.launch(kind) {
                Launch::Started => return Next::Started,
                Launch::Skipped => {}
                Launch::Declined => return Next::Declined,
                Launch::Stop(reason) => return Next::Stop(reason),
                Launch::Exhausted => return Next::NoneLeft,
            }
        }
    }

    fn launch(&mut self, kind: AttemptKind) -> Launch {
        let Some(candidate) = self.candidates.get(self.next) else { return Launch::Exhausted };
        // Attempts in flight may end unconfirmed too: they count against the cap already.
        let n_running = u32::try_from(self.running.len()).unwrap_or(u32::MAX);
        if self.spent.unconfirmed.saturating_add(n_running) >= self.max_attempts {
            return Launch::Stop(Undelivered::AttemptsExhausted);
        }
        let now = Instant::now();
        if self.deadline.saturating_duration_since(now) < MIN_ATTEMPT_TIME {
            return Launch::Stop(Undelivered::DeadlineReached);
        }
        // The route table is validated against the providers, so the lookup cannot fail.
        let Some(provider) = self.runtime.providers.get(candidate.provider()) else {
            self.next += 1;
            return Launch::Skipped;
        };
        let admission = self.shared.begin_attempt(candidate, kind, now.into_std());
        match admission {
            Admission::Go if candidate.is_exploration => {
                self.shared.metrics.exploration(candidate.provider());
            }
            Admission::Go => {}
            admission if admission.is_budget() => {
                // Only speculative sends draw on the budget; the candidate stays for failover.
                tracing::info!(provider = %candidate.provider(), kind = kind.as_str(), refusal = admission.as_str(), "speculative send declined by the budget");
                self.shared.metrics.speculation_declined(kind.as_str(), admission.as_str());
                return Launch::Declined;
            }
            _ => {
                self.next += 1;
                return Launch::Skipped;
            }
        }
        let index = self.next;
        self.next += 1;
        self.spent.attempts += 1;
        self.running.insert(index);
        let shared = self.shared;
        let runtime = self.runtime;
        let segments = self.segments;
        let message = self.message;
        let deadline = self.deadline;
        let key = candidate.key.clone();
        let id = candidate.provider().clone();
        self.in_flight.push(Box::pin(async move {
            let started = Instant::now();
            let remaining = deadline.saturating_duration_since(started);
            let outcome = match tokio::time::timeout(remaining, provider.send(message)).await {
                Ok(Ok(accepted)) => AttemptOutcome::Accepted { message_id: accepted.message_id },
                Ok(Err(error)) => {
                    tracing::debug!(provider = %id, error = %error, "attempt failed");
                    AttemptOutcome::Failed(error.failure())
                }
                Err(_elapsed) => AttemptOutcome::Failed(Failure {
                    class: ErrorClass::Timeout,
                    certainty: Certainty::PossiblyAccepted,
                    retry_after: None,
                }),
            };
            let elapsed = started.elapsed();
            if let AttemptOutcome::Accepted { message_id } = &outcome {
                let price = runtime.routes.prices().message_price(
                    &id,
                    key.country(),
                    key.channel(),
                    segments,
                );
                shared.spend.record(shared.today(), key.country(), price.unwrap_or(0.0));
                let sent = SentMessage { key: key.clone(), event_id: message.reference.clone() };
                shared.sent.insert(id.clone(), message_id.clone(), sent, Instant::now());
            }
            shared.health().record(&key, &outcome, elapsed, Instant::now().into_std());
            shared.metrics.attempt(&id, message.channel, &outcome, elapsed);
            (index, outcome, elapsed)
        }));
        Launch::Started
    }

    /// Drops the attempts still running (a hedge or race lost, or time ran out) and tells health
    /// they say nothing about the provider.
    fn abandon_in_flight(&mut self) {
        self.in_flight = FuturesUnordered::new();
        let now = Instant::now().into_std();
        let candidates = self.candidates;
        self.shared.health().abandon(self.running.drain().map(|index| &candidates[index].key), now);
    }
}
