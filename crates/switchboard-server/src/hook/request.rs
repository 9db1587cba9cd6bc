//! Reading Okta's request: the content type, the body (within half the deadline), the JSON,
//! and its fields. Each refusal is Okta's error shape, counted and logged without the body.

use axum::Json;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tokio::time::Instant;

use crate::MAX_BODY_BYTES;
use crate::okta::{Delivery, ErrorResponse, HookRequest};
use crate::state::{Runtime, Shared};

/// The delivery Okta asks for, or the response refusing the request (boxed: it is large, and
/// the rare path).
pub(super) async fn read_delivery(
    shared: &Shared,
    runtime: &Runtime,
    arrival: Instant,
    request: Request,
) -> Result<Delivery, Box<Response>> {
    let (parts, body) = request.into_parts();
    if !crate::body::is_json(&parts.headers) {
        shared.metrics.hook_refused("content_type");
        let body = ErrorResponse::new(
            "Content-Type must be application/json",
            "UNSUPPORTED_MEDIA_TYPE",
            None,
        );
        return Err(Box::new((StatusCode::UNSUPPORTED_MEDIA_TYPE, Json(body)).into_response()));
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
            return Err(Box::new((error.status(), Json(body)).into_response()));
        }
    };
    parse(shared, &body)
}

/// Okta's JSON, then its fields.
fn parse(shared: &Shared, body: &[u8]) -> Result<Delivery, Box<Response>> {
    let request = match HookRequest::parse(body) {
        Ok(request) => request,
        Err(error) => {
            shared.metrics.hook_refused("malformed_body");
            tracing::warn!(
                location = error.location.as_deref().unwrap_or("."),
                "hook request refused: malformed body"
            );
            return Err(Box::new(bad_request(&error.summary, error.location)));
        }
    };
    request.into_delivery().map_err(|error| {
        shared.metrics.hook_refused("invalid_field");
        tracing::warn!(location = error.location, reason = %error.reason, "hook request refused: invalid field");
        let summary = format!("{}: {}", error.location, error.reason);
        Box::new(bad_request(&summary, Some(error.location.to_owned())))
    })
}

fn bad_request(summary: &str, location: Option<String>) -> Response {
    (StatusCode::BAD_REQUEST, Json(ErrorResponse::new(summary, "INVALID_REQUEST", location)))
        .into_response()
}
