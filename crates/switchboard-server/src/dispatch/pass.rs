//! One pass over the planned candidates: the cascade tries one at a time, a hedge adds a second
//! send after the hedge delay, a race sends to several at once; the first acceptance wins and a
//! number-level refusal ends the delivery. Attempts that lose are abandoned, and health is told
//! they say nothing about their provider.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use switchboard_core::plan::{Candidate, Strategy};
use switchboard_core::{Admission, AttemptKind, AttemptOutcome, Certainty, ProviderId};
use switchboard_providers::SharedProvider;
use tokio::sync::watch;
use tokio::time::Instant;

use super::attempt::{self, Attempt, Finished};
use super::{AttemptRecord, Context, DispatchResult, Progress, Spent, Undelivered};

/// Below this much time left, another attempt cannot finish.
const MIN_ATTEMPT_TIME: Duration = Duration::from_millis(50);

/// How a pass over the candidates ended.
pub(super) enum PassEnd {
    /// Delivered, rejected, or out of time or attempts: the delivery is over.
    Finished(DispatchResult),
    /// Every candidate was tried (or skipped) and failed.
    Exhausted { n_tried: u32 },
}

/// Attempts running in a pass.
type InFlight<'a> = FuturesUnordered<Pin<Box<dyn Future<Output = Finished> + Send + 'a>>>;

/// One pass: launches attempts as the strategy says and gathers their outcomes.
pub(super) struct Pass<'a> {
    cx: Context<'a>,
    candidates: &'a [Candidate],
    /// Index of the next candidate not yet launched or skipped.
    next: usize,
    in_flight: InFlight<'a>,
    /// Candidates launched and not finished, to abandon when the pass ends early.
    running: HashSet<usize>,
    spent: &'a mut Spent,
    /// Set when the clock or the attempt cap allows no more sends in this pass.
    stopped: Option<Undelivered>,
    /// Attempts that finished in this pass.
    n_tried: u32,
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

impl<'a> Pass<'a> {
    pub(super) fn new(cx: Context<'a>, candidates: &'a [Candidate], spent: &'a mut Spent) -> Self {
        Pass {
            cx,
            candidates,
            next: 0,
            in_flight: FuturesUnordered::new(),
            running: HashSet::new(),
            spent,
            stopped: None,
            n_tried: 0,
        }
    }

    /// Runs the pass to its end: an acceptance, a rejection, the attempt deadline, or no
    /// candidate left.
    pub(super) async fn execute(
        &mut self,
        strategy: Strategy,
        progress: &watch::Sender<Progress>,
    ) -> PassEnd {
        self.open(strategy);
        let hedge_delay = match strategy {
            Strategy::Hedge { delay, .. } => Some(delay),
            _ => None,
        };
        let hedge_timer = tokio::time::sleep(hedge_delay.unwrap_or(Duration::MAX / 4));
        tokio::pin!(hedge_timer);
        let mut is_hedge_armed = hedge_delay.is_some();
        let deadline = tokio::time::sleep_until(self.cx.limits.attempt_deadline);
        tokio::pin!(deadline);
        loop {
            if self.in_flight.is_empty() {
                return self.exhausted();
            }
            tokio::select! {
                // In this order when several are ready at once (timers share a millisecond
                // tick): an outcome that has arrived is used before a hedge is launched or the
                // deadline declared, and the choice does not depend on a coin flip, so replays
                // are exact.
                biased;
                Some(finished) = self.in_flight.next() => {
                    if let Some(end) = self.settle(finished, progress) {
                        return end;
                    }
                }
                () = &mut hedge_timer, if is_hedge_armed => {
                    // Hedge once: the cost of a second send is bounded, and the budget guards
                    // it. Nobody left to hedge to, or a budget that declines, is no reason to
                    // stop.
                    is_hedge_armed = false;
                    self.launch_unless_stopped(AttemptKind::Hedge);
                }
                () = &mut deadline => {
                    self.abandon_in_flight();
                    let reason = Undelivered::DeadlineReached;
                    return PassEnd::Finished(DispatchResult::Undelivered { reason });
                }
            }
        }
    }

    /// The pass's first send, and a race's extra ones.
    fn open(&mut self, strategy: Strategy) {
        // Only a delivery's first send is `First`; every later one replaces a failed one.
        let kind =
            if self.spent.attempts == 0 { AttemptKind::First } else { AttemptKind::Failover };
        self.launch_unless_stopped(kind);
        if let Strategy::Race { width } = strategy {
            // Extras stop at the first that does not start; a stop here does not end the pass.
            for _ in 1..width.max(1) {
                if self.stopped.is_some() || self.launch_next(AttemptKind::Race) != Next::Started {
                    break;
                }
            }
        }
    }

