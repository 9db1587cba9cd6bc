//! What a delivery reports: each attempt, how the delivery ended, and the progress the hook
//! reads to answer Okta in the middle of a delivery.

use std::time::Duration;

use switchboard_core::plan::Exclusion;
use switchboard_core::{AttemptOutcome, ErrorClass, ProviderId};

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
