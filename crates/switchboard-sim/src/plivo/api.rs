//! Plivo's wire behaviour: paths (trailing slash included), Basic auth, parameter validation,
//! success and error bodies, and the signed requests Plivo makes back to the account.
//!
//! Order of checks for a send: record, faults, auth (401), the path's auth id (404), then
//! validation (400 `{"api_id","error"}`).
//!
//! Magic numbers (`dst`/`to`, this emulator's convention): `+15005550001` 400 invalid
//! destination; `+15005550003` 403 (geo permission). Receipt policy codes
//! ([`ReceiptOutcome::Undelivered`]) are Plivo messaging `ErrorCode`s for SMS (50 invalid
//! destination, 200 opt-out, ...) and the `HangupCauseCode` of a call that was not answered.
//!
//! Callbacks are signed like Plivo's V3 (`X-Plivo-Signature-V3` and `-Nonce`): HMAC-SHA256
//! with the auth token over the URL, the sorted form parameters and the nonce. Calls: unless
//! the receipt policy says "undelivered" (the callee never answered), the emulator fetches the
//! `answer_url` (as Plivo does when the call is answered) and records the XML it got, then posts
//! the hangup callback when receipts are on.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::Rng;
use serde_json::{Value, json};
use sha2::Sha256;

use super::{PlivoAccount, PlivoEmulator, ReceivedSend, SendKind};
use crate::callbacks::{CallbackKind, Outgoing, ReceiptOutcome};
use crate::faults::InjectedAnswer;
use crate::request::basic_credentials;
use crate::server::Connection;

pub(super) fn routes(emulator: PlivoEmulator) -> Router {
    Router::new()
        .route("/v1/Account/{auth_id}/Message/", post(create_message))
        .route("/v1/Account/{auth_id}/Call/", post(create_call))
        .route("/v1/Account/{auth_id}/", get(get_account))
        .fallback(not_found)
        .with_state(emulator)
}

fn plivo_error(emulator: &PlivoEmulator, status: StatusCode, error: &str) -> Response {
    (status, Json(json!({"api_id": emulator.new_uuid_shaped(), "error": error}))).into_response()
}

async fn create_message(
    State(emulator): State<PlivoEmulator>,
    Path(auth_id): Path<String>,
    connection: Connection,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let send = record(&emulator, SendKind::Message, auth_id, &headers, &body);
    if let Err(response) = gate(&emulator, connection, &send.auth_id, send.is_authenticated).await {
        return response;
    }
    if let Err((status, error)) = validate(&send) {
        return plivo_error(&emulator, status, error);
    }
    let message_uuid = emulator.new_uuid_shaped();
    match send.callback_url.clone() {
        Some(url) => schedule_status(&emulator, &send, url, message_uuid.clone()),
        None => {
            emulator.callback_log().decide_unreported(&message_uuid, send.to.as_deref());
        }
    }
    let body = json!({
        "api_id": emulator.new_uuid_shaped(),
        "message": "message(s) queued",
        "message_uuid": [message_uuid],
    });
    (StatusCode::ACCEPTED, Json(body)).into_response()
}

async fn create_call(
    State(emulator): State<PlivoEmulator>,
    Path(auth_id): Path<String>,
    connection: Connection,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let send = record(&emulator, SendKind::Call, auth_id, &headers, &body);
    if let Err(response) = gate(&emulator, connection, &send.auth_id, send.is_authenticated).await {
        return response;
    }
    if let Err((status, error)) = validate(&send) {
        return plivo_error(&emulator, status, error);
    }
    let request_uuid = emulator.new_uuid_shaped();
    schedule_call(&emulator, &send, request_uuid.clone());
    let body = json!({"message": "call fired", "request_uuid": request_uuid, "api_id": emulator.new_uuid_shaped()});
    (StatusCode::CREATED, Json(body)).into_response()
}

