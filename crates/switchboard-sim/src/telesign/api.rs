//! Telesign's wire behaviour: paths, both authentication schemes, parameter validation, magic
//! test numbers, transaction bodies, error bodies and signed receipts.
//!
//! Order of checks for a send: record it, play faults, authenticate (HTTP 401 with
//! `status.code` 501 and an `errors[]` code: -30004 missing Authorization, -30005 malformed,
//! -30000 unknown customer, -30007/-30009/-30010 missing, unparseable or stale Date, -30011 bad
//! nonce length, -30012 reused nonce, -30006 bad signature, -30015 bad Basic key), then validate
//! parameters (HTTP 400 with `status.code` 11000/11009/11017 invalid or 12000/12009/12017
//! missing `phone_number`/`message`/`message_type`).
//!
//! Magic `phone_number`s (this emulator's own convention, modelled on Twilio's test numbers):
//! `15005550001` 400/11000 invalid phone number; `…0002` 400/11001 invalid country code;
//! `…0004` HTTP 200 with final status 230 (SMS) or 130 (voice), blocked by Telesign; `…0005`
//! HTTP 200 with status 233 (SMS, blocked for risk) or 130 (voice); `…0006` 401/-30001 account
//! suspended; `…0007` 401/-20002 product not enabled.

use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use super::{AuthScheme, ReceivedSend, SendKind, TelesignEmulator};
use crate::callbacks::{CallbackKind, Outgoing, ReceiptOutcome, rfc3339_now};
use crate::faults::InjectedAnswer;
use crate::server::Connection;

/// Telesign's cap on `message`.
const MAX_MESSAGE_CHARS: usize = 1600;

/// How far a request's `Date` may be from the emulator's clock (Telesign: "tolerable range").
const DATE_TOLERANCE: Duration = Duration::from_secs(15 * 60);

pub(super) fn routes(emulator: TelesignEmulator) -> Router {
    Router::new()
        .route("/v1/messaging", post(send_message))
        .route("/v1/voice", post(send_call))
        .route("/v1/messaging/{reference_id}", get(get_status))
        .fallback(not_found)
        .with_state(emulator)
}

/// Telesign's answer body: `{"reference_id","status":{code,description,updated_on},"errors"}`.
#[derive(Debug)]
struct TelesignAnswer {
    http: StatusCode,
    reference_id: Option<String>,
    status_code: i64,
    description: String,
    errors: Vec<(i64, String)>,
}

impl TelesignAnswer {
    fn status(http: StatusCode, code: i64, description: impl Into<String>) -> TelesignAnswer {
        TelesignAnswer {
            http,
            reference_id: None,
            status_code: code,
            description: description.into(),
            errors: Vec::new(),
        }
    }

    fn not_authorized(code: i64, description: &str) -> TelesignAnswer {
        TelesignAnswer {
            errors: vec![(code, description.to_owned())],
            ..TelesignAnswer::status(StatusCode::UNAUTHORIZED, 501, "Not authorized")
        }
    }

    fn bad_request(code: i64, description: impl Into<String>) -> TelesignAnswer {
        TelesignAnswer::status(StatusCode::BAD_REQUEST, code, description)
    }
}

impl IntoResponse for TelesignAnswer {
    fn into_response(self) -> Response {
        let errors: Vec<Value> = self
            .errors
            .iter()
            .map(|(code, description)| json!({"code": code, "description": description}))
            .collect();
        let body = json!({
            "reference_id": self.reference_id,
            "external_id": null,
            "status": {
                "code": self.status_code,
                "description": self.description,
                "updated_on": rfc3339_now(),
            },
            "errors": errors,
        });
        (self.http, Json(body)).into_response()
    }
}

async fn send_message(
    State(emulator): State<TelesignEmulator>,
    connection: Connection,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handle_send(&emulator, SendKind::Message, connection, &uri, &headers, &body).await
}

async fn send_call(
    State(emulator): State<TelesignEmulator>,
    connection: Connection,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handle_send(&emulator, SendKind::Call, connection, &uri, &headers, &body).await
}

