//! Twilio's wire behaviour: paths, Basic auth, parameter validation, magic test numbers,
//! resource bodies and error bodies.
//!
//! Order of checks for a send: record it, play faults, check auth (401, 20003), check the path's
//! account (404, 20404), then validate parameters as the spec's `x-twilio.conditional` says,
//! sender before recipient (so when both are magic, the sender's error wins, as on Twilio).
//!
//! Magic numbers (Twilio's test-credentials page). Messages: `To` +15005550001 21211 invalid,
//! …0002 21612 cannot route, …0003 21408 no permission for the region, …0004 21610 opted out,
//! …0009 21614 not a mobile number; `From` …0001 21212 invalid, …0007 21606 not owned or not
//! SMS-capable, …0008 21611 queue full. Calls: `To` …0001 21217 invalid, …0002 21214 cannot
//! route, …0003 21215 no geo permission, …0004 21216 blocked; `From` …0001 21212 invalid.
//!
//! The call-specific "missing parameter" codes (21201, 21213, 21205) are not in the OpenAPI
//! spec; they follow Twilio's error dictionary as best known and no adapter depends on them.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use super::API_VERSION;
use super::callbacks::{self, Created};
use super::{ReceivedSend, SendKind, TwilioAccount, TwilioEmulator};
use crate::faults::InjectedAnswer;
use crate::request::basic_credentials;
use crate::server::Connection;

/// Twilio's cap on a message body.
const MAX_BODY_CHARS: usize = 1600;

pub(super) fn routes(emulator: TwilioEmulator) -> Router {
    Router::new()
        .route("/2010-04-01/Accounts/{account_sid}/Messages.json", post(create_message))
        .route("/2010-04-01/Accounts/{account_sid}/Calls.json", post(create_call))
        // `{AccountSid}.json`: the router matches whole segments, so the suffix is checked in
        // the handler.
        .route("/2010-04-01/Accounts/{account_resource}", get(fetch_account))
        .fallback(not_found)
        .with_state(emulator)
}

/// Twilio's error body: `{"code","message","more_info","status"}`.
#[derive(Debug)]
struct TwilioError {
    status: StatusCode,
    code: u32,
    message: String,
}

impl TwilioError {
    fn new(status: StatusCode, code: u32, message: impl Into<String>) -> TwilioError {
        TwilioError { status, code, message: message.into() }
    }

    fn bad_request(code: u32, message: impl Into<String>) -> TwilioError {
        TwilioError::new(StatusCode::BAD_REQUEST, code, message)
    }

    fn not_found(uri: &Uri) -> TwilioError {
        let message = format!("The requested resource {} was not found", uri.path());
        TwilioError::new(StatusCode::NOT_FOUND, 20404, message)
    }
}

impl IntoResponse for TwilioError {
    fn into_response(self) -> Response {
        let body = json!({
            "code": self.code,
            "message": self.message,
            "more_info": format!("https://www.twilio.com/docs/errors/{}", self.code),
            "status": self.status.as_u16(),
        });
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"Twilio API\""),
            );
        }
        response
    }
}

async fn create_message(
    State(emulator): State<TwilioEmulator>,
    Path(account_sid): Path<String>,
    connection: Connection,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let send = record(&emulator, SendKind::Message, account_sid, &headers, &body);
    if let Err(response) =
        gate(&emulator, connection, &uri, &send.account_sid, send.is_authenticated).await
    {
        return response;
    }
    match validate_message(&send) {
        Ok(()) => created(&emulator, &send, message_resource(&emulator, &send)),
        Err(error) => error.into_response(),
    }
}

async fn create_call(
    State(emulator): State<TwilioEmulator>,
    Path(account_sid): Path<String>,
    connection: Connection,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let send = record(&emulator, SendKind::Call, account_sid, &headers, &body);
    if let Err(response) =
        gate(&emulator, connection, &uri, &send.account_sid, send.is_authenticated).await
    {
        return response;
    }
    match validate_call(&send) {
        Ok(()) => created(&emulator, &send, call_resource(&emulator, &send)),
        Err(error) => error.into_response(),
    }
}

/// The 201 for a created resource; starts its status callbacks when the send asked for them.
fn created(emulator: &TwilioEmulator, send: &ReceivedSend, resource: Value) -> Response {
    let status_callback = send.param("StatusCallback").filter(|url| !url.is_empty());
    if let Some(sid) = resource["sid"].as_str() {
        let events = send
            .params
            .iter()
            .filter(|(name, _)| name == "StatusCallbackEvent")
            .map(|(_, value)| value.clone())
            .collect();
        callbacks::spawn(
            emulator,
            &Created {
                kind: send.kind,
                sid: sid.to_owned(),
                account_sid: send.account_sid.clone(),
                to: send.to.clone(),
                from: send.from.clone(),
                status_callback: status_callback.map(str::to_owned),
                events,
            },
        );
    }
    (StatusCode::CREATED, Json(resource)).into_response()
}

