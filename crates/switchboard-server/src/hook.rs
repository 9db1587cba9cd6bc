//! The Okta hook endpoint: authenticate, parse, admit through the ledger, deliver, answer in
//! Okta's exact shape by the deadline, and log one line per request.
//!
//! The delivery runs in a task of its own, tracked for graceful shutdown, so neither Okta hanging
//! up nor the answer being sent can cut an attempt in half. The handler only waits for the answer
//! that task publishes (and a repeated `eventId` waits for the same one).
//!
//! This file reads top-down as the request goes: authentication, load admission, then
//! [`answer`]: `request` reads and parses the body, `message` screens the number and builds the
//! message, the ledger admits the event once, `screening` asks the fraud guard, and `job` runs
//! the delivery and publishes the answer (`answers` has the answers that come from elsewhere:
//! shed requests, a repeated event), logging through `log`.

mod answers;
mod job;
mod log;
mod message;
mod request;
mod screening;

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use switchboard_core::OutboundMessage;
use tokio::sync::watch;
use tokio::time::Instant;

use self::answers::{pending_answer, shed, shed_answer, wait_for_answer};
use self::job::Job;
pub(crate) use self::screening::{Refusal, Screening};
use crate::fleet::{self, ledger::Claim};
use crate::ledger::{Admission, Answer, Fingerprint};
use crate::listener::Arrival;
use crate::okta::ErrorResponse;
use crate::overload::Shed;
use crate::state::{Runtime, Shared};

/// Checks Okta's credentials before the body is read: a forged call costs one header compare
/// or one signature check, and never a provider call. The token is never logged.
pub(crate) async fn require_okta_auth(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    let runtime = shared.runtime();
    match runtime.okta.auth.verify(request.headers()).await {
        Ok(()) => next.run(request).await,
        Err(failure) => {
            shared.metrics.hook_refused(failure.as_str());
            let (mode, header) = (runtime.okta.auth.mode(), runtime.okta.auth.header());
            if failure.is_ours() {
                tracing::error!(
                    reason = failure.as_str(),
                    mode,
                    header,
                    "hook request refused: no okta signing keys could be fetched yet"
                );
            } else {
                tracing::warn!(
                    reason = failure.as_str(),
                    mode,
                    header,
                    "hook request refused: authentication failed"
                );
            }
            let body = ErrorResponse::new("authentication failed", "UNAUTHORIZED", None);
            (StatusCode::UNAUTHORIZED, Json(body)).into_response()
        }
    }
}

/// The answer is published this long before `okta.deadline_ms`, so that it is on the wire by
/// then even when the runtime is busy: with 9,000 requests arriving in a second and every
/// provider hanging, answers published at the deadline reached the client up to 97 ms later.
const ANSWER_MARGIN: Duration = Duration::from_millis(100);

/// When, after arrival, the answer is published for a deadline of `deadline`.
fn answer_within(deadline: Duration) -> Duration {
    deadline.saturating_sub(ANSWER_MARGIN).max(deadline / 2)
}

/// `POST {okta.path}`. The answer deadline runs from the request's arrival (its first byte), so
/// everything here, reading the body included, spends Okta's 3 seconds.
pub(crate) async fn handle_hook(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let arrival = Arrival::of(&request);
    let runtime = shared.runtime();
    let deadline = arrival + answer_within(runtime.okta.deadline);
    let overload = runtime.overload;
    let _permit = match shared.load.admit(
        arrival,
        runtime.okta.deadline,
        overload.max_in_flight,
        overload.max_deliveries,
    ) {
        Ok(permit) => permit,
        Err(reason) => return shed(&shared, &runtime, reason),
    };
    let response = answer(&shared, &runtime, arrival, deadline, request).await;
    shared.metrics.hook_duration(arrival.elapsed());
    response
}

/// Everything between admission and the answer.
async fn answer(
    shared: &Arc<Shared>,
    runtime: &Arc<Runtime>,
    arrival: Instant,
    deadline: Instant,
    request: Request,
) -> Response {
    let delivery = match request::read_delivery(shared, runtime, arrival, request).await {
        Ok(delivery) => delivery,
        Err(refused) => return *refused,
    };
    let message = match message::outbound_message(shared, runtime, &delivery) {
        Ok(message) => message,
        Err(refused) => return *refused,
    };
    let lifetime = runtime.delivery.otp_lifetime(delivery.otp_expires);
    // The ledger keeps the event at least as long as Okta could retry it.
    let remember_until = arrival + lifetime.unwrap_or_default().max(Duration::from_secs(60));
    let event_id = message.reference.clone();
    let fingerprint = fingerprint(&message);
    let answer = match shared.ledger.admit(&event_id, fingerprint, remember_until, arrival) {
        Admission::Conflict => return conflict(shared, &event_id),
        Admission::Repeat(answer) => {
            shared.metrics.hook_repeated();
            tracing::info!(event_id = %event_id, "repeated eventId: answering with the first request's answer");
            answer
        }
        Admission::New(publish) => {
            // Okta's user, hashed with the channel, for matching Okta's events to this send.
            let user = delivery
                .user_id
                .as_deref()
                .filter(|_| runtime.okta.reports_conversions())
                .map(|id| crate::conversions::user_key(&shared.phones, id, message.channel));
            let job = Job {
                shared: Arc::clone(shared),
                runtime: Arc::clone(runtime),
                user,
                message,
                purpose: delivery.purpose,
                arrival,
                deadline,
                lifetime,
            };
            let asked = (delivery.user_id.clone(), delivery.ip_address);
            let decision = if shared.fleet.redis().is_none() {
                // Memory mode: nothing in it waits.
                start(job, asked, publish).await
            } else {
                // New here; the fleet may have seen it on another replica. The claim and the
                // guard ask Redis in a task of their own (see `admit_in_fleet`).
                let remember_for = remember_until - arrival;
                admit_in_fleet(job, asked, fingerprint, remember_for, publish).await
            };
            match decision {
                Ok(answer) => answer,
                Err(refused) => return *refused,
            }
        }
    };
    wait_for_answer(answer).await
}

