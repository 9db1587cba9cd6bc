//! Reading request bodies whole, within a size cap and a *total* time limit.
//!
//! A per-frame inactivity timer (tower-http's `RequestBodyTimeout`) lets a client that sends one
//! byte a second hold a connection, a task and a buffer for as long as it likes. Here the whole
//! body must be in by one instant, fixed from the request's arrival, however it is split.

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt as _;
use std::time::Duration;
use tokio::time::Instant;

use crate::listener::Arrival;

/// Why a body could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BodyError {
    /// Longer than the cap.
    TooLarge,
    /// Not complete by the time limit.
    TooSlow,
    /// The connection broke or the framing was invalid.
    Broken,
}

impl BodyError {
    pub(crate) fn status(self) -> StatusCode {
        match self {
            BodyError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            BodyError::TooSlow => StatusCode::REQUEST_TIMEOUT,
            BodyError::Broken => StatusCode::BAD_REQUEST,
        }
    }

    /// What the client is told; never any of the body.
    pub(crate) fn summary(self, max_bytes: usize) -> String {
        match self {
            BodyError::TooLarge => format!("request body is larger than {max_bytes} bytes"),
            BodyError::TooSlow => "request body did not arrive in time".to_owned(),
            BodyError::Broken => "request body could not be read".to_owned(),
        }
    }

    /// Label for the refusal metric.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            BodyError::TooLarge => "body_too_large",
            BodyError::TooSlow => "body_too_slow",
            BodyError::Broken => "body_broken",
        }
    }
}

/// Reads `body` whole: at most `max_bytes`, complete by `deadline`. A declared length over the
/// cap is refused before anything is read.
pub(crate) async fn read(
    body: Body,
    max_bytes: usize,
    deadline: Instant,
) -> Result<Bytes, BodyError> {
    let declared = axum::body::HttpBody::size_hint(&body).lower();
    if usize::try_from(declared).map_or(true, |declared| declared > max_bytes) {
        return Err(BodyError::TooLarge);
    }
    let limited = http_body_util::Limited::new(body, max_bytes);
    match tokio::time::timeout_at(deadline, limited.collect()).await {
        Err(_elapsed) => Err(BodyError::TooSlow),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(error)) if error.is::<http_body_util::LengthLimitError>() => {
            Err(BodyError::TooLarge)
        }
        Ok(Err(_)) => Err(BodyError::Broken),
    }
}

/// `application/json`, with or without parameters (`; charset=utf-8`), any case.
pub(crate) fn is_json(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
}

/// Middleware for routes without a shape of their own for errors (provider callbacks): buffers
/// the body under [`read`]'s limits, `total` from the request's arrival, or answers 413, 408 or
/// 400 in plain text.
pub(crate) async fn buffer(
    axum::extract::State((max_bytes, total)): axum::extract::State<(usize, Duration)>,
    request: Request,
    next: Next,
) -> Response {
    let deadline = Arrival::of(&request) + total;
    let (parts, body) = request.into_parts();
    match read(body, max_bytes, deadline).await {
        Ok(bytes) => next.run(Request::from_parts(parts, Body::from(bytes))).await,
        Err(error) => (error.status(), error.summary(max_bytes)).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt as _;

    fn dribbled(parts: usize, gap: Duration) -> Body {
        let stream = futures::stream::iter(0..parts).then(move |_| async move {
            tokio::time::sleep(gap).await;
            Ok::<_, std::io::Error>(Bytes::from_static(b"x"))
        });
        Body::from_stream(stream)
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_dribbled_past_the_deadline_is_cut_off_however_often_bytes_arrive() {
        // One byte every 100 ms never trips an inactivity timer; the total limit still holds.
        let deadline = Instant::now() + Duration::from_secs(1);
        let result = read(dribbled(100, Duration::from_millis(100)), 1_000, deadline).await;
        assert_eq!(result, Err(BodyError::TooSlow));
        assert_eq!(Instant::now(), deadline, "cut off at the deadline, not later");
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_in_time_is_read_whole() {
        let deadline = Instant::now() + Duration::from_secs(1);
        let bytes = read(dribbled(5, Duration::from_millis(100)), 1_000, deadline).await.unwrap();
        assert_eq!(&bytes[..], b"xxxxx");
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_over_the_cap_is_refused_declared_or_streamed() {
        let deadline = Instant::now() + Duration::from_secs(1);
        let declared = Body::from(vec![b'x'; 11]);
        assert_eq!(read(declared, 10, deadline).await, Err(BodyError::TooLarge));
        let streamed = dribbled(11, Duration::from_millis(1));
        assert_eq!(read(streamed, 10, deadline).await, Err(BodyError::TooLarge));
    }
}