async fn fetch_account(
    State(emulator): State<TwilioEmulator>,
    Path(account_resource): Path<String>,
    connection: Connection,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let Some(account_sid) = account_resource.strip_suffix(".json") else {
        return TwilioError::not_found(&uri).into_response();
    };
    let is_authenticated = is_authenticated(&headers, emulator.account());
    if let Err(response) = gate(&emulator, connection, &uri, account_sid, is_authenticated).await {
        return response;
    }
    Json(account_resource_body(account_sid)).into_response()
}

async fn not_found(uri: Uri) -> Response {
    TwilioError::not_found(&uri).into_response()
}

/// Parses and records a send before anything can refuse it.
fn record(
    emulator: &TwilioEmulator,
    kind: SendKind,
    account_sid: String,
    headers: &HeaderMap,
    body: &[u8],
) -> ReceivedSend {
    // Decoding is lossy (invalid UTF-8 becomes U+FFFD) and cannot fail for a list of pairs; a
    // body that is not a form at all yields no parameters and fails validation like Twilio.
    let params: Vec<(String, String)> = serde_urlencoded::from_bytes(body).unwrap_or_default();
    let first = |name: &str| crate::request::first_param(&params, name).map(str::to_owned);
    emulator.record(|received_at| ReceivedSend {
        kind,
        account_sid,
        is_authenticated: is_authenticated(headers, emulator.account()),
        to: first("To"),
        from: first("From"),
        messaging_service_sid: first("MessagingServiceSid"),
        body: first("Body"),
        twiml: first("Twiml"),
        url: first("Url"),
        params: params.clone(),
        received_at,
    })
}

/// Faults, then auth, then the path's account: what every API request goes through.
async fn gate(
    emulator: &TwilioEmulator,
    connection: Connection,
    uri: &Uri,
    account_sid: &str,
    is_authenticated: bool,
) -> Result<(), Response> {
    emulator
        .gate(
            connection,
            || is_authenticated,
            injected_response,
            || TwilioError::new(StatusCode::UNAUTHORIZED, 20003, "Authenticate").into_response(),
        )
        .await?;
    if account_sid != emulator.account().account_sid {
        return Err(TwilioError::not_found(uri).into_response());
    }
    Ok(())
}

fn is_authenticated(headers: &HeaderMap, account: &TwilioAccount) -> bool {
    basic_credentials(headers).is_some_and(|(user, password)| {
        user == account.account_sid && password == account.auth_token
    })
}

fn injected_response(answer: InjectedAnswer) -> Response {
    let error = |status: StatusCode, code| {
        let reason = status.canonical_reason().unwrap_or("Injected error");
        TwilioError::new(status, code, reason).into_response()
    };
    answer.render(error, || {
        TwilioError::new(StatusCode::TOO_MANY_REQUESTS, 20429, "Too Many Requests").into_response()
    })
}

fn validate_message(send: &ReceivedSend) -> Result<(), TwilioError> {
    let Some(to) = non_empty(&send.to) else {
        return Err(TwilioError::bad_request(21604, "A 'To' phone number is required."));
    };
    let from = non_empty(&send.from);
    if from.is_none() && non_empty(&send.messaging_service_sid).is_none() {
        return Err(TwilioError::bad_request(21603, "A 'From' phone number is required."));
    }
    let has_content = non_empty(&send.body).is_some()
        || send.param("MediaUrl").is_some()
        || send.param("ContentSid").is_some();
    if !has_content {
        return Err(TwilioError::bad_request(21602, "Message body is required."));
    }
    if let Some(from) = from {
        match from {
            "+15005550001" => return Err(invalid_from(from)),
            "+15005550007" => {
                return Err(TwilioError::bad_request(
                    21606,
                    format!(
                        "The 'From' phone number provided ({from}) is not a valid message-capable Twilio phone number for this destination."
                    ),
                ));
            }
            "+15005550008" => {
                return Err(TwilioError::bad_request(
                    21611,
                    "This 'From' number has exceeded the maximum number of queued messages",
                ));
            }
            _ if is_e164(from) || is_short_code(from) || is_alphanumeric_sender(from) => {}
            _ => return Err(invalid_from(from)),
        }
    }
    match to {
        "+15005550001" => return Err(invalid_to_message(to)),
        "+15005550002" => {
            return Err(TwilioError::bad_request(
                21612,
                format!(
                    "The 'To' phone number: {to}, is not currently reachable using the 'From' phone number via SMS."
                ),
            ));
        }
        "+15005550003" => {
            return Err(TwilioError::bad_request(
                21408,
                format!(
                    "Permission to send an SMS has not been enabled for the region indicated by the 'To' number: {to}."
                ),
            ));
        }
        "+15005550004" => {
            return Err(TwilioError::bad_request(
                21610,
                "Attempt to send to unsubscribed recipient",
            ));
        }
        "+15005550009" => {
            return Err(TwilioError::bad_request(
                21614,
                "'To' number is not a valid mobile number",
            ));
        }
        _ if is_e164(to) => {}
        _ => return Err(invalid_to_message(to)),
    }
    if send.body.as_deref().is_some_and(|body| body.chars().count() > MAX_BODY_CHARS) {
        return Err(TwilioError::bad_request(
            21617,
            "The concatenated message body exceeds the 1600 character limit.",
        ));
    }
    Ok(())
}

