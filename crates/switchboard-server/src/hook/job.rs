//! One admitted delivery, from first attempt to final outcome: it runs in a task of its own,
//! publishes Okta's answer by the deadline (at once when the delivery ends sooner, or when a
//! background delivery starts waiting between passes), then keeps delivering in the background
//! when Okta was told SUCCESSFUL.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use switchboard_core::health::HealthKey;
use switchboard_core::{Channel, OutboundMessage, ProviderId, Purpose};
use tokio::sync::watch;
use tokio::time::Instant;

use super::log::LogLine;
use crate::config::Report;
use crate::dispatch::{DispatchResult, Limits, Progress, deliver};
use crate::fleet::ledger::{event_digest, phone_history};
use crate::ledger::Answer;
use crate::metrics::HookOutcome;
use crate::okta::{ActionStatus, HookResponse};
use crate::overload::Permit;
use crate::state::{Runtime, Shared};

/// One admitted delivery.
pub(super) struct Job {
    pub(super) shared: Arc<Shared>,
    pub(super) runtime: Arc<Runtime>,
    /// The keyed hash of Okta's user and the channel, when Okta's events are configured.
    pub(super) user: Option<crate::conversions::UserKey>,
    pub(super) message: OutboundMessage,
    pub(super) purpose: Purpose,
    /// When Okta's request arrived.
    pub(super) arrival: Instant,
    /// When Okta must have its answer.
    pub(super) deadline: Instant,
    pub(super) lifetime: Option<Duration>,
}

/// What Okta was told.
struct Answered {
    outcome: HookOutcome,
    /// `delivered`, `pending`, `retrying`, or the result's label.
    label: String,
    status: ActionStatus,
}

impl Job {
    /// Delivers, publishing Okta's answer by the deadline; `_running` holds the delivery's slot
    /// in the server's load until the delivery ends.
    pub(super) async fn run(self, publish: watch::Sender<Option<Arc<Answer>>>, _running: Permit) {
        let phone_key = self.shared.phones.key(&self.message.destination);
        // One look at the number's last send (fleet-wide in Redis mode): who to try last, and,
        // without Okta's events, whether this request is the first to supersede that send.
        let supersede = !self.runtime.okta.reports_conversions();
        let history = phone_history(&self.shared, &phone_key, supersede, self.arrival).await;
        let limits = self.limits(history.previous);
        crate::events::note_resend(&self.shared, &self.runtime, history.superseded, self.arrival);
        let (progress, watching) = watch::channel(Progress::default());
        let delivery = deliver(&self.shared, &self.runtime, &self.message, &limits, &progress);
        tokio::pin!(delivery);
        let early = self.until_answer_time(&mut delivery, watching, limits.is_background).await;
        // Remember who took the code before anyone can see the answer, so a resend that
        // follows it is recognised.
        if let Some(result) = &early {
            self.remember(phone_key, result);
        }
        let snapshot = progress.borrow().clone();
        let elapsed = self.arrival.elapsed();
        let answered = self.answer_okta(&publish, early.as_ref(), &snapshot, elapsed);
        let phone = self.shared.phones.reference(&self.message.destination);
        let log = LogLine {
            message: &self.message,
            purpose: self.purpose,
            phone: &phone,
            is_resend: limits.avoid.is_some(),
        };
        let is_warning = answered.outcome != HookOutcome::Delivered;
        log.emit(
            "hook request",
            &snapshot,
            &answered.label,
            Some(answered.status),
            elapsed,
            is_warning,
        );
        let result = match early {
            Some(result) => result,
            None => self.finish_in_background(delivery, &progress, &log, phone_key).await,
        };
        let (outcome, reason) = result.metric_labels();
        self.shared.metrics.delivery_finished(outcome, reason, self.message.channel);
    }

    /// The bounds of this delivery: until the answer deadline, or in the background until the
    /// code expires; the provider that took this number's previous code (`avoid`) goes last.
    fn limits(&self, avoid: Option<ProviderId>) -> Limits {
        let runtime = &self.runtime;
        // Keep delivering after the answer only when Okta was told SUCCESSFUL (so its own
        // providers stay silent) and the code has not expired yet.
        let background =
            runtime.okta.report == Report::AlwaysSuccess && runtime.delivery.background;
        let (attempt_deadline, is_background) = match self.lifetime {
            Some(lifetime) if background => ((self.arrival + lifetime).max(self.deadline), true),
            _ => (self.deadline, false),
        };
        Limits {
            attempt_deadline,
            max_attempts: runtime.delivery.max_attempts,
            is_background,
            retry_backoff: runtime.delivery.retry_backoff,
            avoid,
            purpose: self.purpose,
            segments: segments(&self.message),
        }
    }

