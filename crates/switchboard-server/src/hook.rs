//! The Okta hook endpoint: authenticate, parse, admit through the ledger, deliver, answer in
//! Okta's exact shape by the deadline, and log one line per request.
//!
//! The delivery runs in a task of its own, tracked for graceful shutdown, so neither Okta hanging
//! up nor the answer being sent can cut an attempt in half. The handler only waits for the answer
//! that task publishes (and a repeated `eventId` waits for the same one).

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use switchboard_core::{Destination, MessageText, OutboundMessage, Purpose};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::config::Report;
use crate::dispatch::{DispatchResult, Limits, Progress, deliver};
use crate::guard::{BlockedAnswer, GuardInput, ip_key, prefix_of};
use crate::ledger::{Admission, Answer, Fingerprint};
use crate::metrics::HookOutcome;
use crate::okta::{ActionStatus, ErrorResponse, HookRequest, HookResponse};
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

/// Clock skew tolerated between Okta's `otpExpires` and our clock.
const EXPIRY_SKEW: Duration = Duration::from_secs(30);

/// `POST {okta.path}`.
pub(crate) async fn handle_hook(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let received = Instant::now();
    let runtime = shared.runtime();
    if !is_json(&headers) {
        shared.metrics.hook_refused("content_type");
        let body = ErrorResponse::new(
            "Content-Type must be application/json",
            "UNSUPPORTED_MEDIA_TYPE",
            None,
        );
        return (StatusCode::UNSUPPORTED_MEDIA_TYPE, Json(body)).into_response();
    }

    let request: HookRequest =
        match serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_slice(&body)) {
            Ok(request) => request,
            Err(error) => {
                let location = error.path().to_string();
                // serde_json's message names the missing field or the type mismatch, and never
                // quotes the input's values.
                let summary = format!("invalid request body: {}", error.inner());
                shared.metrics.hook_refused("malformed_body");
                tracing::warn!(location = %location, "hook request refused: malformed body");
                let location = (location != ".").then_some(location);
                return bad_request(&summary, location);
            }
        };
    let delivery = match request.into_delivery() {
        Ok(delivery) => delivery,
        Err(error) => {
            shared.metrics.hook_refused("invalid_field");
            tracing::warn!(location = error.location, reason = %error.reason, "hook request refused: invalid field");
            let summary = format!("{}: {}", error.location, error.reason);
            return bad_request(&summary, Some(error.location.to_owned()));
        }
    };
    let destination = match Destination::parse(&delivery.phone_number, runtime.okta.default_region)
    {
        Ok(destination) => destination,
        Err(error) => {
            return refuse(&shared, &delivery.event_id, "invalid_phone_number", &error.to_string());
        }
    };

    if !destination.kind().takes_otp(delivery.channel) {
        return refuse(
            &shared,
            &delivery.event_id,
            "number_type",
            &format!("{} numbers take no {} OTP", destination.kind(), delivery.channel),
        );
    }
    let is_expired = delivery
        .otp_expires
        .is_some_and(|expires| expires + EXPIRY_SKEW < time::OffsetDateTime::now_utc());
    if is_expired {
        return refuse(&shared, &delivery.event_id, "otp_expired", "otpExpires is in the past");
    }
    let lifetime = runtime.delivery.otp_lifetime(delivery.otp_expires);
    let text = sms_text(&runtime, &shared, &delivery);
    let message = OutboundMessage {
        reference: delivery.event_id.clone(),
        destination,
        channel: delivery.channel,
        passcode: delivery.passcode,
        text,
        locale: delivery.locale,
    };
    // The ledger keeps the event at least as long as Okta could retry it.
    let remember_until = received + lifetime.unwrap_or_default().max(Duration::from_secs(60));
    let answer = match shared.ledger.admit(
        &message.reference,
        fingerprint(&message),
        remember_until,
        received,
    ) {
        Admission::Conflict => {
            shared.metrics.hook_refused("event_id_reused");
            tracing::warn!(event_id = %message.reference, "hook request refused: eventId reused with a different phone, code or channel");
            let body = ErrorResponse::new(
                "eventId was already used for a different phone number, code or channel",
                "CONFLICT",
                Some("eventId".into()),
            );
            return (StatusCode::CONFLICT, Json(body)).into_response();
        }
        Admission::Repeat(answer) => {
            shared.metrics.hook_repeated();
            tracing::info!(event_id = %message.reference, "repeated eventId: answering with the first request's answer");
            answer
        }
        Admission::New(publish) => {
            let answer = publish.subscribe();
            if let Some(blocked) = check_guard(
                &shared,
                &runtime,
                &message,
                delivery.user_id.as_deref(),
                delivery.ip_address,
            ) {
                // Published through the ledger, so Okta's retry gets the same refusal.
                publish.send_replace(Some(Arc::new(blocked)));
                return wait_for_answer(answer).await;
            }
            let job = Job {
                shared: Arc::clone(&shared),
                runtime,
                message,
                purpose: delivery.purpose,
                received,
                lifetime,
            };
            shared.tracker.spawn(job.run(publish));
            answer
        }
    };
    wait_for_answer(answer).await
}

