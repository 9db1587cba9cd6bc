//! One attempt: the send, bounded by the attempt deadline; its one log line; and recording its
//! outcome in health, the spend meter, the sent-message index and the metrics.
//!
//! This is the only place an attempt's outcome is logged (the adapters do not): one debug line
//! with the provider, its kind, the attempt's kind, and for a failure the error class,
//! certainty, provider code and the adapter's log-safe detail. Never a passcode, a body or a
//! number.

use std::time::Duration;

use switchboard_core::health::HealthKey;
use switchboard_core::{
    AttemptKind, AttemptOutcome, Certainty, ErrorClass, Failure, OutboundMessage, ProviderId,
};
use switchboard_providers::{Provider, ProviderError, SharedProvider};
use tokio::time::Instant;

use super::Context;
use crate::health::HealthStore;
use crate::metrics::Metrics;
use crate::sent::{SentMessage, SentMessages};
use crate::spend::SpendMeter;

/// One launched send: which candidate of the pass, to whom, and why.
#[derive(Debug, Clone)]
pub(super) struct Attempt {
    /// The candidate's index in the pass.
    pub(super) index: usize,
    pub(super) provider: ProviderId,
    pub(super) key: HealthKey,
    pub(super) kind: AttemptKind,
}

/// What one finished attempt reports: the candidate's index, the outcome, and how long it took.
pub(super) type Finished = (usize, AttemptOutcome, Duration);

/// Sends through `provider` until the attempt deadline, logs the outcome, and records it.
pub(super) async fn run(cx: Context<'_>, provider: &SharedProvider, attempt: Attempt) -> Finished {
    let started = Instant::now();
    let (outcome, error) =
        send_within(provider.as_ref(), cx.message, cx.limits.attempt_deadline).await;
    let elapsed = started.elapsed();
    log_outcome(&attempt, provider.kind(), &outcome, error.as_ref(), elapsed, cx.message);
    let price = match outcome {
        AttemptOutcome::Accepted { .. } => cx.runtime.routes.prices().message_price(
            &attempt.provider,
            attempt.key.country(),
            attempt.key.channel(),
            cx.limits.segments,
        ),
        AttemptOutcome::Failed(_) => None,
    };
    let shared = cx.shared;
    let books = Books {
        health: &shared.health,
        spend: &shared.spend,
        today: shared.today(),
        sent: &shared.sent,
        fleet: &shared.fleet,
        metrics: &shared.metrics,
    };
    record(books, &attempt, cx.message, &outcome, price, elapsed);
    (attempt.index, outcome, elapsed)
}

/// Sends, cut off at `deadline`: a send still running then may have been accepted.
async fn send_within(
    provider: &dyn Provider,
    message: &OutboundMessage,
    deadline: Instant,
) -> (AttemptOutcome, Option<ProviderError>) {
    let remaining = deadline.saturating_duration_since(Instant::now());
    match tokio::time::timeout(remaining, provider.send(message)).await {
        Ok(Ok(accepted)) => (AttemptOutcome::Accepted { message_id: accepted.message_id }, None),
        Ok(Err(error)) => (AttemptOutcome::Failed(error.failure()), Some(error)),
        Err(_elapsed) => {
            let failure = Failure {
                class: ErrorClass::Timeout,
                certainty: Certainty::PossiblyAccepted,
                retry_after: None,
            };
            (AttemptOutcome::Failed(failure), None)
        }
    }
}

/// Where an attempt's outcome is kept.
pub(super) struct Books<'a> {
    pub(super) health: &'a HealthStore,
    /// Spending, for the guard's daily caps.
    pub(super) spend: &'a SpendMeter,
    /// The UTC day an acceptance is spent on.
    pub(super) today: i64,
    /// Accepted messages, for matching delivery receipts.
    pub(super) sent: &'a SentMessages,
    /// The shared sent-message index, in Redis mode.
    pub(super) fleet: &'a crate::fleet::Fleet,
    pub(super) metrics: &'a Metrics,
}

/// Records one attempt's outcome: an acceptance is priced into the spend meter (`price` per
/// message; unknown prices count as free) and indexed for its receipts; every outcome goes
/// into health and the metrics.
pub(super) fn record(
    books: Books<'_>,
    attempt: &Attempt,
    message: &OutboundMessage,
    outcome: &AttemptOutcome,
    price: Option<f64>,
    elapsed: Duration,
) {
    if let AttemptOutcome::Accepted { message_id } = outcome {
        books.spend.record(books.today, attempt.key.country(), price.unwrap_or(0.0));
        let sent = SentMessage { key: attempt.key.clone(), event_id: message.reference.clone() };
        if let Some(redis) = books.fleet.redis() {
            crate::fleet::sent::remember(redis, message_id, &attempt.key, &message.reference);
        }
        books.sent.insert(attempt.provider.clone(), message_id.clone(), sent, Instant::now());
    }
    books.health.record(&attempt.key, outcome, elapsed, Instant::now().into_std());
    books.metrics.attempt(&attempt.provider, message.channel, outcome, elapsed);
}

/// The attempt's one log line. `error` is the adapter's, when it answered; an attempt cut off
/// by the deadline has none.
fn log_outcome(
    attempt: &Attempt,
    provider_kind: &'static str,
    outcome: &AttemptOutcome,
    error: Option<&ProviderError>,
    elapsed: Duration,
    message: &OutboundMessage,
) {
    let elapsed_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
    match outcome {
        AttemptOutcome::Accepted { .. } => tracing::debug!(
            provider = %attempt.provider,
            kind = provider_kind,
            attempt = attempt.kind.as_str(),
            elapsed_ms,
            event_id = %message.reference,
            "attempt accepted"
        ),
        AttemptOutcome::Failed(failure) => tracing::debug!(
            provider = %attempt.provider,
            kind = provider_kind,
            attempt = attempt.kind.as_str(),
            class = %failure.class,
            certainty = failure.certainty.as_str(),
            code = error.and_then(|e| e.provider_code.as_deref()).unwrap_or(""),
            detail = error.map_or("attempt deadline reached", |e| e.detail.as_str()),
            elapsed_ms,
            event_id = %message.reference,
            "attempt failed"
        ),
    }
}
