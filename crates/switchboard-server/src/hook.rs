//! The Okta hook endpoint: authenticate, parse, dispatch, answer in Okta's exact shape, log one
//! line.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use switchboard_core::{Destination, OutboundMessage};
use tokio::time::Instant;

use crate::config::Report;
use crate::dispatch::{DispatchReport, DispatchResult, dispatch};
use crate::metrics::HookOutcome;
use crate::okta::{ActionStatus, ErrorResponse, HookRequest, HookResponse};
use crate::state::Shared;

/// Checks Okta's credentials before the body is read: a forged call costs one header compare.
pub(crate) async fn require_okta_auth(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    let runtime = shared.runtime();
    match runtime.okta.auth.verify(request.headers()) {
        Ok(()) => next.run(request).await,
        Err(failure) => {
            shared.metrics.hook_refused(failure.as_str());
            tracing::warn!(reason = failure.as_str(), header = %runtime.okta.auth.header(), "hook request refused: authentication failed");
            let body = ErrorResponse::new("authentication failed", "UNAUTHORIZED", None);
            (StatusCode::UNAUTHORIZED, Json(body)).into_response()
        }
    }
}

/// `POST {okta.path}`.
pub(crate) async fn handle_hook(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let received = Instant::now();
    let runtime = shared.runtime();

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
            shared.metrics.hook_refused("invalid_phone_number");
            tracing::warn!(event_id = %delivery.event_id, reason = %error, "hook request refused: phone number");
            let response = HookResponse::new(
                ActionStatus::Failed,
                "switchboard".into(),
                delivery.event_id.clone(),
                format!("refused: {error}"),
            );
            return Json(response).into_response();
        }
    };

    let message = OutboundMessage {
        reference: delivery.event_id.clone(),
        destination,
        channel: delivery.channel,
        passcode: delivery.passcode,
        text: delivery.text,
        locale: delivery.locale,
    };
    let deadline = received + runtime.okta.deadline;
    // Dispatch runs in its own task so that Okta hanging up cannot cancel an attempt halfway.
    let task_shared = Arc::clone(&shared);
    let task_runtime = Arc::clone(&runtime);
    let task_message = message.clone();
    let purpose = delivery.purpose;
    let report = match tokio::spawn(async move {
        dispatch(&task_shared, &task_runtime, &task_message, purpose, deadline).await
    })
    .await
    {
        Ok(report) => report,
        Err(error) => {
            tracing::error!(event_id = %message.reference, panicked = error.is_panic(), "dispatch task failed");
            DispatchReport::failed_internally()
        }
    };

    let outcome = match &report.result {
        DispatchResult::Delivered { .. } => HookOutcome::Delivered,
        DispatchResult::Rejected { .. } => HookOutcome::Rejected,
        DispatchResult::Undelivered { .. } => HookOutcome::Undelivered,
    };
    let status = match (outcome, runtime.okta.report) {
        (HookOutcome::Delivered, _) | (_, Report::AlwaysSuccess) => ActionStatus::Successful,
        (_, Report::Truthful) => ActionStatus::Failed,
    };
    let elapsed = received.elapsed();
    shared.metrics.hook_answered(
        outcome,
        status.as_str(),
        message.channel,
        delivery.purpose,
        elapsed,
    );

    let attempts = report
        .attempts
        .iter()
        .map(|a| format!("{}:{}:{}ms", a.provider, a.outcome.label(), a.elapsed.as_millis()))
        .collect::<Vec<_>>()
        .join(",");
    let result_label = match &report.result {
        DispatchResult::Delivered { .. } => "delivered".to_owned(),
        DispatchResult::Rejected { class } => format!("rejected_{class}"),
        DispatchResult::Undelivered { reason } => format!("undelivered_{}", reason.as_str()),
    };
    let phone = shared.phones.reference(&message.destination);
    let excluded = report
        .excluded
        .iter()
        .map(|e| format!("{}:{}", e.provider, e.reason.as_str()))
        .collect::<Vec<_>>()
        .join(",");
    // One line per hook request; warn when the user may not get a code.
    macro_rules! hook_line {
        ($level:expr) => {
            tracing::event!(
                $level,
                event_id = %message.reference,
                country = %message.destination.country(),
                phone = %phone,
                channel = %message.channel,
                request_type = delivery.purpose.as_str(),
                route = report.rule.as_deref().unwrap_or("-"),
                attempts = %attempts,
                excluded = %excluded,
                outcome = %result_label,
                okta_status = status.as_str(),
                duration_ms = elapsed.as_millis() as u64,
                "hook request"
            )
        };
    }
    if outcome == HookOutcome::Delivered {
        hook_line!(tracing::Level::INFO);
    } else {
        hook_line!(tracing::Level::WARN);
    }

    // Only a delivery names a provider: Okta's System Log shows `provider`, and naming the last
    // provider tried on a failure reads as if that provider had the message.
    let (provider, transaction_id) = match &report.result {
        DispatchResult::Delivered { provider, message_id } => {
            (provider.to_string(), message_id.clone())
        }
        _ => ("switchboard".to_owned(), message.reference.clone()),
    };
    let metadata = format!(
        "outcome={result_label}; attempts={}; duration_ms={}; route={}",
        report.attempts.len(),
        elapsed.as_millis(),
        report.rule.as_deref().unwrap_or("-"),
    );
    Json(HookResponse::new(status, provider, transaction_id, metadata)).into_response()
}

fn bad_request(summary: &str, location: Option<String>) -> Response {
    (StatusCode::BAD_REQUEST, Json(ErrorResponse::new(summary, "INVALID_REQUEST", location)))
        .into_response()
}

impl DispatchReport {
    fn failed_internally() -> DispatchReport {
        DispatchReport {
            rule: None,
            excluded: Vec::new(),
            attempts: Vec::new(),
            result: DispatchResult::Undelivered { reason: crate::dispatch::Undelivered::AllFailed },
        }
    }
}