fn validate_call(send: &ReceivedSend) -> Result<(), TwilioError> {
    let Some(to) = non_empty(&send.to) else {
        return Err(TwilioError::bad_request(21201, "No 'To' number is specified"));
    };
    let Some(from) = non_empty(&send.from) else {
        return Err(TwilioError::bad_request(21213, "No 'From' number is specified"));
    };
    let n_instructions = ["Url", "Twiml", "ApplicationSid"]
        .iter()
        .filter(|name| send.param(name).is_some_and(|value| !value.is_empty()))
        .count();
    if n_instructions != 1 {
        return Err(TwilioError::bad_request(
            21205,
            "Exactly one of Url, Twiml or ApplicationSid is required.",
        ));
    }
    // A caller id must be a phone number: alphanumeric senders cannot place calls.
    if from == "+15005550001" || !is_e164(from) {
        return Err(invalid_from(from));
    }
    match to {
        "+15005550002" => {
            Err(TwilioError::bad_request(21214, "'To' phone number cannot be reached"))
        }
        "+15005550003" => Err(TwilioError::bad_request(
            21215,
            format!(
                "Account not authorized to call {to}. Perhaps you need to enable some international permissions."
            ),
        )),
        "+15005550004" => {
            Err(TwilioError::bad_request(21216, format!("Account not allowed to call {to}")))
        }
        "+15005550001" => Err(invalid_to_call(to)),
        _ if is_e164(to) => Ok(()),
        _ => Err(invalid_to_call(to)),
    }
}

fn invalid_from(from: &str) -> TwilioError {
    TwilioError::bad_request(
        21212,
        format!(
            "The 'From' number {from} is not a valid phone number, shortcode, or alphanumeric sender ID."
        ),
    )
}

fn invalid_to_message(to: &str) -> TwilioError {
    TwilioError::bad_request(21211, format!("The 'To' number {to} is not a valid phone number."))
}

fn invalid_to_call(to: &str) -> TwilioError {
    TwilioError::bad_request(21217, format!("Phone number {to} is not a valid phone number"))
}

fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|value| !value.is_empty())
}

/// `+` and 2 to 15 digits, the first not zero (ITU-T E.164).
fn is_e164(number: &str) -> bool {
    number.strip_prefix('+').is_some_and(|digits| {
        (2..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0')
    })
}

fn is_short_code(sender: &str) -> bool {
    (3..=8).contains(&sender.len()) && sender.bytes().all(|b| b.is_ascii_digit())
}

/// Up to 11 letters, digits and spaces, at least one letter.
fn is_alphanumeric_sender(sender: &str) -> bool {
    (1..=11).contains(&sender.len())
        && sender.bytes().all(|b| b.is_ascii_alphanumeric() || b == b' ')
        && sender.bytes().any(|b| b.is_ascii_alphabetic())
}

/// SMS segments Twilio would bill: GSM-7 when every character is in the GSM 03.38 alphabet
/// (160 septets, 153 per part once split; extension characters take two), else UCS-2 (70, 67
/// per part; characters outside the BMP take two).
fn num_segments(body: &str) -> usize {
    const GSM_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
        ¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
    const GSM_EXTENSION: &str = "^{}\\[~]|€\x0c";
    let gsm_septets: Option<usize> = body
        .chars()
        .map(|c| {
            if GSM_BASIC.contains(c) {
                Some(1)
            } else if GSM_EXTENSION.contains(c) {
                Some(2)
            } else {
                None
            }
        })
        .sum();
    let (units, single, per_part) = match gsm_septets {
        Some(septets) => (septets, 160, 153),
        None => (body.encode_utf16().count(), 70, 67),
    };
    if units <= single { 1 } else { units.div_ceil(per_part) }
}

fn now_rfc2822() -> String {
    // Formatting a UTC timestamp as RFC 2822 fails only for years outside 1900..=9999.
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc2822)
        .unwrap_or_default()
}