async fn handle_send(
    emulator: &TelesignEmulator,
    kind: SendKind,
    connection: Connection,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let (auth_scheme, auth) = authenticate(emulator, &Method::POST, uri.path(), headers, body);
    let params: Vec<(String, String)> = serde_urlencoded::from_bytes(body).unwrap_or_default();
    let first = |name: &str| crate::request::first_param(&params, name).map(str::to_owned);
    let send = emulator.record(|received_at| ReceivedSend {
        kind,
        auth_scheme,
        is_authenticated: auth.is_ok(),
        phone_number: first("phone_number"),
        message: first("message"),
        message_type: first("message_type"),
        sender_id: first("sender_id"),
        voice: first("voice"),
        callback_url: first("callback_url"),
        params: params.clone(),
        received_at,
    });
    if let Some(response) = play_faults(emulator, connection).await {
        return response;
    }
    if let Err(answer) = auth {
        return answer.into_response();
    }
    if let Err(answer) = validate(&send) {
        return answer.into_response();
    }
    let reference_id = emulator.new_reference_id();
    let phone = send.phone_number.as_deref().unwrap_or_default();
    let (code, description) = match (phone, kind) {
        ("15005550004", SendKind::Message) => (230, "Blocked by Telesign"),
        ("15005550005", SendKind::Message) => (233, "Blocked (high risk)"),
        ("15005550004" | "15005550005", SendKind::Call) => (130, "Call blocked by Telesign"),
        (_, SendKind::Message) => (290, "Message in progress"),
        (_, SendKind::Call) => (103, "Call in progress"),
    };
    let answer = TelesignAnswer {
        reference_id: Some(reference_id.clone()),
        ..TelesignAnswer::status(StatusCode::OK, code, description)
    };
    if matches!(code, 290 | 103) {
        let callback_url = match kind {
            SendKind::Message => send.callback_url.clone(),
            SendKind::Call => None,
        }
        .or_else(|| emulator.account().account_callback_url.clone());
        let to = send.phone_number.as_deref();
        match callback_url {
            Some(url) => schedule_receipt(emulator, kind, url, reference_id.clone(), to),
            None => {
                emulator.callback_log().decide_unreported(&reference_id, to);
            }
        }
    }
    answer.into_response()
}

async fn get_status(
    State(emulator): State<TelesignEmulator>,
    Path(reference_id): Path<String>,
    connection: Connection,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let (_, auth) = authenticate(&emulator, &Method::GET, uri.path(), &headers, b"");
    if let Some(response) = play_faults(&emulator, connection).await {
        return response;
    }
    if let Err(answer) = auth {
        return answer.into_response();
    }
    // The emulator keeps no transaction store: every reference is unknown.
    TelesignAnswer {
        reference_id: Some(reference_id),
        ..TelesignAnswer::status(StatusCode::NOT_FOUND, 500, "Transaction not found")
    }
    .into_response()
}

async fn not_found() -> Response {
    TelesignAnswer::status(StatusCode::NOT_FOUND, 404, "Not found").into_response()
}

async fn play_faults(emulator: &TelesignEmulator, connection: Connection) -> Option<Response> {
    let answer = emulator.play_faults(connection).await?;
    Some(injected_response(answer))
}

fn injected_response(answer: InjectedAnswer) -> Response {
    let error = |status: StatusCode, code| {
        let reason = status.canonical_reason().unwrap_or("Injected error");
        TelesignAnswer::status(status, i64::from(code), reason).into_response()
    };
    answer.render(error, || {
        TelesignAnswer::status(StatusCode::TOO_MANY_REQUESTS, 3204, "Rate limit exceeded")
            .into_response()
    })
}

/// Checks the request's authentication as Telesign does.
fn authenticate(
    emulator: &TelesignEmulator,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> (AuthScheme, Result<(), TelesignAnswer>) {
    let account = emulator.account();
    let Some(authorization) = header_text(headers, header::AUTHORIZATION.as_str()) else {
        return (
            AuthScheme::None,
            Err(TelesignAnswer::not_authorized(-30004, "Missing required 'Authorization' header")),
        );
    };
    let malformed = || {
        TelesignAnswer::not_authorized(
            -30005,
            "Required 'Authorization' header is not in the correct format",
        )
    };
    if let Some(encoded) = authorization.strip_prefix("Basic ") {
        let credentials = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok());
        let Some((customer_id, api_key)) = credentials.as_deref().and_then(|c| c.split_once(':'))
        else {
            return (AuthScheme::Basic, Err(malformed()));
        };
        let result = if customer_id != account.customer_id {
            Err(TelesignAnswer::not_authorized(-30000, "Invalid Customer ID."))
        } else if api_key != account.api_key {
            Err(TelesignAnswer::not_authorized(-30015, "Invalid API Key."))
        } else {
            Ok(())
        };
        return (AuthScheme::Basic, result);
    }
    let Some((customer_id, signature)) =
        authorization.strip_prefix("TSA ").and_then(|rest| rest.split_once(':'))
    else {
        return (AuthScheme::None, Err(malformed()));
    };
    (AuthScheme::Hmac, check_hmac(emulator, method, path, headers, body, customer_id, signature))
}

