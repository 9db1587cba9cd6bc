//! A stand-in for an in-house gateway behind the generic `webhook` provider: one JSON endpoint
//! on any path and method that records every request and answers what it is told to, with the
//! shared faults.
//!
//! The default answer is `202 {"id": "wh-<n>", "status": "accepted"}` with a fresh id per
//! request; [`WebhookEmulator::set_answer`] (or `PUT /__sim/answer`) replaces it.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::put;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::emulator::{Api, Emulator, Running};
use crate::faults::InjectedAnswer;
use crate::server::Connection;

/// What the endpoint answers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// JSON body; `None` answers the default `{"id": "wh-<n>", "status": "accepted"}`.
    pub body: Option<Value>,
}

impl Default for Answer {
    fn default() -> Answer {
        Answer { status: 202, body: None }
    }
}

/// One request the endpoint received.
#[derive(Clone, Debug, Serialize)]
pub struct ReceivedRequest {
    /// `POST`, `PUT`, ...
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Every header, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The raw body (lossy UTF-8).
    pub body: String,
    /// When it was read.
    #[serde(serialize_with = "crate::serialize_rfc3339")]
    pub received_at: SystemTime,
}

impl ReceivedRequest {
    /// The first value of header `name` (lower case).
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        crate::request::first_param(&self.headers, name)
    }

    /// The body as JSON (`null` if it is not).
    #[must_use]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// The webhook's half of a [`WebhookEmulator`]: what it answers.
#[derive(Debug)]
pub struct Webhook {
    /// A std mutex: held only to copy or replace the value.
    answer: Mutex<Answer>,
    n_requests: AtomicU64,
}

/// The emulator: cheap to clone, every clone shares the answer, faults and record.
pub type WebhookEmulator = Emulator<Webhook>;

/// A webhook emulator serving on a loopback port; stops on shutdown or drop.
pub type RunningEmulator = Running<Webhook>;

impl Api for Webhook {
    type Received = ReceivedRequest;

    /// `/__sim/answer` and, on every other path, the endpoint.
    fn routes(emulator: &WebhookEmulator) -> Router {
        Router::new()
            .route("/__sim/answer", put(put_answer))
            .fallback(endpoint)
            .with_state(emulator.clone())
    }
}

impl Default for WebhookEmulator {
    fn default() -> WebhookEmulator {
        WebhookEmulator::new()
    }
}

impl WebhookEmulator {
    /// An emulator with the default answer and no faults.
    #[must_use]
    pub fn new() -> WebhookEmulator {
        let webhook =
            Webhook { answer: Mutex::new(Answer::default()), n_requests: AtomicU64::new(0) };
        Emulator::from_api(webhook, 0)
    }

    /// Binds `127.0.0.1:0` and serves a new emulator.
    pub async fn start() -> io::Result<RunningEmulator> {
        WebhookEmulator::new().spawn().await
    }

    /// Replaces what the endpoint answers.
    pub fn set_answer(&self, answer: Answer) {
        *self.api().answer.lock().unwrap_or_else(PoisonError::into_inner) = answer;
    }

    fn answer(&self) -> Answer {
        self.api().answer.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

async fn put_answer(
    State(emulator): State<WebhookEmulator>,
    Json(answer): Json<Answer>,
) -> Response {
    if !(100..=599).contains(&answer.status) {
        return (StatusCode::BAD_REQUEST, "status: must be an HTTP status").into_response();
    }
    emulator.set_answer(answer);
    Json(emulator.answer()).into_response()
}

async fn endpoint(
    State(emulator): State<WebhookEmulator>,
    connection: Connection,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let n = emulator.api().n_requests.fetch_add(1, Ordering::Relaxed) + 1;
    emulator.record(|received_at| ReceivedRequest {
        method: method.as_str().to_owned(),
        path: uri.path_and_query().map_or("/", |p| p.as_str()).to_owned(),
        headers: headers
            .iter()
            .map(|(name, value)| {
                (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned())
            })
            .collect(),
        body: String::from_utf8_lossy(&body).into_owned(),
        received_at,
    });
    if let Some(injected) = emulator.play_faults(connection).await {
        return injected_response(injected);
    }
    let answer = emulator.answer();
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body =
        answer.body.unwrap_or_else(|| json!({"id": format!("wh-{n}"), "status": "accepted"}));
    (status, Json(body)).into_response()
}

fn injected_response(answer: InjectedAnswer) -> Response {
    answer.render(
        |status, code| (status, Json(json!({"error": code}))).into_response(),
        || (StatusCode::TOO_MANY_REQUESTS, Json(json!({"error": "rate limited"}))).into_response(),
    )
}