async fn get_account(
    State(emulator): State<PlivoEmulator>,
    Path(auth_id): Path<String>,
    connection: Connection,
    headers: HeaderMap,
) -> Response {
    let is_authenticated = is_authenticated(&headers, emulator.account());
    if let Err(response) = gate(&emulator, connection, &auth_id, is_authenticated).await {
        return response;
    }
    Json(json!({
        "account_type": "standard",
        "api_id": emulator.new_uuid_shaped(),
        "auth_id": auth_id,
        "auto_recharge": false,
        "cash_credits": "10.00000",
        "name": "switchboard-sim",
        "resource_uri": format!("/v1/Account/{auth_id}/"),
    }))
    .into_response()
}

async fn not_found(State(emulator): State<PlivoEmulator>) -> Response {
    plivo_error(&emulator, StatusCode::NOT_FOUND, "not found")
}

fn record(
    emulator: &PlivoEmulator,
    kind: SendKind,
    auth_id: String,
    headers: &HeaderMap,
    body: &[u8],
) -> ReceivedSend {
    let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let text = |name: &str| json[name].as_str().map(str::to_owned);
    emulator.record(|received_at| match kind {
        SendKind::Message => ReceivedSend {
            kind,
            auth_id,
            is_authenticated: is_authenticated(headers, emulator.account()),
            from: text("src"),
            to: text("dst"),
            text: text("text"),
            answer_url: None,
            callback_url: text("url"),
            body: json.clone(),
            received_at,
        },
        SendKind::Call => ReceivedSend {
            kind,
            auth_id,
            is_authenticated: is_authenticated(headers, emulator.account()),
            from: text("from"),
            to: text("to"),
            text: None,
            answer_url: text("answer_url"),
            callback_url: text("hangup_url"),
            body: json.clone(),
            received_at,
        },
    })
}

async fn gate(
    emulator: &PlivoEmulator,
    connection: Connection,
    auth_id: &str,
    is_authenticated: bool,
) -> Result<(), Response> {
    emulator
        .gate(
            connection,
            || is_authenticated,
            |answer| injected_response(emulator, answer),
            || plivo_error(emulator, StatusCode::UNAUTHORIZED, "authentication failed"),
        )
        .await?;
    if auth_id != emulator.account().auth_id {
        return Err(plivo_error(emulator, StatusCode::NOT_FOUND, "not found"));
    }
    Ok(())
}

fn injected_response(emulator: &PlivoEmulator, answer: InjectedAnswer) -> Response {
    answer.render(
        |status, _code| plivo_error(emulator, status, status.canonical_reason().unwrap_or("error")),
        || plivo_error(emulator, StatusCode::TOO_MANY_REQUESTS, "too many requests"),
    )
}

fn is_authenticated(headers: &HeaderMap, account: &PlivoAccount) -> bool {
    basic_credentials(headers)
        .is_some_and(|(user, password)| user == account.auth_id && password == account.auth_token)
}

fn validate(send: &ReceivedSend) -> Result<(), (StatusCode, &'static str)> {
    let bad = |error| Err((StatusCode::BAD_REQUEST, error));
    let (from_name, to_name) = match send.kind {
        SendKind::Message => ("src", "dst"),
        SendKind::Call => ("from", "to"),
    };
    let from = send.from.as_deref().unwrap_or_default();
    if from.is_empty() && send.body["powerpack_uuid"].as_str().is_none() {
        return bad(if from_name == "src" {
            "src parameter not present"
        } else {
            "from parameter not present"
        });
    }
    let Some(to) = send.to.as_deref().filter(|to| !to.is_empty()) else {
        return bad(if to_name == "dst" {
            "dst parameter not present"
        } else {
            "to parameter not present"
        });
    };
    let digits = to.strip_prefix('+').unwrap_or(to);
    let is_number = (7..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit());
    match to {
        "+15005550001" => return bad("invalid destination number"),
        "+15005550003" => {
            return Err((
                StatusCode::FORBIDDEN,
                "destination country not enabled for this account",
            ));
        }
        _ if !is_number => return bad("invalid destination number"),
        _ => {}
    }
    match send.kind {
        SendKind::Message => {
            if send.text.as_deref().is_none_or(str::is_empty) {
                return bad("text parameter not present");
            }
            if send.body["type"].as_str().is_some_and(|t| !matches!(t, "sms" | "mms" | "whatsapp"))
            {
                return bad("invalid type");
            }
        }
        SendKind::Call => {
            let is_url = send.answer_url.as_deref().is_some_and(|url| url.starts_with("http"));
            if !is_url {
                return bad("answer_url parameter not present or invalid");
            }
        }
    }
    Ok(())
}

