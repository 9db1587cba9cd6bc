//! Conversion from Okta: the event hook endpoint (`[okta.events]`), the System Log poller
//! (`[okta.system_log]`, in `poll`), and what both feed (`process`): which of the codes
//! providers accepted were entered, superseded by a resend, or never entered. Providers are
//! judged on it against their peers in the same country and channel by the core
//! (`switchboard_core::health`).
//!
//! The endpoint sits on the hook listener beside the telephony hook. Okta authenticates event
//! hooks with one header and a secret only (no signature), so the header is checked before the
//! body is read, in constant time: a forged delivery costs a header compare. Okta first sends a
//! one-time `GET` with `x-okta-verification-challenge`, answered `{"verification": <value>}`
//! (only when authenticated). Each delivery is then a `POST` of
//! `{eventType: "com.okta.event_hook", eventId, eventTime, data: {events: [...]}}`. Okta waits
//! 3 s, retries once on a 5xx and never on a 4xx, so a valid delivery is answered 200 at once
//! and its events are processed in a tracked task; a malformed one gets 400 naming the field,
//! and changes nothing. See <https://developer.okta.com/docs/concepts/event-hooks/>.

mod poll;
mod process;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

pub(crate) use self::poll::run as poll_system_log;
use self::process::{Source, process};
pub(crate) use self::process::{
    apply_forwarded, note_resend, record_send, settle_expired, settle_unresent,
};
use crate::auth::AuthFailure;
use crate::listener::Arrival;
use crate::okta::ErrorResponse;
use crate::okta::events::{EventDelivery, VERIFICATION_CHALLENGE};
use crate::state::Shared;

/// Largest event hook delivery read. Okta batches events; each is a few KiB.
pub(crate) const MAX_EVENT_BODY_BYTES: usize = 1024 * 1024;
/// Time from a delivery's arrival by which its whole body must be in (Okta gives up at 3 s).
const EVENT_BODY_TIME: Duration = Duration::from_secs(3);
/// Longest verification challenge echoed (Okta's are about 40 characters).
const MAX_CHALLENGE_BYTES: usize = 256;

/// Checks the event hook's header secret before anything else is read. A delivery to a server
/// whose `[okta.events]` was removed by a reload finds nothing (404).
pub(crate) async fn require_events_auth(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    let runtime = shared.runtime();
    let Some(events) = &runtime.okta.events else {
        return refusal(StatusCode::NOT_FOUND, "the event hook is not configured", "NOT_FOUND");
    };
    match events.auth.verify(request.headers()) {
        Ok(()) => next.run(request).await,
        Err(failure) => {
            shared.metrics.okta_events(Source::EventHook.as_str(), "unauthenticated", 1);
            let header = events.auth.header().as_str();
            tracing::warn!(
                reason = failure.as_str(),
                header,
                "okta event delivery refused: authentication failed"
            );
            let summary = match failure {
                AuthFailure::Missing => format!("authentication failed: no {header} header"),
                _ => format!(
                    "authentication failed: the {header} header is not the configured secret"
                ),
            };
            refusal(StatusCode::UNAUTHORIZED, &summary, "UNAUTHORIZED")
        }
    }
}

/// `GET {okta.events.path}`: Okta's one-time verification, echoing its challenge.
pub(crate) async fn verify(headers: HeaderMap) -> Response {
    let bad = |summary: &str| refusal(StatusCode::BAD_REQUEST, summary, "INVALID_REQUEST");
    let Some(challenge) = headers.get(VERIFICATION_CHALLENGE) else {
        return bad("the x-okta-verification-challenge header is missing");
    };
    if challenge.len() > MAX_CHALLENGE_BYTES {
        return bad("the x-okta-verification-challenge header is longer than 256 bytes");
    }
    match challenge.to_str() {
        Ok(text) => {
            tracing::info!("okta event hook verification answered");
            Json(serde_json::json!({ "verification": text })).into_response()
        }
        Err(_) => bad("the x-okta-verification-challenge header is not visible ASCII"),
    }
}

/// `POST {okta.events.path}`: one delivery of events, answered 200 as soon as it is read and
/// well-formed; its events are processed in a task of their own.
pub(crate) async fn receive(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let arrival = Arrival::of(&request);
    let (parts, body) = request.into_parts();
    let malformed = |reason: &'static str| {
        shared.metrics.okta_events(Source::EventHook.as_str(), "malformed", 1);
        tracing::warn!(reason, "okta event delivery refused");
    };
    if !crate::body::is_json(&parts.headers) {
        malformed("content_type");
        let summary = "Content-Type must be application/json";
        return refusal(StatusCode::UNSUPPORTED_MEDIA_TYPE, summary, "UNSUPPORTED_MEDIA_TYPE");
    }
    let deadline = arrival + EVENT_BODY_TIME;
    let bytes = match crate::body::read(body, MAX_EVENT_BODY_BYTES, deadline).await {
        Ok(bytes) => bytes,
        Err(error) => {
            malformed(error.as_str());
            let summary = error.summary(MAX_EVENT_BODY_BYTES);
            return refusal(error.status(), &summary, "INVALID_REQUEST");
        }
    };
    let delivery = match EventDelivery::parse(&bytes) {
        Ok(delivery) => delivery,
        Err(error) => {
            malformed("malformed_body");
            let body = ErrorResponse::new(&error.summary, "INVALID_REQUEST", error.location);
            return (StatusCode::BAD_REQUEST, Json(body)).into_response();
        }
    };
    let processing = Arc::clone(&shared);
    shared.tracker.spawn(async move {
        process(&processing, Source::EventHook, &delivery.id, delivery.events).await;
    });
    StatusCode::OK.into_response()
}

/// Okta's error object, with one cause.
fn refusal(status: StatusCode, summary: &str, reason: &'static str) -> Response {
    (status, Json(ErrorResponse::new(summary, reason, None))).into_response()
}