    /// Waits until Okta must be answered: the delivery's result when it ends first, `None` when
    /// a background delivery is still going at the deadline or starts waiting between passes.
    async fn until_answer_time<F: Future<Output = DispatchResult>>(
        &self,
        delivery: &mut std::pin::Pin<&mut F>,
        mut watching: watch::Receiver<Progress>,
        is_background: bool,
    ) -> Option<DispatchResult> {
        if !is_background {
            // Bounded by the answer deadline already.
            return Some(delivery.await);
        }
        tokio::select! {
            // A result that is ready wins over the deadline firing in the same tick.
            biased;
            result = delivery => Some(result),
            _ = watching.wait_for(|p| p.is_waiting) => None,
            () = tokio::time::sleep_until(self.deadline) => None,
        }
    }

    /// Notes the provider that took the code, so a resend to this number goes elsewhere first
    /// (and counts against it), and, with Okta's events, so the events can settle it.
    fn remember(&self, phone_key: [u8; 32], result: &DispatchResult) {
        if let DispatchResult::Delivered { provider, .. } = result {
            let expires = self.arrival + self.lifetime.unwrap_or_default();
            let destination = &self.message.destination;
            let key = HealthKey::new(provider.clone(), destination.country(), self.message.channel);
            let send = event_digest(&self.message.reference);
            self.shared.ledger.record_accepted(phone_key, key.clone(), send, expires);
            let life = expires.saturating_duration_since(Instant::now());
            crate::fleet::ledger::record_accepted(&self.shared, &phone_key, &key, &send, life);
            if let Some(user) = self.user {
                let event_id = &self.message.reference;
                let (shared, runtime) = (&self.shared, &self.runtime);
                crate::events::record_send(
                    shared,
                    runtime,
                    user,
                    event_id,
                    key,
                    self.arrival,
                    expires,
                );
            }
        }
    }

    /// Publishes Okta's answer through the ledger (a retry gets the same one) and counts it.
    fn answer_okta(
        &self,
        publish: &watch::Sender<Option<Arc<Answer>>>,
        early: Option<&DispatchResult>,
        snapshot: &Progress,
        elapsed: Duration,
    ) -> Answered {
        let (outcome, label) = outcome_of(early, snapshot);
        let status = match (outcome, self.runtime.okta.report) {
            (HookOutcome::Delivered, _) | (_, Report::AlwaysSuccess) => ActionStatus::Successful,
            (_, Report::Truthful) => ActionStatus::Failed,
        };
        // Only a delivery names a provider: Okta's System Log shows `provider`, and naming the
        // last provider tried on a failure reads as if that provider had the message.
        let (provider, transaction_id) = match early {
            Some(DispatchResult::Delivered { provider, message_id }) => {
                (provider.to_string(), message_id.clone())
            }
            _ => ("switchboard".to_owned(), self.message.reference.clone()),
        };
        let metadata = format!(
            "outcome={label}; attempts={}; duration_ms={}; route={}",
            snapshot.attempts.len(),
            elapsed.as_millis(),
            snapshot.rule.as_deref().unwrap_or("-"),
        );
        let response = HookResponse::new(status, provider, transaction_id, metadata);
        let body = serde_json::to_string(&response).unwrap_or_default();
        // Shared in the background after the local publish: Okta's answer never waits on Redis.
        crate::fleet::ledger::share_answer(&self.shared, &self.message.reference, &body);
        self.shared.ledger.publish(&self.message.reference, publish, Answer { body });
        let channel = self.message.channel;
        self.shared.metrics.hook_answered(outcome, status.as_str(), channel, self.purpose);
        Answered { outcome, label, status }
    }

    /// Delivers on after Okta was answered, and logs how it ended.
    async fn finish_in_background<F: Future<Output = DispatchResult>>(
        &self,
        delivery: std::pin::Pin<&mut F>,
        progress: &watch::Sender<Progress>,
        log: &LogLine<'_>,
        phone_key: [u8; 32],
    ) -> DispatchResult {
        let result = delivery.await;
        self.remember(phone_key, &result);
        let snapshot = progress.borrow().clone();
        let is_delivered = matches!(result, DispatchResult::Delivered { .. });
        let (what, elapsed) = ("delivery finished after answering", self.arrival.elapsed());
        log.emit(what, &snapshot, &result.label(), None, elapsed, !is_delivered);
        result
    }
}

/// The outcome Okta's answer reports, and its label in the metadata.
fn outcome_of(early: Option<&DispatchResult>, snapshot: &Progress) -> (HookOutcome, String) {
    match early {
        Some(DispatchResult::Delivered { .. }) => (HookOutcome::Delivered, "delivered".to_owned()),
        Some(result @ DispatchResult::Rejected { .. }) => (HookOutcome::Rejected, result.label()),
        Some(result @ DispatchResult::Undelivered { .. }) => {
            (HookOutcome::Undelivered, result.label())
        }
        None if snapshot.is_waiting => (HookOutcome::Pending, "retrying".to_owned()),
        None => (HookOutcome::Pending, "pending".to_owned()),
    }
}

/// Prices are per SMS part (a call counts as one minute).
fn segments(message: &OutboundMessage) -> u32 {
    match message.channel {
        Channel::Sms => {
            u32::try_from(switchboard_core::text::segments(message.text.expose()).count)
                .unwrap_or(u32::MAX)
        }
        Channel::Voice => 1,
    }
}
