//! The Okta hook endpoint: authenticate, parse, admit through the ledger, deliver, answer in
//! Okta's exact shape by the deadline, and log one line per request.
//!
//! The delivery runs in a task of its own, tracked for graceful shutdown, so neither Okta hanging
//! up nor the answer being sent can cut an attempt in half. The handler only waits for the answer
//! that task publishes (and a repeated `eventId` waits for the same one).

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use switchboard_core::{Channel, Destination, MessageText, OutboundMessage, Purpose};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::MAX_BODY_BYTES;
use crate::config::{OktaSettings, Report, ShedAnswer};
use crate::dispatch::{DispatchResult, Limits, Progress, deliver};
use crate::guard::{BlockedAnswer, GuardInput, ip_key, prefix_of};
use crate::ledger::{Admission, Answer, Fingerprint};
use crate::listener::Arrival;
use crate::metrics::HookOutcome;
use crate::okta::{ActionStatus, ErrorResponse, HookRequest, HookResponse};
use crate::overload::{Permit, Shed};
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

/// Clock skew tolerated between Okta's `otpExpires` and our clock.
const EXPIRY_SKEW: Duration = Duration::from_secs(30);

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
    let (parts, body) = request.into_parts();
    if !is_json(&parts.headers) {
        shared.metrics.hook_refused("content_type");
        let body = ErrorResponse::new(
            "Content-Type must be application/json",
            "UNSUPPORTED_MEDIA_TYPE",
            None,
        );
        return (StatusCode::UNSUPPORTED_MEDIA_TYPE, Json(body)).into_response();
    }
    // Half the deadline for the body: a request that needs longer to arrive leaves too little
    // time to deliver, and a client dribbling bytes cannot hold the connection.
    let body_deadline = arrival + runtime.okta.deadline / 2;
    let body = match crate::body::read(body, MAX_BODY_BYTES, body_deadline).await {
        Ok(body) => body,
        Err(error) => {
            shared.metrics.hook_refused(error.as_str());
            tracing::warn!(reason = error.as_str(), "hook request refused: body");
            let summary = error.summary(MAX_BODY_BYTES);
            let body = ErrorResponse::new(&summary, "INVALID_REQUEST", None);
            return (error.status(), Json(body)).into_response();
        }
    };
    let request = match HookRequest::parse(&body) {
        Ok(request) => request,
        Err(error) => {
            shared.metrics.hook_refused("malformed_body");
            tracing::warn!(
                location = error.location.as_deref().unwrap_or("."),
                "hook request refused: malformed body"
            );
            return bad_request(&error.summary, error.location);
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
    let screening = Screening {
        phone_number: &delivery.phone_number,
        channel: delivery.channel,
        otp_expires: delivery.otp_expires,
        event_time: delivery.event_time,
    };
    let destination = match screening.screen(&runtime.okta, time::OffsetDateTime::now_utc()) {
        Ok(destination) => destination,
        Err(refusal) => return refuse(shared, &delivery.event_id, &refusal),
    };
    let lifetime = runtime.delivery.otp_lifetime(delivery.otp_expires);
    let text = sms_text(runtime, shared, &delivery);
    let message = OutboundMessage {
        reference: delivery.event_id.clone(),
        destination,
        channel: delivery.channel,
        passcode: delivery.passcode,
        text,
        locale: delivery.locale,
    };
    // The ledger keeps the event at least as long as Okta could retry it.
    let remember_until = arrival + lifetime.unwrap_or_default().max(Duration::from_secs(60));
    let answer = match shared.ledger.admit(
        &message.reference,
        fingerprint(&message),
        remember_until,
        arrival,
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
                shared,
                runtime,
                &message,
                delivery.user_id.as_deref(),
                delivery.ip_address,
            ) {
                // Published through the ledger, so Okta's retry gets the same refusal.
                publish.send_replace(Some(Arc::new(blocked)));
                return wait_for_answer(answer).await;
            }
            let Some(running) = shared.load.start_delivery(runtime.overload.max_deliveries) else {
                // Raced past admission with the last slot taken: shed, and say so to a retry.
                let shed = shed_answer(runtime, Shed::Deliveries);
                shared.metrics.shed(Shed::Deliveries.as_str());
                publish.send_replace(Some(Arc::new(Answer { body: shed.1.clone() })));
                return shed.into_response_parts();
            };
            let job = Job {
                shared: Arc::clone(shared),
                runtime: Arc::clone(runtime),
                message,
                purpose: delivery.purpose,
                arrival,
                deadline,
                lifetime,
            };
            shared.tracker.spawn(job.run(publish, running));
            answer
        }
    };
    wait_for_answer(answer).await
}

/// The checks that decide whether a number may get a code at all, before any ledger, guard or
/// provider: shared with `explain`, so that it never shows a route for a number the hook
/// would refuse.
pub(crate) struct Screening<'a> {
    /// The number as Okta sent it.
    pub(crate) phone_number: &'a str,
    pub(crate) channel: Channel,
    /// Okta's `otpExpires`, when sent.
    pub(crate) otp_expires: Option<time::OffsetDateTime>,
    /// Okta's `eventTime`, when sent.
    pub(crate) event_time: Option<time::OffsetDateTime>,
}

/// Why a request was refused before any send. `detail` never holds the number or the code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) reason: &'static str,
    pub(crate) detail: String,
}