fn check_hmac(
    emulator: &TelesignEmulator,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
    customer_id: &str,
    signature: &str,
) -> Result<(), TelesignAnswer> {
    let account = emulator.account();
    if customer_id != account.customer_id {
        return Err(TelesignAnswer::not_authorized(-30000, "Invalid Customer ID."));
    }
    if header_text(headers, "x-ts-auth-method") != Some("HMAC-SHA256") {
        return Err(TelesignAnswer::not_authorized(-30008, "Invalid 'x-ts-auth-method' header."));
    }
    let Some(date) = header_text(headers, "x-ts-date").or(header_text(headers, "date")) else {
        return Err(TelesignAnswer::not_authorized(
            -30007,
            "Missing required 'Date' or 'x-ts-date' header",
        ));
    };
    let Ok(sent_at) = httpdate_parse(date) else {
        return Err(TelesignAnswer::not_authorized(
            -30009,
            "'Date' or 'x-ts-date' header is not RFC822 compliant",
        ));
    };
    let now = SystemTime::now();
    let skew = now.duration_since(sent_at).unwrap_or_else(|error| error.duration());
    if skew > DATE_TOLERANCE {
        return Err(TelesignAnswer::not_authorized(
            -30010,
            "'Date' or 'x-ts-date' header is not within tolerable range",
        ));
    }
    let nonce = header_text(headers, "x-ts-nonce").unwrap_or_default();
    if !(16..=128).contains(&nonce.len()) {
        return Err(TelesignAnswer::not_authorized(
            -30011,
            "'x-ts-nonce' header value is either too long or too short",
        ));
    }
    let content_type = header_text(headers, header::CONTENT_TYPE.as_str()).unwrap_or_default();
    let mut string_to_sign = format!(
        "{method}\n{content_type}\n{date}\nx-ts-auth-method:HMAC-SHA256\nx-ts-nonce:{nonce}"
    );
    if !content_type.is_empty() && !body.is_empty() {
        string_to_sign.push('\n');
        string_to_sign.push_str(&String::from_utf8_lossy(body));
    }
    string_to_sign.push('\n');
    string_to_sign.push_str(path);
    let Some(expected) = sign(&account.api_key, string_to_sign.as_bytes()) else {
        return Err(TelesignAnswer::not_authorized(-30015, "Invalid API Key."));
    };
    if expected != signature {
        return Err(TelesignAnswer::not_authorized(-30006, "Invalid Signature"));
    }
    // Checked last: a forged request must not burn a legitimate client's nonce.
    if !emulator.is_fresh_nonce(nonce) {
        return Err(TelesignAnswer::not_authorized(
            -30012,
            "'x-ts-nonce' header value has been used recently",
        ));
    }
    Ok(())
}

/// `base64(HMAC-SHA256(base64decode(api_key), data))`; `None` when the key is not base64.
pub(super) fn sign(api_key: &str, data: &[u8]) -> Option<String> {
    let key = base64::engine::general_purpose::STANDARD.decode(api_key.trim()).ok()?;
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key).ok()?;
    mac.update(data);
    Some(base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()))
}