/// Starts a new event's delivery unless the fraud guard blocks it (its refusal is the answer)
/// or the last delivery slot went in the meantime (shed, and a retry is told so too). Returns
/// where the answer will be published.
/// `asked` is who asked: Okta's user id and the end user's IP address, when sent.
async fn start(
    job: Job,
    asked: (Option<String>, Option<std::net::IpAddr>),
    publish: watch::Sender<Option<Arc<Answer>>>,
) -> Result<watch::Receiver<Option<Arc<Answer>>>, Box<Response>> {
    let (shared, runtime) = (&job.shared, &job.runtime);
    let answer = publish.subscribe();
    let (user_id, ip_address) = (asked.0.as_deref(), asked.1);
    if let Some(blocked) =
        screening::check_guard(shared, runtime, &job.message, user_id, ip_address).await
    {
        // Published through the ledger, so Okta's retry gets the same refusal.
        fleet::ledger::share_answer(shared, &job.message.reference, &blocked.body);
        shared.ledger.publish(&job.message.reference, &publish, blocked);
        return Ok(answer);
    }
    let Some(running) = shared.load.start_delivery(runtime.overload.max_deliveries) else {
        // Raced past admission with the last slot taken: shed, and say so to a retry.
        let shed = shed_answer(runtime, Shed::Deliveries);
        shared.metrics.shed(Shed::Deliveries.as_str());
        fleet::ledger::share_answer(shared, &job.message.reference, &shed.1);
        shared.ledger.publish(&job.message.reference, &publish, Answer { body: shed.1.clone() });
        return Err(Box::new(shed.into_response_parts()));
    };
    let tracker = shared.tracker.clone();
    tracker.spawn(job.run(publish, running));
    Ok(answer)
}

/// Redis mode: claims a new event fleet-wide, then starts its delivery (ours), waits for the
/// replica that has it (a repeat: its answer, or `pending` at this request's deadline), or
/// refuses it (a different phone, code or channel). In a task of its own, like the delivery:
/// once this replica admitted the event, Okta hanging up mid-claim (or while the guard asks
/// Redis) must not leave it admitted here with nobody sending or answering it.
async fn admit_in_fleet(
    job: Job,
    asked: (Option<String>, Option<std::net::IpAddr>),
    fingerprint: Fingerprint,
    remember_for: Duration,
    publish: watch::Sender<Option<Arc<Answer>>>,
) -> Result<watch::Receiver<Option<Arc<Answer>>>, Box<Response>> {
    let (decided, decision) = tokio::sync::oneshot::channel();
    let shared = Arc::clone(&job.shared);
    shared.tracker.spawn(async move {
        let shared = Arc::clone(&job.shared);
        let event_id = job.message.reference.clone();
        match fleet::ledger::claim(&shared, &event_id, fingerprint, remember_for, publish).await {
            Claim::Here(publish) => {
                let _ = decided.send(start(job, asked, publish).await);
            }
            Claim::Conflict => {
                let _ = decided.send(Err(Box::new(conflict(&shared, &event_id))));
            }
            Claim::Elsewhere(elsewhere) => {
                shared.metrics.hook_repeated();
                tracing::info!(event_id = %event_id, "repeated eventId, first seen by another replica: answering with its answer");
                let _ = decided.send(Ok(elsewhere.answer()));
                let (runtime, arrival) = (&job.runtime, job.arrival);
                let pending = || pending_answer(runtime, &event_id, arrival.elapsed());
                fleet::ledger::wait_elsewhere(&shared, elsewhere, job.deadline, pending).await;
            }
        }
    });
    // A task that ended without deciding (a bug) reads as a delivery that never answered.
    decision.await.unwrap_or_else(|_| Ok(watch::channel(None).1))
}

/// A reused `eventId` with a different phone, code or channel.
fn conflict(shared: &Shared, event_id: &str) -> Response {
    shared.metrics.hook_refused("event_id_reused");
    tracing::warn!(event_id = %event_id, "hook request refused: eventId reused with a different phone, code or channel");
    let body = ErrorResponse::new(
        "eventId was already used for a different phone number, code or channel",
        "CONFLICT",
        Some("eventId".into()),
    );
    (StatusCode::CONFLICT, Json(body)).into_response()
}

/// Digest of what the request asks for, to tell a retry from a reused `eventId`.
fn fingerprint(message: &OutboundMessage) -> Fingerprint {
    let mut hasher = Sha256::new();
    for part in [message.destination.e164(), message.passcode.expose(), message.channel.as_str()] {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    hasher.finalize().into()
}

#[cfg(test)]
mod tests;