/// Okta's SMS parts cap when no `[sms_text]` says otherwise (threat T12: a long or UCS-2
/// template billed as many segments).
const OKTA_TEXT_MAX_SEGMENTS: usize = 2;

/// The SMS text: the configured template for the user's locale, else Okta's text unless it is
/// missing, lost the code, or would bill more than [`OKTA_TEXT_MAX_SEGMENTS`] parts, else a short
/// built-in text.
fn sms_text(runtime: &Runtime, shared: &Shared, delivery: &crate::okta::Delivery) -> MessageText {
    if let Some(templates) = &runtime.sms_text {
        return templates.render(delivery.locale.as_ref(), &delivery.passcode);
    }
    match &delivery.text {
        Some(text)
            if switchboard_core::text::segments(text.expose()).count <= OKTA_TEXT_MAX_SEGMENTS =>
        {
            text.clone()
        }
        Some(_) => {
            shared.metrics.hook_refused("okta_text_too_long");
            tracing::warn!(event_id = %delivery.event_id, "Okta's SMS text would bill more than two parts; sending the short built-in text");
            MessageText::new(format!("Your verification code is {}", delivery.passcode.expose()))
        }
        None => {
            MessageText::new(format!("Your verification code is {}", delivery.passcode.expose()))
        }
    }
}

/// Waits for the published answer. If the delivery task died without answering (a bug), Okta
/// still gets a well-formed answer, and the details go to the log.
async fn wait_for_answer(mut answer: watch::Receiver<Option<Arc<Answer>>>) -> Response {
    match answer.wait_for(Option::is_some).await {
        Ok(published) => {
            let body = published.as_ref().map(|a| a.body.clone()).unwrap_or_default();
            ([("content-type", "application/json")], body).into_response()
        }
        Err(_) => {
            tracing::error!("delivery task ended without answering");
            let body = ErrorResponse::new("internal error", "INTERNAL_ERROR", None);
            (StatusCode::INTERNAL_SERVER_ERROR, Json(body)).into_response()
        }
    }
}

/// One admitted delivery, from first attempt to final outcome.
struct Job {
    shared: Arc<Shared>,
    runtime: Arc<Runtime>,
    message: OutboundMessage,
    purpose: Purpose,
    received: Instant,
    lifetime: Option<Duration>,
}

