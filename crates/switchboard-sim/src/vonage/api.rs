//! Vonage's wire behaviour: paths, auth, parameter validation, magic test numbers, answer and
//! error bodies, and the receipts sent after a send.
//!
//! SMS (`POST /sms/json`, a form): the answer is HTTP 200 whatever happened; errors are a
//! message with a non-zero `status` and an `error-text` (spec `x-errors`). Checks, in order:
//! record, faults, credentials (2 missing `api_key`, 32 both `api_secret` and `sig`, 14 bad
//! `sig`, 4 bad key or secret), required `from`/`to`/`text` (2), then limits (3 `to` not
//! `\d{7,15}`, `type` outside the enum, `ttl` outside 20000..=604800000, `client-ref` over 40,
//! `status-report-req` not a boolean; 23 a `callback` that is not an http(s) URL or is over
//! 2048; 12 a text over 3200 characters), then the magic recipients below.
//!
//! Vonage publishes no test numbers; the emulator's, by `to` (digits, as Vonage takes them):
//! 15005550001 status 6 (unrecognised prefix), …0002 29 (non-whitelisted destination), …0003
//! 15 (sender not allowed), …0004 7 (barred), …0005 9 (no credit), …0007 1 (throttled), …0008 5
//! (internal error), …0009 33 (de-activated). Calls: …0005 answers 402 low balance, …0007 429.
//!
//! Voice (`POST /v1/calls`, JSON, `Authorization: Bearer` RS256 JWT): 401 unless the token
//! verifies with the application's public key and names its `application_id`; 400 with
//! `invalid_parameters` for a body the spec refuses (legs, `ncco` xor `answer_url`, talk
//! `text` up to 1500 characters, `language` in the NCCO enum, timers in range); 201 with
//! `uuid`, `status: started`, `direction: outbound`, `conversation_uuid`.
//!
//! Faults render as Vonage would: a `status` fault with HTTP 200 and a code is an SMS error
//! inside a 200 (code as `status`); other statuses carry the code in the API's error body; a
//! rate limit is 429 with `Retry-After`.
//!
//! Files: `api` (this: the routes), `sms` (the SMS API and its receipts), `voice` (the Voice
//! API, its JWT check and its call events).

use axum::Router;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};

use super::VonageEmulator;
use super::sms::{get_balance, send_sms};
use super::voice::{create_call, list_calls, problem};

pub(super) fn routes(emulator: VonageEmulator) -> Router {
    Router::new()
        .route("/sms/{format}", post(send_sms))
        .route("/account/get-balance", get(get_balance))
        .route("/v1/calls", post(create_call).get(list_calls))
        .fallback(not_found)
        .with_state(emulator)
}

async fn not_found() -> Response {
    problem(
        StatusCode::NOT_FOUND,
        "not-found",
        "Not Found",
        "The requested resource does not exist",
        None,
    )
}
