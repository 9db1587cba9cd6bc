//! Infobip's wire behaviour: paths, `App` API-key auth, request validation, success bodies,
//! error bodies, per-message statuses and delivery reports, as Infobip's OpenAPI 3.1 (v3.210.0)
//! describes them.
//!
//! Order of checks: record, faults, auth (401: `ApiError` E401 for SMS, `ApiException`
//! UNAUTHORIZED for voice), validation (400 with violations / BAD_REQUEST), then the send.
//!
//! Magic destinations (`to`, this emulator's convention, modelled on Twilio's test numbers): the
//! send answers HTTP 200 with a REJECTED status, as Infobip does for refused messages:
//! `15005550001` REJECTED_DESTINATION (14), `…0003` REJECTED_NETWORK (6), `…0004` REJECTED_DND
//! (10), `…0006` REJECTED_NOT_ENOUGH_CREDITS (12).
//!
//! Report statuses for [`ReceiptOutcome::Undelivered`] codes (Infobip status ids): 4
//! UNDELIVERABLE_REJECTED_OPERATOR, 9 UNDELIVERABLE_NOT_DELIVERED, 15 EXPIRED_EXPIRED, and the
//! REJECTED ids 6, 8, 10, 11, 12, 13, 14; any other id reports UNDELIVERABLE with that id.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use super::{InfobipEmulator, ReceivedRequest, RequestKind};
use crate::callbacks::{CallbackKind, Outgoing, ReceiptOutcome, rfc3339_now};
use crate::faults::InjectedAnswer;
use crate::server::Connection;

/// Longest SMS text accepted (Infobip splits long texts; the emulator caps them generously).
const MAX_TEXT_CHARS: usize = 4096;

pub(super) fn routes(emulator: InfobipEmulator) -> Router {
    Router::new()
        .route("/sms/3/messages", post(send_sms))
        .route("/tts/3/advanced", post(send_voice))
        .route("/sms/3/logs", get(get_logs))
        .fallback(not_found)
        .with_state(emulator)
}

/// Which error body an endpoint answers with.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ErrorStyle {
    /// SMS v3: `{"errorCode","description","action","violations","resources"}`.
    ApiError,
    /// Voice: `{"requestError":{"serviceException":{"messageId","text"}}}`.
    ApiException,
}

fn error_response(style: ErrorStyle, status: StatusCode, violations: &[(&str, &str)]) -> Response {
    let body = match style {
        ErrorStyle::ApiError => {
            let (description, action) = match status.as_u16() {
                400 => (
                    "Request cannot be processed.",
                    "Check the syntax, violations and adjust the request.",
                ),
                401 => (
                    "The request lacks valid authentication credentials for the requested resource.",
                    "Check the resources and adjust authentication credentials.",
                ),
                403 => (
                    "Insufficient permissions to access the requested resource.",
                    "Repeat the request with new or different credentials.",
                ),
                429 => (
                    "Too many requests sent.",
                    "Check request rate limit specified in the API endpoint documentation resource.",
                ),
                _ => ("Something went wrong.", "Contact the support."),
            };
            let violations: Vec<Value> = violations
                .iter()
                .map(|(property, violation)| json!({"property": property, "violation": violation}))
                .collect();
            json!({
                "errorCode": format!("E{}", status.as_u16()),
                "description": description,
                "action": action,
                "violations": violations,
                "resources": [],
            })
        }
        ErrorStyle::ApiException => {
            let (message_id, text) = match status.as_u16() {
                400 => ("BAD_REQUEST", "Bad request"),
                401 => ("UNAUTHORIZED", "Unauthorized"),
                403 => ("FORBIDDEN", "Forbidden"),
                404 => ("NOT_FOUND", "Not found"),
                429 => ("TOO_MANY_REQUESTS", "Too many requests"),
                _ => ("GENERAL_ERROR", "Something went wrong. Please contact support."),
            };
            let mut exception = json!({"messageId": message_id, "text": text});
            if !violations.is_empty() {
                let errors: serde_json::Map<String, Value> = violations
                    .iter()
                    .map(|(property, violation)| ((*property).to_owned(), json!([violation])))
                    .collect();
                exception["validationErrors"] = Value::Object(errors);
            }
            json!({"requestError": {"serviceException": exception}})
        }
    };
    (status, Json(body)).into_response()
}

async fn send_sms(
    State(emulator): State<InfobipEmulator>,
    connection: Connection,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handle_send(&emulator, RequestKind::Sms, connection, &uri, &headers, &body).await
}

async fn send_voice(
    State(emulator): State<InfobipEmulator>,
    connection: Connection,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handle_send(&emulator, RequestKind::Voice, connection, &uri, &headers, &body).await
}

async fn get_logs(
    State(emulator): State<InfobipEmulator>,
    connection: Connection,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let request = record(&emulator, RequestKind::Logs, &Method::GET, &uri, &headers, b"");
    if let Err(response) = gate(&emulator, connection, &request, ErrorStyle::ApiError).await {
        return response;
    }
    // The emulator keeps no message log.
    Json(json!({"results": []})).into_response()
}

