//! Answers that do not come from a delivery: shed requests, waiting for the answer a delivery
//! task publishes through the ledger, and what a repeat answers when its first request runs on
//! another replica that has not answered by the repeat's own deadline.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tokio::sync::watch;

use crate::config::{Report, ShedAnswer};
use crate::ledger::Answer;
use crate::okta::{ActionStatus, ErrorResponse, HookResponse};
use crate::overload::Shed;
use crate::state::{Runtime, Shared};

/// What a shed request gets, as status and body.
pub(super) fn shed_answer(runtime: &Runtime, reason: Shed) -> ShedResponse {
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
pub(super) struct ShedResponse(StatusCode, pub(super) String);

impl ShedResponse {
    pub(super) fn into_response_parts(self) -> Response {
        (self.0, [(axum::http::header::CONTENT_TYPE, "application/json")], self.1).into_response()
    }
}

/// Answers a request the server cannot serve in time, at once and without reading its body.
pub(super) fn shed(shared: &Shared, runtime: &Runtime, reason: Shed) -> Response {
    shared.metrics.shed(reason.as_str());
    tracing::warn!(
        reason = reason.as_str(),
        in_flight = shared.load.in_flight(),
        deliveries = shared.load.deliveries(),
        "hook request shed: overloaded"
    );
    shed_answer(runtime, reason).into_response_parts()
}

/// What the first request answers while its delivery is still running at the deadline
/// (`outcome=pending`, SUCCESSFUL with `always_success`, FAILED with `truthful`): a repeat whose
/// first request runs on another replica answers this when that replica's answer has not
/// reached it by its own deadline, so Okta is answered in time and no second code is sent.
pub(super) fn pending_answer(runtime: &Runtime, event_id: &str, elapsed: Duration) -> Answer {
    let status = match runtime.okta.report {
        Report::AlwaysSuccess => ActionStatus::Successful,
        Report::Truthful => ActionStatus::Failed,
    };
    let metadata =
        format!("outcome=pending; attempts=0; duration_ms={}; route=-", elapsed.as_millis());
    let response = HookResponse::new(status, "switchboard".into(), event_id.to_owned(), metadata);
    Answer { body: serde_json::to_string(&response).unwrap_or_default() }
}

/// Waits for the published answer. If the delivery task died without answering (a bug), Okta
/// still gets a well-formed answer, and the details go to the log.
pub(super) async fn wait_for_answer(mut answer: watch::Receiver<Option<Arc<Answer>>>) -> Response {
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