impl Job {
    async fn run(self, publish: watch::Sender<Option<Arc<Answer>>>) {
        let Job { shared, runtime, message, purpose, received, lifetime } = self;
        let answer_deadline = received + runtime.okta.deadline;
        // Prices are per SMS part (a call counts as one minute).
        let segments = match message.channel {
            switchboard_core::Channel::Sms => {
                u32::try_from(switchboard_core::text::segments(message.text.expose()).count)
                    .unwrap_or(u32::MAX)
            }
            switchboard_core::Channel::Voice => 1,
        };
        // Keep delivering after the answer only when Okta was told SUCCESSFUL (so its own
        // providers stay silent) and the code has not expired yet.
        let background =
            runtime.okta.report == Report::AlwaysSuccess && runtime.delivery.background;
        let limits = match lifetime {
            Some(lifetime) if background => Limits {
                attempt_deadline: (received + lifetime).max(answer_deadline),
                max_attempts: runtime.delivery.max_attempts,
                max_passes: u32::MAX,
                retry_backoff: runtime.delivery.retry_backoff,
                avoid: None,
                purpose,
                segments,
            },
            _ => Limits {
                attempt_deadline: answer_deadline,
                max_attempts: runtime.delivery.max_attempts,
                max_passes: 1,
                retry_backoff: runtime.delivery.retry_backoff,
                avoid: None,
                purpose,
                segments,
            },
        };
        let phone_key = shared.phones.key(&message.destination);
        let limits =
            Limits { avoid: shared.ledger.previous_provider(&phone_key, received), ..limits };
        let is_resend = limits.avoid.is_some();

        let (progress, mut watching) = watch::channel(Progress::default());
        let delivery = deliver(&shared, &runtime, &message, &limits, &progress);
        tokio::pin!(delivery);
        let early_result = if limits.max_passes == 1 {
            // Bounded by the answer deadline already.
            Some((&mut delivery).await)
        } else {
            tokio::select! {
                // A result that is ready wins over the deadline firing in the same tick.
                biased;
                result = &mut delivery => Some(result),
                _ = watching.wait_for(|p| p.is_waiting) => None,
                () = tokio::time::sleep_until(answer_deadline) => None,
            }
        };

        // Remember who took the code before anyone can see the answer, so a resend that follows
        // it is recognised.
        let remember = |result: &DispatchResult| {
            if let DispatchResult::Delivered { provider, .. } = result {
                let expires = received + lifetime.unwrap_or_default();
                shared.ledger.record_accepted(phone_key, provider.clone(), expires);
            }
        };
        if let Some(result) = &early_result {
            remember(result);
        }
        let snapshot = progress.borrow().clone();
        let elapsed = received.elapsed();
        let (outcome, outcome_label) = match &early_result {
            Some(DispatchResult::Delivered { .. }) => {
                (HookOutcome::Delivered, "delivered".to_owned())
            }
            Some(result @ DispatchResult::Rejected { .. }) => {
                (HookOutcome::Rejected, result.label())
            }
            Some(result @ DispatchResult::Undelivered { .. }) => {
                (HookOutcome::Undelivered, result.label())
            }
            None if snapshot.is_waiting => (HookOutcome::Pending, "retrying".to_owned()),
            None => (HookOutcome::Pending, "pending".to_owned()),
        };
        let status = match (outcome, runtime.okta.report) {
            (HookOutcome::Delivered, _) | (_, Report::AlwaysSuccess) => ActionStatus::Successful,
            (_, Report::Truthful) => ActionStatus::Failed,
        };
        // Only a delivery names a provider: Okta's System Log shows `provider`, and naming the
        // last provider tried on a failure reads as if that provider had the message.
        let (provider, transaction_id) = match &early_result {
            Some(DispatchResult::Delivered { provider, message_id }) => {
                (provider.to_string(), message_id.clone())
            }
            _ => ("switchboard".to_owned(), message.reference.clone()),
        };
        let metadata = format!(
            "outcome={outcome_label}; attempts={}; duration_ms={}; route={}",
            snapshot.attempts.len(),
            elapsed.as_millis(),
            snapshot.rule.as_deref().unwrap_or("-"),
        );
        let response = HookResponse::new(status, provider, transaction_id, metadata);
        let body = serde_json::to_string(&response).unwrap_or_default();
        publish.send_replace(Some(Arc::new(Answer { body })));
        shared.metrics.hook_answered(outcome, status.as_str(), message.channel, purpose, elapsed);

        let phone = shared.phones.reference(&message.destination);
        let log = LogLine { message: &message, purpose, phone: &phone, is_resend };
        log.emit(
            "hook request",
            &snapshot,
            &outcome_label,
            Some(status),
            elapsed,
            outcome != HookOutcome::Delivered,
        );

        let result = match early_result {
            Some(result) => result,
            None => {
                let result = delivery.await;
                remember(&result);
                let snapshot = progress.borrow().clone();
                let is_delivered = matches!(result, DispatchResult::Delivered { .. });
                log.emit(
                    "delivery finished after answering",
                    &snapshot,
                    &result.label(),
                    None,
                    received.elapsed(),
                    !is_delivered,
                );
                result
            }
        };
        shared.metrics.delivery_finished(&result, message.channel);
    }
}

/// The fields every line about a delivery carries. Never the code, the text or the number.
struct LogLine<'a> {
    message: &'a OutboundMessage,
    purpose: Purpose,
    phone: &'a str,
    is_resend: bool,
}

