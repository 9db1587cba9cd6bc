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

use switchboard_core::plan::{Candidate, Exclusion, RouteQuery, plan};
use switchboard_core::{
    AttemptOutcome, Certainty, ErrorClass, Failure, OutboundMessage, ProviderId,
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
    /// The provider that took the previous code for this number (a resend): tried last.
    pub(crate) avoid: Option<ProviderId>,
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
    let query = RouteQuery { country: message.destination.country(), channel: message.channel };
    // Providers that may already have the message: never sent to again in this delivery.
    let mut possibly_accepted: HashSet<ProviderId> = HashSet::new();
    let mut n_attempts: u32 = 0;
    let mut backoff = limits.retry_backoff;

    for pass in 0..limits.max_passes.max(1) {
        let plan = {
            let health = shared.health();
            plan(&runtime.routes, &health, &query, Instant::now().into_std())
        };
        if pass == 0 {
            let rule = plan.rule.as_ref().map(|rule| rule.name.to_string());
            let is_unrouted = rule.is_none();
            progress.send_modify(|p| {
                p.rule = rule;
                p.excluded = plan.excluded.clone();
            });
            if is_unrouted {
                return DispatchResult::Undelivered { reason: Undelivered::NoRoute };
            }
            if plan.candidates.is_empty() {
                return DispatchResult::Undelivered { reason: Undelivered::NoCandidate };
            }
        }
        let mut n_tried_this_pass = 0;
        for candidate in demote(plan.candidates, limits.avoid.as_ref()) {
            if possibly_accepted.contains(&candidate.provider) {
                continue;
            }
            if n_attempts >= limits.max_attempts {
                return DispatchResult::Undelivered { reason: Undelivered::AllFailed };
            }
            if limits.attempt_deadline.saturating_duration_since(Instant::now()) < MIN_ATTEMPT_TIME
            {
                return DispatchResult::Undelivered { reason: Undelivered::DeadlineReached };
            }
            let Some(record) =
                attempt(shared, runtime, message, &candidate, limits.attempt_deadline).await
            else {
                continue;
            };
            n_attempts += 1;
            n_tried_this_pass += 1;
            let outcome = record.outcome.clone();
            progress.send_modify(|p| p.attempts.push(record));
            match outcome {
                AttemptOutcome::Accepted { message_id } => {
                    return DispatchResult::Delivered { provider: candidate.provider, message_id };
                }
                AttemptOutcome::Failed(failure) if !failure.class.is_failover_allowed() => {
                    return DispatchResult::Rejected { class: failure.class };
                }
                AttemptOutcome::Failed(failure) => {
                    if failure.certainty == Certainty::PossiblyAccepted {
                        shared.metrics.possible_duplicate(&candidate.provider);
                        possibly_accepted.insert(candidate.provider);
                    }
                }
            }
        }
        let next_pass = Instant::now() + backoff;
        let is_last_pass = pass + 1 >= limits.max_passes
            || n_tried_this_pass == 0
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
    DispatchResult::Undelivered { reason: Undelivered::AllFailed }
}

/// Moves the provider that took the previous code for this number to the end: a user who asks
/// again probably did not get it. Demoted, not excluded: it may be the only one that works.
fn demote(mut candidates: Vec<Candidate>, avoid: Option<&ProviderId>) -> Vec<Candidate> {
    if let Some(avoid) = avoid {
        if let Some(index) = candidates.iter().position(|c| &c.provider == avoid) {
            let candidate = candidates.remove(index);
            candidates.push(candidate);
        }
    }
    candidates
}

/// One send, recorded into health and metrics. `None` when the provider could not be used
/// (its probation trial is taken by another request).
async fn attempt(
    shared: &Shared,
    runtime: &Runtime,
    message: &OutboundMessage,
    candidate: &Candidate,
    deadline: Instant,
) -> Option<AttemptRecord> {
    // The route table is validated against the providers, so the lookup cannot fail.
    let provider = runtime.providers.get(&candidate.provider)?;
    if !shared.health().begin_attempt(candidate, Instant::now().into_std()) {
        return None;
    }
    let started = Instant::now();
    let remaining = deadline.saturating_duration_since(started);
    let outcome = match tokio::time::timeout(remaining, provider.send(message)).await {
        Ok(Ok(accepted)) => AttemptOutcome::Accepted { message_id: accepted.message_id },
        Ok(Err(error)) => {
            tracing::debug!(provider = %candidate.provider, error = %error, "attempt failed");
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
        let sent = SentMessage {
            event_id: message.reference.clone(),
            country: message.destination.country(),
            channel: message.channel,
        };
        shared.sent.insert(candidate.provider.clone(), message_id.clone(), sent, Instant::now());
    }
    shared.health().record(&candidate.provider, &outcome, Instant::now().into_std());
    shared.metrics.attempt(&candidate.provider, message.channel, &outcome, elapsed);
    Some(AttemptRecord { provider: candidate.provider.clone(), outcome, elapsed })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(id: &str) -> Candidate {
        Candidate { provider: ProviderId::parse(id).unwrap(), is_trial: false, is_fail_open: false }
    }

    #[test]
    fn a_resend_tries_the_previous_provider_last() {
        let candidates = vec![candidate("a"), candidate("b"), candidate("c")];
        let order: Vec<String> = demote(candidates.clone(), ProviderId::parse("a").as_ref())
            .into_iter()
            .map(|c| c.provider.to_string())
            .collect();
        assert_eq!(order, ["b", "c", "a"]);
        let unchanged = demote(candidates, ProviderId::parse("zz").as_ref());
        assert_eq!(unchanged.len(), 3);
        assert_eq!(unchanged[0].provider.as_str(), "a");
    }
}