impl Screening<'_> {
    /// The destination, or why no code may go to it: an unreadable number, a line type that
    /// takes no OTP on this channel, an expired code, or an event too old (or too far in the
    /// future) to be anything but a replay.
    pub(crate) fn screen(
        &self,
        okta: &OktaSettings,
        now: time::OffsetDateTime,
    ) -> Result<Destination, Refusal> {
        let refusal = |reason, detail: String| Refusal { reason, detail };
        let destination = Destination::parse(self.phone_number, okta.default_region)
            .map_err(|error| refusal("invalid_phone_number", error.to_string()))?;
        if !destination.kind().takes_otp(self.channel) {
            let detail = format!("{} numbers take no {} OTP", destination.kind(), self.channel);
            return Err(refusal("number_type", detail));
        }
        if self.otp_expires.is_some_and(|expires| expires + EXPIRY_SKEW < now) {
            return Err(refusal("otp_expired", "otpExpires is in the past".into()));
        }
        if let Some(event_time) = self.event_time {
            let tolerance = okta.event_time_tolerance;
            let distance = (now - event_time).unsigned_abs();
            if distance > tolerance {
                let when = if event_time < now { "before" } else { "after" };
                let detail = format!(
                    "eventTime is {}s {when} our clock, more than okta.event_time_tolerance_s ({}s): a replay, or a clock that is off",
                    distance.as_secs(),
                    tolerance.as_secs()
                );
                return Err(refusal("event_time", detail));
            }
        }
        Ok(destination)
    }
}

/// What a shed request gets, as status and body.
fn shed_answer(runtime: &Runtime, reason: Shed) -> ShedResponse {
    match runtime.okta.shed_answer {
        ShedAnswer::Failed => {
            let response = HookResponse::new(
                ActionStatus::Failed,
                "switchboard".into(),
                "-".into(),
                format!("refused=overloaded; reason={}", reason.as_str()),
            );
            ShedResponse(StatusCode::OK, serde_json::to_string(&response).unwrap_or_default())
        }
        ShedAnswer::Retry => {
            let body = ErrorResponse::new("switchboard is overloaded; retry", "OVERLOADED", None);
            ShedResponse(
                StatusCode::SERVICE_UNAVAILABLE,
                serde_json::to_string(&body).unwrap_or_default(),
            )
        }
    }
}

/// A shed answer: status and JSON body.
struct ShedResponse(StatusCode, String);

impl ShedResponse {
    fn into_response_parts(self) -> Response {
        (self.0, [(axum::http::header::CONTENT_TYPE, "application/json")], self.1).into_response()
    }
}

/// Answers a request the server cannot serve in time, at once and without reading its body.
fn shed(shared: &Shared, runtime: &Runtime, reason: Shed) -> Response {
    shared.metrics.shed(reason.as_str());
    tracing::warn!(
        reason = reason.as_str(),
        in_flight = shared.load.in_flight(),
        deliveries = shared.load.deliveries(),
        "hook request shed: overloaded"
    );
    shed_answer(runtime, reason).into_response_parts()
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
    /// When Okta's request arrived.
    arrival: Instant,
    /// When Okta must have its answer.
    deadline: Instant,
    lifetime: Option<Duration>,
}

impl Job {
    /// Delivers, publishing Okta's answer by the deadline; `_running` holds the delivery's slot
    /// in the server's load until the delivery ends.
    async fn run(self, publish: watch::Sender<Option<Arc<Answer>>>, _running: Permit) {
        let Job { shared, runtime, message, purpose, arrival, deadline, lifetime } = self;
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
        let (attempt_deadline, is_background) = match lifetime {
            Some(lifetime) if background => ((arrival + lifetime).max(deadline), true),
            _ => (deadline, false),
        };
        let limits = Limits {
            attempt_deadline,
            max_attempts: runtime.delivery.max_attempts,
            is_background,
            retry_backoff: runtime.delivery.retry_backoff,
            avoid: None,
            purpose,
            segments,
        };
        let phone_key = shared.phones.key(&message.destination);
        let limits =
            Limits { avoid: shared.ledger.previous_provider(&phone_key, arrival), ..limits };
        let is_resend = limits.avoid.is_some();

        let (progress, mut watching) = watch::channel(Progress::default());
        let delivery = deliver(&shared, &runtime, &message, &limits, &progress);
        tokio::pin!(delivery);
        let early_result = if !limits.is_background {
            // Bounded by the answer deadline already.
            Some((&mut delivery).await)
        } else {
            tokio::select! {
                // A result that is ready wins over the deadline firing in the same tick.
                biased;
                result = &mut delivery => Some(result),
                _ = watching.wait_for(|p| p.is_waiting) => None,
                () = tokio::time::sleep_until(deadline) => None,
            }
        };

        // Remember who took the code before anyone can see the answer, so a resend that follows
        // it is recognised.
        let remember = |result: &DispatchResult| {
            if let DispatchResult::Delivered { provider, .. } = result {
                let expires = arrival + lifetime.unwrap_or_default();
                shared.ledger.record_accepted(phone_key, provider.clone(), expires);
            }
        };
        if let Some(result) = &early_result {
            remember(result);
        }
        let snapshot = progress.borrow().clone();
        let elapsed = arrival.elapsed();
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
        shared.metrics.hook_answered(outcome, status.as_str(), message.channel, purpose);

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
                    arrival.elapsed(),
                    !is_delivered,
                );
                result
            }
        };
        let (outcome, reason) = result.metric_labels();
        shared.metrics.delivery_finished(outcome, reason, message.channel);
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
    let spent = shared.spend.spent_on(shared.today(), input.country);
    let verdict = guard.check(&input, spent, &shared.guard_limits);
    shared.metrics.guard(
        verdict.blocked_label(),
        &verdict.near_miss_labels(),
        message.channel,
        guard.mode_label(),
    );
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
fn refuse(shared: &Shared, event_id: &str, refusal: &Refusal) -> Response {
    let (reason, detail) = (refusal.reason, refusal.detail.as_str());
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

#[cfg(test)]
mod tests;