fn message_resource(emulator: &TwilioEmulator, send: &ReceivedSend) -> Value {
    let sid = emulator.new_sid("SM");
    let account_sid = &send.account_sid;
    let now = now_rfc2822();
    let uri = format!("/{API_VERSION}/Accounts/{account_sid}/Messages/{sid}.json");
    let n_media = send.params.iter().filter(|(key, _)| key == "MediaUrl").count();
    // Through a messaging service without a `From`, Twilio answers `accepted` and picks the
    // sender later.
    let status = if non_empty(&send.from).is_some() { "queued" } else { "accepted" };
    json!({
        "account_sid": account_sid,
        "api_version": API_VERSION,
        "body": send.body.as_deref().unwrap_or_default(),
        "date_created": now,
        "date_sent": null,
        "date_updated": now,
        "direction": "outbound-api",
        "error_code": null,
        "error_message": null,
        "from": send.from,
        "messaging_service_sid": send.messaging_service_sid,
        "num_media": n_media.to_string(),
        "num_segments": num_segments(send.body.as_deref().unwrap_or_default()).to_string(),
        "price": null,
        "price_unit": "USD",
        "sid": sid,
        "status": status,
        "subresource_uris": {
            "media": format!("/{API_VERSION}/Accounts/{account_sid}/Messages/{sid}/Media.json"),
        },
        "to": send.to,
        "uri": uri,
    })
}

fn call_resource(emulator: &TwilioEmulator, send: &ReceivedSend) -> Value {
    let sid = emulator.new_sid("CA");
    let account_sid = &send.account_sid;
    let now = now_rfc2822();
    let call_path = format!("/{API_VERSION}/Accounts/{account_sid}/Calls/{sid}");
    json!({
        "account_sid": account_sid,
        "answered_by": null,
        "api_version": API_VERSION,
        "caller_name": null,
        "date_created": now,
        "date_updated": now,
        "direction": "outbound-api",
        "duration": null,
        "end_time": null,
        "forwarded_from": null,
        "from": send.from,
        "from_formatted": send.from,
        "group_sid": null,
        "parent_call_sid": null,
        "phone_number_sid": null,
        "price": null,
        "price_unit": "USD",
        "queue_time": "0",
        "sid": sid,
        "start_time": null,
        "status": "queued",
        "subresource_uris": {
            "notifications": format!("{call_path}/Notifications.json"),
            "recordings": format!("{call_path}/Recordings.json"),
            "events": format!("{call_path}/Events.json"),
        },
        "to": send.to,
        "to_formatted": send.to,
        "trunk_sid": null,
        "uri": format!("{call_path}.json"),
    })
}

fn account_resource_body(account_sid: &str) -> Value {
    let account_path = format!("/{API_VERSION}/Accounts/{account_sid}");
    // Twilio also returns `auth_token` here; the emulator leaves it out so that nothing that
    // prints a probe's answer can leak even a test credential.
    json!({
        "date_created": "Thu, 01 Jan 2026 00:00:00 +0000",
        "date_updated": "Thu, 01 Jan 2026 00:00:00 +0000",
        "friendly_name": "switchboard-sim",
        "owner_account_sid": account_sid,
        "sid": account_sid,
        "status": "active",
        "subresource_uris": {
            "messages": format!("{account_path}/Messages.json"),
            "calls": format!("{account_path}/Calls.json"),
        },
        "type": "Full",
        "uri": format!("{account_path}.json"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_segments_like_twilio() {
        assert_eq!(num_segments("Your code is 123456"), 1);
        assert_eq!(num_segments(&"a".repeat(160)), 1);
        assert_eq!(num_segments(&"a".repeat(161)), 2);
        // `€` is an extension character: two septets.
        assert_eq!(num_segments(&"€".repeat(80)), 1);
        assert_eq!(num_segments(&"€".repeat(81)), 2);
        assert_eq!(num_segments(&"確".repeat(70)), 1);
        assert_eq!(num_segments(&"確".repeat(71)), 2);
    }

    #[test]
    fn recognises_senders() {
        assert!(is_e164("+14155550100"));
        assert!(!is_e164("14155550100"));
        assert!(!is_e164("+04155550100"));
        assert!(!is_e164("+1415555010012345"));
        assert!(is_alphanumeric_sender("Acme Corp"));
        assert!(!is_alphanumeric_sender("123456"));
        assert!(!is_alphanumeric_sender("Acme Corporation"));
        assert!(is_short_code("12345"));
    }
}
