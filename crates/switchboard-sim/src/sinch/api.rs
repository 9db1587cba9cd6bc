//! Sinch's wire behaviour: paths, auth, validation, magic test numbers, answer and error bodies
//! (the reports and events posted after a send are in `callbacks`).
//!
//! SMS (`/xms/v1/{service_plan_id}/batches`, JSON, `Authorization: Bearer`): 401 for a wrong
//! token or plan; 400 `syntax_invalid_json`, `syntax_constraint_violation` (missing `to`,
//! `body` or `from`; over 1000 recipients; `body` over 1600 characters; `client_reference`
//! over 128) and `syntax_invalid_parameter_format` (a recipient that is not E.164, `type` or
//! `delivery_report` outside the enum, a `callback_url` that is not a URL or is over 2048);
//! 403 `missing_callback_url` when a report is asked for without a URL; 201 with the batch.
//! Magic recipients: +15005550001 400 invalid `to`, +15005550003 403 `illegal_number_type`,
//! +15005550004 403 `blocked_account`. Each recipient of a batch is its own message to its own
//! phone, with its own fate; `delivery_report` says what is posted: `per_recipient` and
//! `per_recipient_final` one `recipient_delivery_report_sms` per recipient, `summary` and `full`
//! one `delivery_report_sms` for the batch, `none` nothing.
//!
//! Voice (`/calling/v1/callouts`, JSON): 401 `40100` unless Basic `key:secret` or the
//! application signature verifies; 400 `40003` for a callout the spec refuses (method outside
//! the enum, no `destination`, a number that is not E.164, neither `text` nor `prompts`, `text`
//! over 600 characters); 200 `{"callId"}`. Magic: +15005550005 402 `40200`.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use super::callbacks::{now_rfc3339, report_batch, send_dice, sign};
use super::{ReceivedSend, SendKind, SinchAccount, SinchEmulator};
use crate::faults::InjectedAnswer;
use crate::request::{bearer_matches, content_type};
use crate::server::Connection;

const MAX_BODY_CHARS: usize = 1600;
const MAX_TTS_CHARS: usize = 600;

pub(super) fn routes(emulator: SinchEmulator) -> Router {
    Router::new()
        .route("/xms/v1/{service_plan_id}/batches", post(send_batch).get(list_batches))
        .route("/calling/v1/callouts", post(callout))
        .route("/calling/v1/callouts/", post(callout))
        .fallback(not_found)
        .with_state(emulator)
}

// ---------------------------------------------------------------------------------------------
// SMS

