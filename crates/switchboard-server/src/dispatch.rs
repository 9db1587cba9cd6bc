//! Dispatch: carry one delivery through the planned candidates inside the deadline.
//!
//! The cascade tries one provider at a time. Each attempt is bounded by the provider's own
//! timeout and by the time left before Okta must be answered; whatever happens, dispatch returns
//! before the deadline. Number-level verdicts (invalid, blocked, fraud block) stop the cascade:
//! every other provider would refuse too, and trying them costs money or launders pumping
//! traffic. An attempt that may have been accepted (timeout, broken connection) still fails over,
//! because a missing code is worse than a duplicate one, but it is counted as a possible duplicate.

use std::time::Duration;

use switchboard_core::plan::{Candidate, Exclusion, RouteQuery, plan};
use switchboard_core::{
    Admission, AttemptKind, AttemptOutcome, Certainty, ErrorClass, Failure, OutboundMessage,
    ProviderId, Purpose,
};
use tokio::time::Instant;

use crate::state::{Runtime, Shared};

/// Below this much time left, another attempt cannot finish: answer instead.
const MIN_ATTEMPT_TIME: Duration = Duration::from_millis(50);

/// One attempt, for the log line and the answer's metadata.
#[derive(Debug, Clone)]
pub(crate) struct AttemptRecord {
    pub(crate) provider: ProviderId,
    pub(crate) outcome: AttemptOutcome,
    pub(crate) elapsed: Duration,
}

/// How the delivery ended.
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
    /// Every candidate was tried and failed.
    AllFailed,
    /// Time ran out with candidates left.
    DeadlineReached,
    /// Failover was refused by the retry budget with candidates left.
    RetryBudget,
}

impl Undelivered {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Undelivered::NoRoute => "no_route",
            Undelivered::NoCandidate => "no_candidate",
            Undelivered::AllFailed => "all_failed",
            Undelivered::DeadlineReached => "deadline_reached",
            Undelivered::RetryBudget => "retry_budget",
        }
    }
}

/// Everything dispatch did, in order.
#[derive(Debug)]
pub(crate) struct DispatchReport {
    pub(crate) rule: Option<String>,
    pub(crate) excluded: Vec<Exclusion>,
    pub(crate) attempts: Vec<AttemptRecord>,
    pub(crate) result: DispatchResult,
}

/// Runs the cascade for `message`, returning no later than `deadline` (plus scheduling noise).
pub(crate) async fn dispatch(
    shared: &Shared,
    runtime: &Runtime,
    message: &OutboundMessage,
    purpose: Purpose,
    deadline: Instant,
) -> DispatchReport {
    let query =
        RouteQuery::for_destination(&message.destination, message.channel).with_purpose(purpose);
    let plan = {
        let mut health = shared.health();
        let now = Instant::now().into_std();
        health.begin_request(now);
        plan(&runtime.routes, &health, &query, now, &mut rand::rng())
    };
    let rule = plan.rule.as_ref().map(|rule| rule.name.to_string());
    let mut report = DispatchReport {
        rule,
        excluded: plan.excluded,
        attempts: Vec::new(),
        result: DispatchResult::Undelivered { reason: Undelivered::AllFailed },
    };
    if report.rule.is_none() {
        report.result = DispatchResult::Undelivered { reason: Undelivered::NoRoute };
        return report;
    }
    if plan.candidates.is_empty() {
        report.result = DispatchResult::Undelivered { reason: Undelivered::NoCandidate };
        return report;
    }

    let mut kind = AttemptKind::First;
    for candidate in &plan.candidates {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining < MIN_ATTEMPT_TIME {
            report.result = DispatchResult::Undelivered { reason: Undelivered::DeadlineReached };
            return report;
        }
        let Some(provider) = runtime.providers.get(candidate.provider()) else {
            // The route table is validated against the providers, so this cannot happen.
            continue;
        };
        match begin_attempt(shared, candidate, kind) {
            Admission::Go => kind = AttemptKind::Failover,
            admission if admission.is_budget() => {
                report.result = DispatchResult::Undelivered { reason: Undelivered::RetryBudget };
                return report;
            }
            _ => continue,
        }

        let started = Instant::now();
        let outcome = match tokio::time::timeout(remaining, provider.send(message)).await {
            Ok(Ok(accepted)) => AttemptOutcome::Accepted { message_id: accepted.message_id },
            Ok(Err(error)) => {
                tracing::debug!(provider = %candidate.provider(), error = %error, "attempt failed");
                AttemptOutcome::Failed(error.failure())
            }
            Err(_elapsed) => AttemptOutcome::Failed(Failure {
                class: ErrorClass::Timeout,
                certainty: Certainty::PossiblyAccepted,
                retry_after: None,
            }),
        };
        let elapsed = started.elapsed();
        shared.health().record(&candidate.key, &outcome, elapsed, Instant::now().into_std());
        shared.metrics.attempt(candidate.provider(), message.channel, &outcome, elapsed);
        report.attempts.push(AttemptRecord {
            provider: candidate.provider().clone(),
            outcome: outcome.clone(),
            elapsed,
        });

        match outcome {
            AttemptOutcome::Accepted { message_id } => {
                report.result = DispatchResult::Delivered {
                    provider: candidate.provider().clone(),
                    message_id,
                };
                return report;
            }
            AttemptOutcome::Failed(failure) if !failure.class.is_failover_allowed() => {
                report.result = DispatchResult::Rejected { class: failure.class };
                return report;
            }
            AttemptOutcome::Failed(failure) => {
                if failure.certainty == Certainty::PossiblyAccepted {
                    shared.metrics.possible_duplicate(candidate.provider());
                }
            }
        }
    }
    let is_out_of_time = deadline.saturating_duration_since(Instant::now()) < MIN_ATTEMPT_TIME;
    let tried_all = report.attempts.len() == plan.candidates.len();
    if is_out_of_time && !tried_all {
        report.result = DispatchResult::Undelivered { reason: Undelivered::DeadlineReached };
    }
    report
}

fn begin_attempt(shared: &Shared, candidate: &Candidate, kind: AttemptKind) -> Admission {
    shared.health().begin_attempt(candidate, kind, Instant::now().into_std())
}