impl LogLine<'_> {
    fn emit(
        &self,
        what: &'static str,
        progress: &Progress,
        outcome: &str,
        status: Option<ActionStatus>,
        elapsed: Duration,
        is_warning: bool,
    ) {
        let attempts = progress
            .attempts
            .iter()
            .map(|a| format!("{}:{}:{}ms", a.provider, a.outcome.label(), a.elapsed.as_millis()))
            .collect::<Vec<_>>()
            .join(",");
        let excluded = progress
            .excluded
            .iter()
            .map(|e| format!("{}:{}", e.provider, e.reason.as_str()))
            .collect::<Vec<_>>()
            .join(",");
        macro_rules! line {
            ($level:expr) => {
                tracing::event!(
                    $level,
                    event_id = %self.message.reference,
                    country = %self.message.destination.country(),
                    phone = %self.phone,
                    channel = %self.message.channel,
                    request_type = self.purpose.as_str(),
                    is_resend = self.is_resend,
                    route = progress.rule.as_deref().unwrap_or("-"),
                    attempts = %attempts,
                    excluded = %excluded,
                    outcome = %outcome,
                    okta_status = status.map_or("-", ActionStatus::as_str),
                    duration_ms = elapsed.as_millis() as u64,
                    "{what}"
                )
            };
        }
        // Warn when the user may not get a code.
        if is_warning {
            line!(tracing::Level::WARN);
        } else {
            line!(tracing::Level::INFO);
        }
    }
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

/// Asks the fraud guard; `Some(answer)` when the request must not be sent.
fn check_guard(
    shared: &Shared,
    runtime: &Runtime,
    message: &OutboundMessage,
    user_id: Option<&str>,
    ip_address: Option<std::net::IpAddr>,
) -> Option<Answer> {
    let guard = &runtime.guard;
    let prefix = prefix_of(message.destination.e164(), guard.hidden_digits(message.channel));
    let input = GuardInput {
        channel: message.channel,
        country: message.destination.country(),
        number: shared.phones.key(&message.destination),
        prefix: shared.phones.digest(prefix.as_bytes()),
        user: user_id.map(|user| shared.phones.digest(user.as_bytes())),
        ip: ip_address.map(ip_key),
    };
    let verdict = guard.check(&input, &shared.spend);
    shared.metrics.guard(&verdict, message.channel, guard.mode_label());
    let rule = verdict.blocked_by?;
    // A block is a warning; what monitor mode would have blocked is counted and noted at info.
    macro_rules! guard_line {
        ($level:expr) => {
            tracing::event!(
                $level,
                event_id = %message.reference,
                country = %message.destination.country(),
                phone = %shared.phones.reference(&message.destination),
                channel = %message.channel,
                rule = rule.as_str(),
                mode = guard.mode_label(),
                blocked = verdict.is_blocked,
                "fraud guard"
            )
        };
    }
    if verdict.is_blocked {
        guard_line!(tracing::Level::WARN);
    } else {
        guard_line!(tracing::Level::INFO);
    }
    if !verdict.is_blocked {
        return None;
    }
    let status = match guard.blocked_answer() {
        BlockedAnswer::Failed => ActionStatus::Failed,
        BlockedAnswer::Successful => ActionStatus::Successful,
    };
    let response = HookResponse::new(
        status,
        "switchboard".into(),
        message.reference.clone(),
        format!("refused=guard; rule={}", rule.as_str()),
    );
    Some(Answer { body: serde_json::to_string(&response).unwrap_or_default() })
}

/// An authenticated request refused on its content: Okta's FAILED shape, no provider call.
fn refuse(shared: &Shared, event_id: &str, reason: &'static str, detail: &str) -> Response {
    shared.metrics.hook_refused(reason);
    tracing::warn!(event_id, reason, detail, "hook request refused");
    let response = HookResponse::new(
        ActionStatus::Failed,
        "switchboard".into(),
        event_id.to_owned(),
        format!("refused={reason}; detail={detail}"),
    );
    Json(response).into_response()
}

/// `application/json`, with or without parameters (`; charset=utf-8`), any case.
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
}

fn bad_request(summary: &str, location: Option<String>) -> Response {
    (StatusCode::BAD_REQUEST, Json(ErrorResponse::new(summary, "INVALID_REQUEST", location)))
        .into_response()
}