/// The V3 signature of a POST to `url` with form `params`, as Plivo signs its callbacks.
pub(super) fn sign_v3(
    auth_token: &str,
    url: &str,
    params: &[(String, String)],
    nonce: &str,
) -> String {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut sorted_query: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (key, value) in
        serde_urlencoded::from_str::<Vec<(String, String)>>(query).unwrap_or_default()
    {
        sorted_query.entry(key).or_default().push(value);
    }
    let query_text: Vec<String> = sorted_query
        .iter_mut()
        .flat_map(|(key, values)| {
            values.sort();
            values.iter().map(move |value| format!("{key}={value}")).collect::<Vec<_>>()
        })
        .collect();
    let query_text = query_text.join("&");
    let mut sorted_params: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (key, value) in params {
        sorted_params.entry(key).or_default().push(value);
    }
    let mut signed = base.to_owned();
    if !query_text.is_empty() || !params.is_empty() {
        signed.push('?');
        signed.push_str(&query_text);
    }
    if !params.is_empty() {
        if !query_text.is_empty() {
            signed.push('.');
        }
        for (key, values) in &mut sorted_params {
            values.sort_unstable();
            for value in values.iter() {
                signed.push_str(key);
                signed.push_str(value);
            }
        }
    }
    signed.push('.');
    signed.push_str(nonce);
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(auth_token.as_bytes())
        .expect("HMAC-SHA256 accepts keys of any length");
    mac.update(signed.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// A signed form POST from "Plivo" to `url`.
fn signed_outgoing(
    emulator: &PlivoEmulator,
    kind: CallbackKind,
    url: String,
    message_id: String,
    params: Vec<(String, String)>,
) -> Outgoing {
    let nonce: u64 = rand::rng().random_range(10_000_000_000_000_000..u64::MAX);
    let nonce = nonce.to_string();
    let signature = sign_v3(&emulator.account().auth_token, &url, &params, &nonce);
    Outgoing {
        kind,
        url,
        message_id,
        headers: vec![
            ("X-Plivo-Signature-V3".to_owned(), signature),
            ("X-Plivo-Signature-V3-Nonce".to_owned(), nonce),
        ],
        content_type: "application/x-www-form-urlencoded",
        body: serde_urlencoded::to_string(&params).unwrap_or_default(),
    }
}

fn pairs(list: &[(&str, String)]) -> Vec<(String, String)> {
    list.iter().map(|(key, value)| ((*key).to_owned(), value.clone())).collect()
}

fn schedule_status(
    emulator: &PlivoEmulator,
    send: &ReceivedSend,
    url: String,
    message_uuid: String,
) {
    let log = emulator.callback_log();
    let decision = log.decide(&message_uuid, send.to.as_deref());
    let (status, error_code) = match decision.report {
        ReceiptOutcome::None => return,
        ReceiptOutcome::Delivered => ("delivered", String::new()),
        ReceiptOutcome::Undelivered { code } => ("undelivered", code),
    };
    let mut params = pairs(&[
        ("MessageUUID", message_uuid.clone()),
        ("To", send.to.clone().unwrap_or_default()),
        ("From", send.from.clone().unwrap_or_default()),
        ("Type", "sms".to_owned()),
        ("Status", status.to_owned()),
        ("Units", "1".to_owned()),
        ("TotalRate", "0.00500".to_owned()),
        ("TotalAmount", "0.00500".to_owned()),
        ("MCC", "310".to_owned()),
        ("MNC", "260".to_owned()),
    ]);
    if !error_code.is_empty() {
        params.push(("ErrorCode".to_owned(), error_code));
    }
    let outgoing = signed_outgoing(emulator, CallbackKind::Receipt, url, message_uuid, params);
    log.schedule(vec![outgoing], decision.delay);
}

fn schedule_call(emulator: &PlivoEmulator, send: &ReceivedSend, request_uuid: String) {
    let log = emulator.callback_log();
    // The answer URL is fetched whether or not a hangup was asked for; the fate is reported
    // only to a `hangup_url`.
    let decision = match send.callback_url {
        Some(_) => log.decide(&request_uuid, send.to.as_deref()),
        None => log.decide_unreported(&request_uuid, send.to.as_deref()),
    };
    let call_uuid = emulator.new_uuid_shaped();
    let common = pairs(&[
        ("CallUUID", call_uuid),
        ("RequestUUID", request_uuid.clone()),
        ("From", send.from.clone().unwrap_or_default()),
        ("To", send.to.clone().unwrap_or_default()),
        ("Direction", "outbound".to_owned()),
    ]);
    // Plivo fetches the answer URL once the call is answered, whatever the hangup reports.
    let answer = match decision.delivered {
        false => None,
        true => send.answer_url.clone().map(|url| {
            let mut params = common.clone();
            params.push(("CallStatus".to_owned(), "in-progress".to_owned()));
            params.push(("Event".to_owned(), "StartApp".to_owned()));
            signed_outgoing(emulator, CallbackKind::AnswerFetch, url, request_uuid.clone(), params)
        }),
    };
    let hangup = match (decision.report, send.callback_url.clone()) {
        (ReceiptOutcome::None, _) | (_, None) => None,
        (ReceiptOutcome::Delivered, Some(url)) => {
            let mut params = common;
            params.extend(pairs(&[
                ("CallStatus", "completed".to_owned()),
                ("HangupCauseName", "Normal Hangup".to_owned()),
                ("HangupCauseCode", "4000".to_owned()),
                ("Duration", "14".to_owned()),
                ("BillDuration", "60".to_owned()),
            ]));
            Some(signed_outgoing(emulator, CallbackKind::Receipt, url, request_uuid, params))
        }
        (ReceiptOutcome::Undelivered { code }, Some(url)) => {
            let mut params = common;
            params.extend(pairs(&[
                ("CallStatus", "no-answer".to_owned()),
                ("HangupCauseName", "No Answer".to_owned()),
                ("HangupCauseCode", code),
                ("Duration", "0".to_owned()),
                ("BillDuration", "0".to_owned()),
            ]));
            Some(signed_outgoing(emulator, CallbackKind::Receipt, url, request_uuid, params))
        }
    };
    log.schedule(answer.into_iter().chain(hangup).collect(), decision.delay);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    /// Vectors produced with plivo-python 4.63.0 (`signature_v3.py`).
    #[test]
    fn signs_like_plivos_sdk() {
        let token = "MAXXXXXXXXXXXXXXXXXX-token";
        assert_eq!(
            sign_v3(
                token,
                "https://example.com/callbacks/plivo/answer/abc",
                &pairs(&[("CallUUID", "u1"), ("To", "+14155550100")]),
                "12345"
            ),
            "mGioIaRUQ5OKCsx8J2JGYbYHOK/5E4wCfkwH3dpAZQk="
        );
        assert_eq!(
            sign_v3(token, "https://example.com/a?z=1&b=2", &pairs(&[("CallUUID", "u1")]), "nonce"),
            "F9n218YlKWwr6pHchLouuXw+JnP1vJ93Cgpmgb5rAMQ="
        );
    }
}