/// The SMS API's refusal of a missing or wrong API token.
fn unauthorized() -> Response {
    sms_error(StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized")
}

/// The SMS API's error body (`errorResponseObj`).
fn sms_error(status: StatusCode, code: &str, text: &str) -> Response {
    (status, Json(json!({"code": code, "text": text}))).into_response()
}

fn injected_sms(answer: InjectedAnswer) -> Response {
    answer.render(
        |status, code| sms_error(status, "internal_error", &format!("Injected error {code}")),
        || sms_error(StatusCode::TOO_MANY_REQUESTS, "too_many_requests", "Too many requests"),
    )
}

async fn send_batch(
    State(emulator): State<SinchEmulator>,
    Path(service_plan_id): Path<String>,
    connection: Connection,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let parsed: Option<Value> = serde_json::from_slice(&body).ok();
    let value = parsed.clone().unwrap_or(Value::Null);
    let account = emulator.account();
    let is_authenticated =
        bearer_matches(&headers, &account.api_token) && service_plan_id == account.service_plan_id;
    emulator.record(|received_at| ReceivedSend {
        kind: SendKind::Batch,
        service_plan_id: Some(service_plan_id),
        is_authenticated,
        auth_scheme: None,
        to: value["to"][0].as_str().map(str::to_owned),
        from: value["from"].as_str().map(str::to_owned),
        text: value["body"].as_str().map(str::to_owned),
        body: value.clone(),
        content_type: content_type(&headers),
        received_at,
    });
    if let Err(response) =
        emulator.gate(connection, || is_authenticated, injected_sms, unauthorized).await
    {
        return response;
    }
    let Some(Value::Object(batch)) = parsed else {
        return sms_error(
            StatusCode::BAD_REQUEST,
            "syntax_invalid_json",
            "The JSON structure is invalid.",
        );
    };
    if let Err(response) = validate_batch(&batch) {
        return response;
    }
    let recipients: Vec<String> = batch["to"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|to| to.as_str().map(str::to_owned))
        .collect();
    match recipients[0].as_str() {
        "+15005550001" => return invalid_format("to[0]", &recipients[0]),
        "+15005550003" => {
            return sms_error(
                StatusCode::FORBIDDEN,
                "illegal_number_type",
                "Number type not allowed for this account.",
            );
        }
        "+15005550004" => {
            return sms_error(StatusCode::FORBIDDEN, "blocked_account", "The account is blocked.");
        }
        _ => {}
    }
    let now = now_rfc3339(true);
    let id = emulator.new_batch_id();
    let mut created = json!({
        "id": id,
        "to": recipients,
        "from": batch["from"],
        "canceled": false,
        "body": batch["body"],
        "type": batch.get("type").cloned().unwrap_or(json!("mt_text")),
        "created_at": now,
        "modified_at": now,
        "delivery_report": batch.get("delivery_report").cloned().unwrap_or(json!("none")),
        "expire_at": batch.get("expire_at").cloned().unwrap_or(json!(now)),
        "flash_message": batch.get("flash_message").cloned().unwrap_or(json!(false)),
    });
    for optional in ["callback_url", "client_reference", "max_number_of_message_parts"] {
        if let Some(value) = batch.get(optional) {
            created[optional] = value.clone();
        }
    }
    report_batch(&emulator, &id, &recipients, &batch);
    (StatusCode::CREATED, Json(created)).into_response()
}

fn invalid_format(parameter: &str, value: &str) -> Response {
    sms_error(
        StatusCode::BAD_REQUEST,
        "syntax_invalid_parameter_format",
        &format!("The format of parameter '{parameter}' is invalid; value '{value}' is not valid."),
    )
}

fn constraint(text: &str) -> Response {
    sms_error(StatusCode::BAD_REQUEST, "syntax_constraint_violation", text)
}

fn is_e164(number: &str) -> bool {
    number.strip_prefix('+').is_some_and(|digits| {
        (7..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0')
    })
}

#[allow(clippy::result_large_err)]
fn validate_batch(batch: &serde_json::Map<String, Value>) -> Result<(), Response> {
    let Some(recipients) = batch.get("to").and_then(Value::as_array).filter(|to| !to.is_empty())
    else {
        return Err(constraint("Parameter 'to' is required and must have 1 to 1000 elements."));
    };
    if recipients.len() > 1000 {
        return Err(constraint("Parameter 'to' must have 1 to 1000 elements."));
    }
    for (index, recipient) in recipients.iter().enumerate() {
        let text = recipient.as_str().unwrap_or_default();
        if !is_e164(text) {
            return Err(invalid_format(&format!("to[{index}]"), text));
        }
    }
    if batch.get("from").and_then(Value::as_str).is_none_or(str::is_empty) {
        return Err(constraint(
            "Parameter 'from' is required (no default originator is configured).",
        ));
    }
    let Some(text) = batch.get("body").and_then(Value::as_str) else {
        return Err(constraint("Parameter 'body' is required."));
    };
    if text.chars().count() > MAX_BODY_CHARS {
        return Err(constraint("Parameter 'body' must be at most 1600 characters."));
    }
    let one_of = |name: &str, allowed: &[&str]| {
        batch
            .get(name)
            .is_none_or(|value| value.as_str().is_some_and(|text| allowed.contains(&text)))
    };
    if !one_of("type", &["mt_text", "mt_binary"]) {
        return Err(invalid_format("type", &batch["type"].to_string()));
    }
    if !one_of(
        "delivery_report",
        &["none", "summary", "full", "per_recipient", "per_recipient_final"],
    ) {
        return Err(invalid_format("delivery_report", &batch["delivery_report"].to_string()));
    }
    if let Some(url) = batch.get("callback_url") {
        let is_url = url.as_str().is_some_and(|url| {
            url.len() <= 2048 && (url.starts_with("http://") || url.starts_with("https://"))
        });
        if !is_url {
            return Err(invalid_format("callback_url", &url.to_string()));
        }
    }
    if batch.get("client_reference").is_some_and(|reference| {
        reference.as_str().is_none_or(|reference| reference.chars().count() > 128)
    }) {
        return Err(constraint("Parameter 'client_reference' must be at most 128 characters."));
    }
    let wants_report =
        batch.get("delivery_report").and_then(Value::as_str).is_some_and(|kind| kind != "none");
    if wants_report && batch.get("callback_url").is_none() {
        return Err(sms_error(
            StatusCode::FORBIDDEN,
            "missing_callback_url",
            "Requesting delivery report without any callback URL.",
        ));
    }
    Ok(())
}

async fn list_batches(
    State(emulator): State<SinchEmulator>,
    Path(service_plan_id): Path<String>,
    connection: Connection,
    headers: HeaderMap,
) -> Response {
    let account = emulator.account();
    let is_authenticated = || {
        bearer_matches(&headers, &account.api_token) && service_plan_id == account.service_plan_id
    };
    if let Err(response) =
        emulator.gate(connection, is_authenticated, injected_sms, unauthorized).await
    {
        return response;
    }
    Json(json!({"count": 0, "page": 0, "page_size": 1, "batches": []})).into_response()
}

// ---------------------------------------------------------------------------------------------
// Voice

/// The Voice API's error body (`Error`).
fn voice_error(status: StatusCode, code: &str, message: &str, reference: String) -> Response {
    // Sinch's own phrases where the spec shows them, else the standard reason.
    let phrase = match status.as_u16() {
        400 => "Invalid Request",
        500 => "Server Error",
        _ => status.canonical_reason().unwrap_or("Error"),
    };
    let summary = format!("{} {phrase}", status.as_u16());
    (status, Json(json!({"status": summary, "errorCode": code, "message": message, "reference": reference})))
        .into_response()
}

fn injected_voice(answer: InjectedAnswer, reference: String) -> Response {
    answer.render(
        |status, code| voice_error(status, &code.to_string(), "Injected error", reference.clone()),
        || {
            voice_error(
                StatusCode::TOO_MANY_REQUESTS,
                "42900",
                "Too many requests",
                reference.clone(),
            )
        },
    )
}

/// `Some("basic")` or `Some("signed")` when the callout's credentials verify.
fn callout_auth(
    headers: &HeaderMap,
    uri: &Uri,
    body: &[u8],
    account: &SinchAccount,
) -> Option<&'static str> {
    let authorization = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, credentials) = authorization.split_once(' ')?;
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = String::from_utf8(STANDARD.decode(credentials.trim()).ok()?).ok()?;
        let (key, secret) = decoded.split_once(':')?;
        return (key == account.application_key && secret == account.application_secret)
            .then_some("basic");
    }
    if !scheme.eq_ignore_ascii_case("application") {
        return None;
    }
    let (key, signature) = credentials.trim().split_once(':')?;
    let timestamp = headers.get("x-timestamp")?.to_str().ok()?;
    let content_type =
        headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let path = uri.path_and_query().map_or(uri.path(), |pq| pq.as_str());
    let expected = sign(&account.application_secret, "POST", body, content_type, timestamp, path)?;
    (key == account.application_key && expected == signature).then_some("signed")
}

