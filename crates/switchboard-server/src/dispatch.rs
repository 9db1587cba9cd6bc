//! Dispatch: carry one delivery through the planned candidates, on time.
//!
//! Two clocks bound a delivery. Okta must be answered by the *answer deadline*
//! (`okta.deadline_ms`); the handler takes care of that, reading the progress this module
//! publishes. Attempts themselves run until the *attempt deadline*: the answer deadline when
//! switchboard reports truthfully (Okta may then send through its own providers, so nothing may
//! go on afterwards), or the OTP's expiry when it always answers SUCCESSFUL (it then owns the
//! failure, and keeps delivering in the background).
//!
//! Within a pass the cascade tries one provider at a time, each attempt bounded by the
//! provider's own timeout and by the attempt deadline. Number-level verdicts (invalid, blocked,
//! fraud block) stop the delivery: every other provider would refuse too, and trying them costs
//! money or launders pumping traffic. An attempt that may have been accepted (timeout, broken
//! connection) still fails over, because a missing code is worse than a duplicate one, but it is
//! counted as a possible duplicate and never retried on the same provider. When a whole pass
//! fails, the next one starts after a growing backoff, re-planned from fresh health, until the
//! attempt budget or the deadline runs out.

use std::collections::HashSet;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use switchboard_core::plan::{Candidate, Exclusion, RouteQuery, Strategy, plan};
use switchboard_core::{
    Admission, AttemptKind, AttemptOutcome, Certainty, ErrorClass, Failure, OutboundMessage,
    ProviderId, Purpose,
};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::callbacks::SentMessage;
use crate::state::{Runtime, Shared};

/// Below this much time left, another attempt cannot finish.
const MIN_ATTEMPT_TIME: Duration = Duration::from_millis(50);

/// Backoff between passes never grows past this.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

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
    /// Extra sends were refused by the retry or spend budget with candidates left.
    RetryBudget,
    /// The attempt budget ran out, or every candidate was tried and failed.
    AllFailed,
    /// Time ran out with candidates left.
    DeadlineReached,
}

impl Undelivered {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Undelivered::NoRoute => "no_route",
            Undelivered::NoCandidate => "no_candidate",
            Undelivered::RetryBudget => "retry_budget",
            Undelivered::AllFailed => "all_failed",
            Undelivered::DeadlineReached => "deadline_reached",
        }
    }
}

impl DispatchResult {
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
    /// Sends at most, across passes.
    pub(crate) max_attempts: u32,
    /// At most this many passes over the candidates.
    pub(crate) max_passes: u32,
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
    // Providers that may already have the message: never sent to again in this delivery.
    let mut possibly_accepted: HashSet<ProviderId> = HashSet::new();
    let mut n_attempts: u32 = 0;
    let mut backoff = limits.retry_backoff;
    {
        // One request, one deposit into the retry budget, however many passes it takes.
        shared.health().begin_request(Instant::now().into_std());
    }