async fn not_found() -> Response {
    error_response(ErrorStyle::ApiException, StatusCode::NOT_FOUND, &[])
}

fn record(
    emulator: &InfobipEmulator,
    kind: RequestKind,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> ReceivedRequest {
    let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let message = &json["messages"][0];
    let text = |value: &Value| value.as_str().map(str::to_owned);
    let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let auth_scheme = authorization.and_then(|v| v.split_once(' ')).map(|(s, _)| s.to_owned());
    let is_authenticated = authorization
        .and_then(|value| value.strip_prefix("App "))
        .is_some_and(|key| key == emulator.account().api_key);
    let (content, sender, report_url) = match kind {
        RequestKind::Sms => (
            text(&message["content"]["text"]),
            text(&message["sender"]),
            text(&message["webhooks"]["delivery"]["url"]),
        ),
        RequestKind::Voice => {
            (text(&message["text"]), text(&message["from"]), text(&message["notifyUrl"]))
        }
        RequestKind::Logs => (None, None, None),
    };
    let to = text(&message["destinations"][0]["to"]);
    emulator.record(|received_at| ReceivedRequest {
        kind,
        method: method.as_str().to_owned(),
        path: uri.path().to_owned(),
        query: uri.query().map(str::to_owned),
        auth_scheme,
        is_authenticated,
        to,
        text: content,
        sender,
        report_url,
        body: json,
        received_at,
    })
}

async fn gate(
    emulator: &InfobipEmulator,
    connection: Connection,
    request: &ReceivedRequest,
    style: ErrorStyle,
) -> Result<(), Response> {
    emulator
        .gate(
            connection,
            || request.is_authenticated,
            |answer| injected_response(answer, style),
            || error_response(style, StatusCode::UNAUTHORIZED, &[]),
        )
        .await
}

fn injected_response(answer: InjectedAnswer, style: ErrorStyle) -> Response {
    answer.render(
        // Infobip's error codes are the status's own (`E500`): the code picks the body.
        |status, _code| error_response(style, status, &[]),
        || error_response(style, StatusCode::TOO_MANY_REQUESTS, &[]),
    )
}

async fn handle_send(
    emulator: &InfobipEmulator,
    kind: RequestKind,
    connection: Connection,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let style =
        if kind == RequestKind::Sms { ErrorStyle::ApiError } else { ErrorStyle::ApiException };
    let request = record(emulator, kind, &Method::POST, uri, headers, body);
    if let Err(response) = gate(emulator, connection, &request, style).await {
        return response;
    }
    if let Err((property, violation)) = validate(&request) {
        return error_response(style, StatusCode::BAD_REQUEST, &[(property, violation)]);
    }
    let bulk_id = emulator.new_uuid_shaped();
    let mut answers = Vec::new();
    for message in request.body["messages"].as_array().into_iter().flatten() {
        for destination in message["destinations"].as_array().into_iter().flatten() {
            let to = destination["to"].as_str().unwrap_or_default().to_owned();
            let message_id = destination["messageId"]
                .as_str()
                .map_or_else(|| emulator.new_uuid_shaped(), str::to_owned);
            let status = send_status(&to);
            let is_pending = status["groupName"] == "PENDING";
            answers.push(match kind {
                RequestKind::Sms => json!({
                    "messageId": message_id,
                    "status": status,
                    "destination": to,
                    "details": {"messageCount": 1},
                }),
                _ => json!({"to": to, "status": status, "messageId": message_id}),
            });
            if is_pending {
                schedule_report(emulator, kind, message, &bulk_id, &message_id, &to);
            }
        }
    }
    Json(json!({"bulkId": bulk_id, "messages": answers})).into_response()
}

/// Checks what the spec requires of a send: `messages[]` with `destinations[].to` in E.164
/// digits, and content (SMS `content.text`; voice `text` or `audioFileUrl`).
fn validate(request: &ReceivedRequest) -> Result<(), (&'static str, &'static str)> {
    let Some(messages) = request.body["messages"].as_array().filter(|m| !m.is_empty()) else {
        return Err(("messages", "must not be empty"));
    };
    for message in messages {
        let Some(destinations) = message["destinations"].as_array().filter(|d| !d.is_empty())
        else {
            return Err(("messages[0].destinations", "must not be empty"));
        };
        for destination in destinations {
            let to = destination["to"].as_str().unwrap_or_default();
            let is_digits = (3..=15).contains(&to.len()) && to.bytes().all(|b| b.is_ascii_digit());
            if !is_digits {
                return Err(("messages[0].destinations[0].to", "must be a number in E.164 digits"));
            }
        }
        match request.kind {
            RequestKind::Sms => {
                let text = message["content"]["text"].as_str().unwrap_or_default();
                if text.is_empty() {
                    return Err(("messages[0].content.text", "must not be blank"));
                }
                if text.chars().count() > MAX_TEXT_CHARS {
                    return Err(("messages[0].content.text", "is too long"));
                }
            }
            _ => {
                let has_text = message["text"].as_str().is_some_and(|t| !t.is_empty());
                if !has_text && message["audioFileUrl"].as_str().is_none() {
                    return Err(("messages[0].text", "text or audioFileUrl is required"));
                }
            }
        }
    }
    Ok(())
}

/// The status a send answers for destination `to`.
fn send_status(to: &str) -> Value {
    match to {
        "15005550001" => status(14),
        "15005550003" => status(6),
        "15005550004" => status(10),
        "15005550006" => status(12),
        _ => json!({
            "groupId": 1,
            "groupName": "PENDING",
            "id": 26,
            "name": "PENDING_ACCEPTED",
            "description": "Message sent to next instance",
        }),
    }
}

/// The status object for Infobip status `id`.
fn status(id: u32) -> Value {
    let (group_id, group, name, description) = match id {
        5 => (3, "DELIVERED", "DELIVERED_TO_HANDSET", "Message delivered to handset"),
        4 => {
            (2, "UNDELIVERABLE", "UNDELIVERABLE_REJECTED_OPERATOR", "Message rejected by operator")
        }
        15 => (4, "EXPIRED", "EXPIRED_EXPIRED", "Message expired"),
        6 => (5, "REJECTED", "REJECTED_NETWORK", "Network is forbidden"),
        8 => (5, "REJECTED", "REJECTED_PREFIX_MISSING", "Number prefix missing"),
        10 => (5, "REJECTED", "REJECTED_DND", "Destination on DND list"),
        11 => (5, "REJECTED", "REJECTED_SOURCE", "Invalid source address"),
        12 => (5, "REJECTED", "REJECTED_NOT_ENOUGH_CREDITS", "Not enough credits"),
        13 => (5, "REJECTED", "REJECTED_SENDER", "Sender is blocked"),
        14 => (5, "REJECTED", "REJECTED_DESTINATION", "Destination is blocked"),
        _ => (2, "UNDELIVERABLE", "UNDELIVERABLE_NOT_DELIVERED", "Message not delivered"),
    };
    json!({"groupId": group_id, "groupName": group, "id": id, "name": name, "description": description})
}

/// Decides the message's fate, and posts its report per the receipt policy when the send asked
/// for one.
fn schedule_report(
    emulator: &InfobipEmulator,
    kind: RequestKind,
    message: &Value,
    bulk_id: &str,
    message_id: &str,
    to: &str,
) {
    let log = emulator.callback_log();
    let wants_report = match kind {
        RequestKind::Sms => message["webhooks"]["delivery"]["notify"].as_bool() != Some(false),
        _ => true,
    };
    let url = match kind {
        RequestKind::Sms => message["webhooks"]["delivery"]["url"].as_str(),
        _ => message["notifyUrl"].as_str(),
    };
    let (Some(url), true) = (url, wants_report) else {
        log.decide_unreported(message_id, Some(to));
        return;
    };
    let decision = log.decide(message_id, Some(to));
    let (status, error) = match decision.report {
        ReceiptOutcome::None => return,
        ReceiptOutcome::Delivered => {
            let error = match kind {
                RequestKind::Voice => {
                    json!({"groupId": 0, "groupName": "OK", "id": 5000, "name": "VOICE_ANSWERED", "description": "Call answered by human", "permanent": true})
                }
                _ => {
                    json!({"groupId": 0, "groupName": "OK", "id": 0, "name": "NO_ERROR", "description": "No Error", "permanent": false})
                }
            };
            (status(5), error)
        }
        // Infobip's status ids are numbers; a word (another provider's code) reports id 0,
        // which renders as a generic "not delivered".
        ReceiptOutcome::Undelivered { code } => (
            status(code.parse::<u32>().unwrap_or_default()),
            json!({"groupId": 1, "groupName": "HANDSET_ERRORS", "id": 27, "name": "EC_ABSENT_SUBSCRIBER", "description": "Absent Subscriber", "permanent": false}),
        ),
    };
    let now = rfc3339_now();
    let mut result = json!({
        "bulkId": bulk_id,
        "messageId": message_id,
        "to": to,
        "sentAt": now,
        "doneAt": now,
        "status": status,
        "error": error,
    });
    if let Some(data) = message["callbackData"].as_str() {
        result["callbackData"] = json!(data);
    }
    match kind {
        RequestKind::Sms => {
            result["sender"] = message["sender"].clone();
            result["messageCount"] = json!(1);
            result["price"] = json!({"pricePerMessage": 0.01, "currency": "EUR"});
        }
        _ => {
            result["from"] = message["from"].clone();
            result["price"] = json!({"pricePerSecond": 0.01, "currency": "EUR"});
            result["voiceCall"] = json!({
                "feature": "Text-to-Speech",
                "startTime": now,
                "answerTime": now,
                "endTime": now,
                "duration": 12,
                "chargedDuration": 30,
                "fileDuration": 11.5,
            });
        }
    }
    let outgoing = Outgoing {
        kind: CallbackKind::Receipt,
        url: url.to_owned(),
        message_id: message_id.to_owned(),
        headers: Vec::new(),
        content_type: "application/json",
        body: json!({"results": [result]}).to_string(),
    };
    log.schedule(vec![outgoing], decision.delay);
}