async fn callout(
    State(emulator): State<SinchEmulator>,
    connection: Connection,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let auth = callout_auth(&headers, &uri, &body, emulator.account());
    let tts = &parsed["ttsCallout"];
    emulator.record(|received_at| ReceivedSend {
        kind: SendKind::Callout,
        service_plan_id: None,
        is_authenticated: auth.is_some(),
        auth_scheme: auth.map(str::to_owned),
        to: tts["destination"]["endpoint"].as_str().map(str::to_owned),
        from: tts["cli"].as_str().map(str::to_owned),
        text: tts["text"].as_str().map(str::to_owned),
        body: parsed.clone(),
        content_type: content_type(&headers),
        received_at,
    });
    let reference = emulator.new_uuid_v4();
    if let Some(answer) = emulator.play_faults(connection).await {
        return injected_voice(answer, reference);
    }
    if auth.is_none() {
        return voice_error(StatusCode::UNAUTHORIZED, "40100", "Authorization required", reference);
    }
    if !is_valid_callout(&parsed) {
        return voice_error(StatusCode::BAD_REQUEST, "40003", "Invalid request", reference);
    }
    if tts["destination"]["endpoint"] == "+15005550005" {
        return voice_error(StatusCode::PAYMENT_REQUIRED, "40200", "Payment required", reference);
    }
    let call_id = emulator.new_uuid_v4();
    match emulator.voice_callback_url().filter(|_| tts["enableDice"] == true) {
        Some(url) => send_dice(&emulator, &url, &call_id, tts),
        None => {
            let to = tts["destination"]["endpoint"].as_str();
            emulator.callback_log().decide_unreported(&call_id, to);
        }
    }
    Json(json!({"callId": call_id})).into_response()
}

fn is_valid_callout(body: &Value) -> bool {
    let method = body["method"].as_str().unwrap_or_default();
    if !["conferenceCallout", "ttsCallout", "customCallout"].contains(&method) {
        return false;
    }
    if method != "ttsCallout" {
        // Only text-to-speech callouts are emulated.
        return false;
    }
    let tts = &body["ttsCallout"];
    let destination = &tts["destination"];
    let is_destination = match destination["type"].as_str() {
        Some("number") => destination["endpoint"].as_str().is_some_and(is_e164),
        Some("username") => destination["endpoint"].as_str().is_some_and(|name| !name.is_empty()),
        _ => false,
    };
    let is_cli = tts.get("cli").is_none_or(|cli| cli.as_str().is_some_and(is_e164));
    let text = tts["text"].as_str();
    let has_speech = text
        .is_some_and(|text| !text.is_empty() && text.chars().count() <= MAX_TTS_CHARS)
        || (text.is_none() && tts["prompts"].as_str().is_some_and(|prompts| !prompts.is_empty()));
    let is_domain =
        tts.get("domain").is_none_or(|domain| matches!(domain.as_str(), Some("pstn" | "mxp")));
    let are_flags =
        ["enableAce", "enableDice"].iter().all(|flag| tts.get(*flag).is_none_or(Value::is_boolean));
    is_destination && is_cli && has_speech && is_domain && are_flags
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, Json(json!({"code": "not_found", "text": "Not found"}))).into_response()
}