    for pass in 0..limits.max_passes.max(1) {
        let plan = {
            let health = shared.health();
            let mut rng = shared.rng();
            plan(&runtime.routes, &health, &query, Instant::now().into_std(), &mut *rng)
        };
        if pass == 0 {
            let rule = plan.rule.as_ref().map(|rule| rule.name.to_string());
            let is_unrouted = rule.is_none();
            let strategy = plan.strategy.as_str();
            progress.send_modify(|p| {
                p.rule = rule;
                p.strategy = strategy;
                p.excluded = plan.excluded.clone();
            });
            if is_unrouted {
                return DispatchResult::Undelivered { reason: Undelivered::NoRoute };
            }
            if plan.candidates.is_empty() {
                return DispatchResult::Undelivered { reason: Undelivered::NoCandidate };
            }
        }
        let candidates: Vec<Candidate> = plan
            .candidates
            .into_iter()
            .filter(|c| !possibly_accepted.contains(c.provider()))
            .collect();
        let mut pass_run = Pass {
            shared,
            runtime,
            message,
            deadline: limits.attempt_deadline,
            candidates: &candidates,
            next: 0,
            in_flight: FuturesUnordered::new(),
            running: HashSet::new(),
            n_attempts: &mut n_attempts,
            max_attempts: limits.max_attempts,
            segments: limits.segments,
        };
        let end = pass_run.execute(plan.strategy, progress, &mut possibly_accepted).await;
        // Dropping the pass drops any attempt still running (they were abandoned already).
        drop(pass_run);
        match end {
            // The budget refills with traffic: with passes left (background delivery), a refused
            // extra send waits for the next pass instead of giving up on the code.
            PassEnd::Finished(DispatchResult::Undelivered { reason: Undelivered::RetryBudget })
                if pass + 1 < limits.max_passes =>
            {
                tracing::info!(event_id = %message.reference, "retry budget spent; trying again in the next pass");
                let next_pass = Instant::now() + backoff;
                if next_pass + MIN_ATTEMPT_TIME > limits.attempt_deadline
                    || n_attempts >= limits.max_attempts
                {
                    return DispatchResult::Undelivered { reason: Undelivered::RetryBudget };
                }
                progress.send_modify(|p| p.is_waiting = true);
                tokio::time::sleep_until(next_pass).await;
                progress.send_modify(|p| p.is_waiting = false);
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            PassEnd::Finished(result) => return result,
            PassEnd::Exhausted { n_tried } => {
                let next_pass = Instant::now() + backoff;
                let is_last_pass = pass + 1 >= limits.max_passes
                    || n_tried == 0
                    || n_attempts >= limits.max_attempts
                    || next_pass + MIN_ATTEMPT_TIME > limits.attempt_deadline;
                if is_last_pass {
                    break;
                }
                progress.send_modify(|p| p.is_waiting = true);
                tokio::time::sleep_until(next_pass).await;
                progress.send_modify(|p| p.is_waiting = false);
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
    DispatchResult::Undelivered { reason: Undelivered::AllFailed }
}

/// How a pass over the candidates ended.
enum PassEnd {
    /// Delivered, rejected, or out of time or budget: the delivery is over.
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
    n_attempts: &'a mut u32,
    max_attempts: u32,
    /// SMS parts, for pricing what was accepted.
    segments: u32,
}

/// Why a candidate could not be launched.
enum Launch {
    Started,
    /// Skipped (disabled since planning, trial taken); try the next one.
    Skipped,
    /// The budget, the attempt cap or the clock says no more providers.
    Stop(Undelivered),
    /// No candidates left.
    Exhausted,
}

impl<'a> Pass<'a, std::pin::Pin<Box<dyn std::future::Future<Output = Finished> + Send + 'a>>> {
    async fn execute(
        &mut self,
        strategy: Strategy,
        progress: &watch::Sender<Progress>,
        possibly_accepted: &mut HashSet<ProviderId>,
    ) -> PassEnd {
        let mut n_tried = 0;
        let mut stopped: Option<Undelivered> = None;
        // The first send of the delivery is free; every further one draws on the budget.
        let first_kind =
            if *self.n_attempts == 0 { AttemptKind::First } else { AttemptKind::Failover };
        let initial = match strategy {
            Strategy::Race { width } => width.max(1),
            Strategy::Cascade | Strategy::Hedge { .. } => 1,
        };
        for index in 0..initial {
            let kind = if index == 0 { first_kind } else { AttemptKind::Race };
            if let Some(reason) = self.launch_next(kind) {
                stopped = Some(reason);
                break;
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
                let reason = stopped.unwrap_or(Undelivered::AllFailed);
                return if reason == Undelivered::AllFailed {
                    PassEnd::Exhausted { n_tried }
                } else {
                    PassEnd::Finished(DispatchResult::Undelivered { reason })
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
                                possibly_accepted.insert(candidate.provider().clone());
                            }
                            // A failure frees a slot: the next candidate takes it.
                            if stopped.is_none() {
                                if let Some(reason) = self.launch_next(AttemptKind::Failover) {
                                    stopped = Some(reason);
                                }
                            }
                        }
                    }
                }
                () = &mut hedge_timer, if is_hedge_armed => {
                    // Hedge once: the cost of a second send is bounded, and the budget guards it.
                    is_hedge_armed = false;
                    if stopped.is_none() {
                        if let Some(reason) = self.launch_next(AttemptKind::Hedge) {
                            // Running out of candidates to hedge to is not a reason to stop.
                            if reason != Undelivered::AllFailed {
                                stopped = Some(reason);
                            }
                        }
                    }
                }
                () = &mut deadline => {
                    self.abandon_in_flight();
                    return PassEnd::Finished(DispatchResult::Undelivered { reason: Undelivered::DeadlineReached });
                }
            }
        }
    }

    /// Launches the next admissible candidate; `Some(reason)` when no more may be launched
    /// (`AllFailed` meaning none are left).
    fn launch_next(&mut self, kind: AttemptKind) -> Option<Undelivered> {
        loop {
            match self.launch(kind) {
                Launch::Started => return None,
                Launch::Skipped => {}
                Launch::Stop(reason) => return Some(reason),
                Launch::Exhausted => return Some(Undelivered::AllFailed),
            }
        }
    }

    fn launch(&mut self, kind: AttemptKind) -> Launch {
        let Some(candidate) = self.candidates.get(self.next) else { return Launch::Exhausted };
        if *self.n_attempts >= self.max_attempts {
            return Launch::Stop(Undelivered::AllFailed);
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
        let admission = self.shared.health().begin_attempt(candidate, kind, now.into_std());
        match admission {
            Admission::Go if candidate.is_exploration => {
                self.shared.metrics.exploration(candidate.provider());
            }
            Admission::Go => {}
            admission if admission.is_budget() => {
                tracing::info!(provider = %candidate.provider(), kind = kind.as_str(), refusal = admission.as_str(), "extra send refused by the budget");
                return Launch::Stop(Undelivered::RetryBudget);
            }
            _ => {
                self.next += 1;
                return Launch::Skipped;
            }
        }
        let index = self.next;
        self.next += 1;
        *self.n_attempts += 1;
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
                shared.spend.add(key.country(), price.unwrap_or(0.0));
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
        let mut health = self.shared.health();
        for index in self.running.drain() {
            health.abandon(&self.candidates[index].key, now);
        }
    }
}