    /// Takes a finished attempt into the progress; `Some` when it ends the pass.
    fn settle(
        &mut self,
        (index, outcome, elapsed): Finished,
        progress: &watch::Sender<Progress>,
    ) -> Option<PassEnd> {
        self.n_tried += 1;
        self.running.remove(&index);
        let provider = self.candidates[index].provider().clone();
        let record =
            AttemptRecord { provider: provider.clone(), outcome: outcome.clone(), elapsed };
        progress.send_modify(|p| p.attempts.push(record));
        let result = match outcome {
            AttemptOutcome::Accepted { message_id } => {
                DispatchResult::Delivered { provider, message_id }
            }
            AttemptOutcome::Failed(failure) if !failure.class.is_failover_allowed() => {
                DispatchResult::Rejected { class: failure.class }
            }
            AttemptOutcome::Failed(failure) => {
                if failure.certainty == Certainty::PossiblyAccepted {
                    self.count_unconfirmed(provider);
                }
                // A failure frees a slot: the next candidate takes it.
                self.launch_unless_stopped(AttemptKind::Failover);
                return None;
            }
        };
        self.abandon_in_flight();
        Some(PassEnd::Finished(result))
    }

    /// A send that may have reached `provider` unconfirmed: a possible duplicate, counted
    /// against `max_attempts`, and that provider goes last in later passes.
    fn count_unconfirmed(&mut self, provider: ProviderId) {
        self.cx.shared.metrics.possible_duplicate(&provider);
        self.spent.possibly_accepted.insert(provider);
        self.spent.unconfirmed += 1;
    }

    /// How a pass with nothing in flight ends.
    fn exhausted(&self) -> PassEnd {
        match self.stopped {
            Some(reason) => PassEnd::Finished(DispatchResult::Undelivered { reason }),
            None => PassEnd::Exhausted { n_tried: self.n_tried },
        }
    }

    /// Launches the next candidate unless the pass is stopped; a stop is remembered.
    fn launch_unless_stopped(&mut self, kind: AttemptKind) {
        if self.stopped.is_none()
            && let Next::Stop(reason) = self.launch_next(kind)
        {
            self.stopped = Some(reason);
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
        let candidates = self.candidates;
        let Some(candidate) = candidates.get(self.next) else { return Launch::Exhausted };
        let now = Instant::now();
        if let Some(reason) = self.stop_reason(now) {
            return Launch::Stop(reason);
        }
        // The route table is validated against the providers, so the lookup cannot fail.
        let Some(provider) = self.cx.runtime.providers.get(candidate.provider()) else {
            self.next += 1;
            return Launch::Skipped;
        };
        if let Err(refused) = self.admit(candidate, kind, now) {
            return refused;
        }
        self.start(candidate, provider, kind);
        Launch::Started
    }

    /// Why no send may start now: the attempt cap, or too little time left.
    fn stop_reason(&self, now: Instant) -> Option<Undelivered> {
        // Attempts in flight may end unconfirmed too: they count against the cap already.
        let n_running = u32::try_from(self.running.len()).unwrap_or(u32::MAX);
        if self.spent.unconfirmed.saturating_add(n_running) >= self.cx.limits.max_attempts {
            return Some(Undelivered::AttemptsExhausted);
        }
        if self.cx.limits.attempt_deadline.saturating_duration_since(now) < MIN_ATTEMPT_TIME {
            return Some(Undelivered::DeadlineReached);
        }
        None
    }

    /// Asks health and the retry budget whether `candidate` may be sent to now.
    fn admit(
        &mut self,
        candidate: &Candidate,
        kind: AttemptKind,
        now: Instant,
    ) -> Result<(), Launch> {
        let shared = self.cx.shared;
        let admission = shared.begin_attempt(candidate, kind, now.into_std());
        match admission {
            Admission::Go if candidate.is_exploration => {
                shared.metrics.exploration(candidate.provider());
                Ok(())
            }
            Admission::Go => Ok(()),
            admission if admission.is_budget() => {
                // Only speculative sends draw on the budget; the candidate stays for failover.
                tracing::info!(provider = %candidate.provider(), kind = kind.as_str(), refusal = admission.as_str(), "speculative send declined by the budget");
                shared.metrics.speculation_declined(kind.as_str(), admission.as_str());
                Err(Launch::Declined)
            }
            Admission::AtCapacity => {
                // The next candidate goes instead; a later pass may find room again.
                tracing::debug!(provider = %candidate.provider(), "provider at its max_per_second: skipped");
                shared.metrics.at_capacity(candidate.provider());
                self.next += 1;
                Err(Launch::Skipped)
            }
            _ => {
                self.next += 1;
                Err(Launch::Skipped)
            }
        }
    }

    /// Starts the attempt on the next candidate.
    fn start(&mut self, candidate: &'a Candidate, provider: &'a SharedProvider, kind: AttemptKind) {
        let index = self.next;
        self.next += 1;
        self.spent.attempts += 1;
        self.running.insert(index);
        let attempt = Attempt {
            index,
            provider: candidate.provider().clone(),
            key: candidate.key.clone(),
            kind,
        };
        self.in_flight.push(Box::pin(attempt::run(self.cx, provider, attempt)));
    }

    /// Drops the attempts still running (a hedge or race lost, or time ran out) and tells health
    /// they say nothing about the provider.
    fn abandon_in_flight(&mut self) {
        self.in_flight = FuturesUnordered::new();
        let now = Instant::now().into_std();
        let candidates = self.candidates;
        self.cx
            .shared
            .health
            .abandon(self.running.drain().map(|index| &candidates[index].key), now);
    }
}