fn httpdate_parse(text: &str) -> Result<SystemTime, ()> {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    time::PrimitiveDateTime::parse(text.trim(), &format)
        .map(|at| SystemTime::from(at.assume_utc()))
        .map_err(|_| ())
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

fn validate(send: &ReceivedSend) -> Result<(), TelesignAnswer> {
    let Some(phone) = send.phone_number.as_deref().filter(|p| !p.is_empty()) else {
        return Err(TelesignAnswer::bad_request(12000, "Missing Required Parameter phone_number"));
    };
    let Some(message) = send.message.as_deref().filter(|m| !m.is_empty()) else {
        return Err(TelesignAnswer::bad_request(12009, "Missing Required Parameter message"));
    };
    let Some(message_type) = send.message_type.as_deref().filter(|m| !m.is_empty()) else {
        return Err(TelesignAnswer::bad_request(12017, "Missing Required Parameter message_type"));
    };
    // Country code and number, digits only: a `+` or a national number is refused.
    let is_digits = (8..=15).contains(&phone.len()) && phone.bytes().all(|b| b.is_ascii_digit());
    if !is_digits || phone == "15005550001" {
        return Err(TelesignAnswer::bad_request(
            11000,
            format!("Invalid value for parameter phone_number: {phone}"),
        ));
    }
    match phone {
        "15005550002" => {
            return Err(TelesignAnswer::bad_request(
                11001,
                "Invalid country code for parameter phone_number.",
            ));
        }
        "15005550006" => {
            return Err(TelesignAnswer::not_authorized(-30001, "Customer ID Account Suspended."));
        }
        "15005550007" => {
            return Err(TelesignAnswer::not_authorized(
                -20002,
                "This product is not enabled for this Customer ID.",
            ));
        }
        _ => {}
    }
    if message.chars().count() > MAX_MESSAGE_CHARS {
        return Err(TelesignAnswer::bad_request(11009, "Invalid value for parameter message."));
    }
    if !matches!(message_type, "OTP" | "ARN" | "MKT") {
        return Err(TelesignAnswer::bad_request(
            11017,
            "Invalid value for parameter message_type.",
        ));
    }
    if let Some(sender_id) = send.sender_id.as_deref() {
        let is_valid = (1..=15).contains(&sender_id.len())
            && sender_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b' ' || b == b'+');
        if !is_valid {
            return Err(TelesignAnswer::bad_request(
                11013,
                "Invalid value for parameter sender_id.",
            ));
        }
    }
    if send.callback_url.as_deref().is_some_and(|url| !url.starts_with("http")) {
        return Err(TelesignAnswer::bad_request(11004, "Invalid value for parameter callback_url"));
    }
    Ok(())
}

/// Posts the transaction's receipt per the emulator's receipt policy, signed like Telesign.
fn schedule_receipt(
    emulator: &TelesignEmulator,
    kind: SendKind,
    url: String,
    reference_id: String,
    to: Option<&str>,
) {
    let log = emulator.callback_log();
    let decision = log.decide(&reference_id, to);
    let (code, description) = match (&decision.report, kind) {
        (ReceiptOutcome::None, _) => return,
        (ReceiptOutcome::Delivered, SendKind::Message) => (200, "Delivered to handset".to_owned()),
        (ReceiptOutcome::Delivered, SendKind::Call) => (100, "Call answered".to_owned()),
        // Telesign's codes are numbers; a word (another provider's code) reports 0.
        (ReceiptOutcome::Undelivered { code }, _) => {
            (code.parse::<i64>().unwrap_or_default(), "Not delivered".to_owned())
        }
    };
    let sub_resource = match kind {
        SendKind::Message => "sms",
        SendKind::Call => "voice",
    };
    let now = rfc3339_now();
    let body = json!({
        "reference_id": reference_id,
        "external_id": null,
        "sub_resource": sub_resource,
        "errors": [],
        "status": {"updated_on": now, "code": code, "description": description},
        "submit_timestamp": now,
        "additional_info": {"mcc": "310", "mnc": "260", "price": "0.0065", "currency": "USD"},
    })
    .to_string();
    let account = emulator.account();
    let Some(signature) = sign(&account.api_key, body.as_bytes()) else {
        tracing::warn!("telesign emulator cannot sign receipts: api_key is not base64");
        return;
    };
    let outgoing = Outgoing {
        kind: CallbackKind::Receipt,
        url,
        message_id: reference_id,
        headers: vec![(
            "Authorization".to_owned(),
            format!("TSA {}:{signature}", account.customer_id),
        )],
        content_type: "application/json",
        body,
    };
    log.schedule(vec![outgoing], decision.delay);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_like_the_sdk() {
        let key =
            "EXAMPLETE8sTgg45yusumoN6BYsBVkh+yRJ5czgsnCehZaOYldPJdmFh6NeX8kunZ2zU1YWaUw/0wV6xfw==";
        assert_eq!(
            sign(key, b"{'test': 123}").as_deref(),
            Some("B97g3N9lPdVaptvifxRau7bzVAC5hhRBZ6HKXABN744=")
        );
        assert_eq!(sign("not base64!", b"x"), None);
    }

    #[test]
    fn parses_rfc_2616_dates() {
        let at = httpdate_parse("Wed, 14 Dec 2016 18:20:12 GMT").unwrap();
        assert_eq!(at.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs(), 1_481_739_612);
        assert!(httpdate_parse("yesterday").is_err());
    }
}
