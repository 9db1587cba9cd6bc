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

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use md5::{Digest, Md5};
use serde_json::{Value, json};

use super::{ReceivedSend, SendKind, SignatureMethod, VonageAccount, VonageEmulator};
use crate::callbacks::{CallbackKind, Outgoing, ReceiptOutcome};
use crate::faults::{InjectedAnswer, html_page};
use crate::server::Connection;

/// The NCCO `talk` languages (`ncco-schema.json` `definitions.languages`).
const TALK_LANGUAGES: &[&str] = &[
    "ar",
    "bn-IN",
    "ca-ES",
    "cmn-CN",
    "cmn-TW",
    "cs-CZ",
    "cy-GB",
    "da-DK",
    "de-DE",
    "el-GR",
    "en-AU",
    "en-GB",
    "en-GB-WLS",
    "en-IN",
    "en-US",
    "en-ZA",
    "es-ES",
    "es-MX",
    "es-US",
    "eu-ES",
    "fi-FI",
    "fil-PH",
    "fr-CA",
    "fr-FR",
    "he-IL",
    "hi-IN",
    "hu-HU",
    "id-ID",
    "is-IS",
    "it-IT",
    "ja-JP",
    "ko-KR",
    "ml-IN",
    "nb-NO",
    "nl-NL",
    "pl-PL",
    "pt-BR",
    "pt-PT",
    "ro-RO",
    "ru-RU",
    "sk-SK",
    "sv-SE",
    "ta-IN",
    "te-IN",
    "th-TH",
    "tr-TR",
    "uk-UA",
    "vi-VN",
    "yue-CN",
];

/// NCCO actions (`ncco-schema.json` `definitions.ncco`, plus `notify`).
const NCCO_ACTIONS: &[&str] =
    &["talk", "stream", "input", "record", "conversation", "connect", "notify"];

/// The longest SMS text accepted.
const MAX_TEXT_CHARS: usize = 3200;

pub(super) fn routes(emulator: VonageEmulator) -> Router {
    Router::new()
        .route("/sms/{format}", post(send_sms))
        .route("/account/get-balance", get(get_balance))
        .route("/v1/calls", post(create_call).get(list_calls))
        .fallback(not_found)
        .with_state(emulator)
}

// ---------------------------------------------------------------------------------------------
// SMS API

/// The SMS API's answer: `{"message-count","messages":[...]}`, always with string values.
fn sms_answer(status: StatusCode, messages: Vec<Value>) -> Response {
    let body = json!({"message-count": messages.len().to_string(), "messages": messages});
    (status, Json(body)).into_response()
}

fn sms_error(code: u32, text: &str) -> Response {
    sms_answer(StatusCode::OK, vec![json!({"status": code.to_string(), "error-text": text})])
}

fn injected_sms(answer: InjectedAnswer) -> Response {
    let error = |status: StatusCode, code: u32| {
        let reason = status.canonical_reason().unwrap_or("Injected error");
        sms_answer(status, vec![json!({"status": code.to_string(), "error-text": reason})])
    };
    answer.render(error, || {
        let text = "Throughput Rate Exceeded - please wait and retry";
        sms_answer(StatusCode::TOO_MANY_REQUESTS, vec![json!({"status": "1", "error-text": text})])
    })
}

async fn send_sms(
    State(emulator): State<VonageEmulator>,
    Path(format): Path<String>,
    connection: Connection,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let first =
        |name: &str| params.iter().find(|(key, _)| key == name).map(|(_, value)| value.clone());
    let auth = sms_auth(&params, emulator.account());
    emulator.record(|received_at| ReceivedSend {
        kind: SendKind::Sms,
        is_authenticated: auth.is_ok(),
        to: first("to"),
        from: first("from"),
        text: first("text"),
        params: params.clone(),
        body: Value::Null,
        content_type: content_type(&headers),
        received_at,
    });
    if let Some(answer) = emulator.play_faults(connection).await {
        return injected_sms(answer);
    }
    if format != "json" {
        // The XML flavour is not emulated.
        return html_page(StatusCode::NOT_FOUND);
    }
    if let Err((code, text)) = auth.and_then(|()| validate_sms(&params)) {
        return sms_error(code, text);
    }
    let to = first("to").unwrap_or_default();
    if let Some((code, text)) = magic_sms_error(&to) {
        return sms_error(code, text);
    }
    let text = first("text").unwrap_or_default();
    let n_parts = num_parts(&text, first("type").as_deref() == Some("unicode"));
    let client_ref = first("client-ref");
    let messages: Vec<Value> = (0..n_parts)
        .map(|_| {
            let mut message = json!({
                "to": to,
                "message-id": emulator.new_message_id(),
                "status": "0",
                "remaining-balance": "3.14159265",
                "message-price": "0.03330000",
                "network": "12345",
            });
            if let Some(client_ref) = &client_ref {
                message["client-ref"] = json!(client_ref);
            }
            message
        })
        .collect();
    let wants_receipt = first("status-report-req").as_deref() != Some("false");
    if let (true, Some(callback), Some(message_id)) =
        (wants_receipt, first("callback"), messages[0]["message-id"].as_str())
    {
        send_sms_receipt(&emulator, &callback, message_id, &params);
    }
    sms_answer(StatusCode::OK, messages)
}

/// Checks the SMS credentials; the error is the status Vonage answers.
fn sms_auth(
    params: &[(String, String)],
    account: &VonageAccount,
) -> Result<(), (u32, &'static str)> {
    let first =
        |name: &str| params.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str());
    let Some(api_key) = first("api_key").filter(|key| !key.is_empty()) else {
        return Err((2, "Missing api_key"));
    };
    match (first("api_secret"), first("sig")) {
        (Some(_), Some(_)) => Err((32, "Signature and API secret disallowed")),
        (None, Some(sig)) => {
            let Some(secret) = &account.signature_secret else {
                return Err((14, "Invalid Signature"));
            };
            let signed: BTreeMap<&str, &str> =
                params.iter().map(|(key, value)| (key.as_str(), value.as_str())).collect();
            let expected = signature(&signed, secret, account.signature_method);
            if api_key == account.api_key && expected.eq_ignore_ascii_case(sig) {
                Ok(())
            } else {
                Err((14, "Invalid Signature"))
            }
        }
        (Some(secret), None) if api_key == account.api_key && secret == account.api_secret => {
            Ok(())
        }
        (Some(_), None) => Err((4, "Bad Credentials")),
        (None, None) => Err((2, "Missing api_secret")),
    }
}

fn validate_sms(params: &[(String, String)]) -> Result<(), (u32, &'static str)> {
    let first =
        |name: &str| params.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str());
    let from = first("from").filter(|from| !from.is_empty()).ok_or((2, "Missing from param"))?;
    let to = first("to").filter(|to| !to.is_empty()).ok_or((2, "Missing to param"))?;
    let kind = first("type").unwrap_or("text");
    if !["text", "binary", "wappush", "unicode", "vcal", "vcard"].contains(&kind) {
        return Err((3, "Invalid type param"));
    }
    let text = first("text");
    if matches!(kind, "text" | "unicode") && text.is_none_or(str::is_empty) {
        return Err((2, "Missing text param"));
    }
    if !((7..=15).contains(&to.len()) && to.bytes().all(|b| b.is_ascii_digit())) {
        return Err((3, "Invalid to param"));
    }
    if from.chars().count() > 15 {
        return Err((3, "Invalid from param"));
    }
    if let Some(ttl) = first("ttl")
        && !ttl.parse::<u64>().is_ok_and(|ttl| (20_000..=604_800_000).contains(&ttl))
    {
        return Err((3, "Invalid ttl param"));
    }
    if first("client-ref").is_some_and(|reference| reference.chars().count() > 40) {
        return Err((3, "Invalid client-ref param"));
    }
    if let Some(flag) = first("status-report-req")
        && !["true", "false", "1", "0"].contains(&flag)
    {
        return Err((3, "Invalid status-report-req param"));
    }
    if let Some(callback) = first("callback") {
        let is_url = callback.len() <= 2048
            && (callback.starts_with("http://") || callback.starts_with("https://"))
            && !callback.contains(char::is_whitespace);
        if !is_url {
            return Err((23, "Invalid callback url"));
        }
    }
    if text.is_some_and(|text| text.chars().count() > MAX_TEXT_CHARS) {
        return Err((12, "Message too long"));
    }
    Ok(())
}

fn magic_sms_error(to: &str) -> Option<(u32, &'static str)> {
    let error = match to {
        "15005550001" => (6, "Invalid Message"),
        "15005550002" => (29, "Non White-listed Destination"),
        "15005550003" => (15, "Illegal Sender Address - rejected"),
        "15005550004" => (7, "Number barred."),
        "15005550005" => (9, "Partner quota violation"),
        "15005550007" => (1, "Throughput Rate Exceeded - please wait [ 1000 ] and retry"),
        "15005550008" => (5, "Internal Error"),
        "15005550009" => (33, "Number de-activated."),
        _ => return None,
    };
    Some(error)
}

/// Parts Vonage splits a text into: 160/153 GSM-7 characters, or 70/67 UCS-2 units.
fn num_parts(text: &str, is_unicode: bool) -> usize {
    let (units, single, per_part) = if is_unicode {
        (text.encode_utf16().count(), 70, 67)
    } else {
        (text.chars().count(), 160, 153)
    };
    if units <= single { 1 } else { units.div_ceil(per_part) }
}

/// Vonage's signature over `params` (every parameter but `sig`), lower-case hex: keys in byte
/// order, `&key=value` with `&` and `=` in values replaced by `_`, then md5 with the secret
/// appended, or an HMAC keyed with it.
pub(crate) fn signature(
    params: &BTreeMap<&str, &str>,
    secret: &str,
    method: SignatureMethod,
) -> String {
    let mut text = String::new();
    for (key, value) in params.iter().filter(|(key, _)| **key != "sig") {
        text.push_str(&format!("&{key}={}", value.replace(['&', '='], "_")));
    }
    fn hmac_hex<M: Mac + hmac::digest::KeyInit>(key: &[u8], data: &[u8]) -> String {
        let mut mac = <M as hmac::digest::KeyInit>::new_from_slice(key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(data);
        hex::encode(mac.finalize().into_bytes())
    }
    let (key, data) = (secret.as_bytes(), text.as_bytes());
    match method {
        SignatureMethod::Md5Hash => hex::encode(Md5::digest([data, key].concat())),
        SignatureMethod::Md5 => hmac_hex::<Hmac<Md5>>(key, data),
        SignatureMethod::Sha1 => hmac_hex::<Hmac<sha1::Sha1>>(key, data),
        SignatureMethod::Sha256 => hmac_hex::<Hmac<sha2::Sha256>>(key, data),
        SignatureMethod::Sha512 => hmac_hex::<Hmac<sha2::Sha512>>(key, data),
    }
}

/// Posts the spec's `DeliveryReceipt` as JSON, signed when the account has a signature secret.
fn send_sms_receipt(
    emulator: &VonageEmulator,
    callback: &str,
    message_id: &str,
    params: &[(String, String)],
) {
    let log = emulator.callback_log();
    let (status, err_code) = match log.receipts().outcome {
        ReceiptOutcome::None => return,
        ReceiptOutcome::Delivered => ("delivered", "0".to_owned()),
        ReceiptOutcome::Undelivered { code } => ("failed", code),
    };
    let first =
        |name: &str| params.iter().find(|(key, _)| key == name).map(|(_, value)| value.clone());
    let now = time::OffsetDateTime::now_utc();
    let account = emulator.account();
    let mut fields: BTreeMap<String, String> = [
        ("msisdn", first("to").unwrap_or_default()),
        ("to", first("from").unwrap_or_default()),
        ("network-code", "12345".to_owned()),
        ("messageId", message_id.to_owned()),
        ("price", "0.03330000".to_owned()),
        ("status", status.to_owned()),
        (
            "scts",
            format!(
                "{:02}{:02}{:02}{:02}{:02}",
                now.year() % 100,
                u8::from(now.month()),
                now.day(),
                now.hour(),
                now.minute()
            ),
        ),
        ("err-code", err_code),
        ("api-key", account.api_key.clone()),
        (
            "message-timestamp",
            format!(
                "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
                now.year(),
                u8::from(now.month()),
                now.day(),
                now.hour(),
                now.minute(),
                now.second()
            ),
        ),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value))
    .collect();
    if let Some(client_ref) = first("client-ref") {
        fields.insert("client-ref".into(), client_ref);
    }
    if let Some(secret) = &account.signature_secret {
        fields.insert("timestamp".into(), now.unix_timestamp().to_string());
        fields.insert("nonce".into(), emulator.new_uuid_v4());
        let view: BTreeMap<&str, &str> =
            fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let sig = signature(&view, secret, account.signature_method);
        fields.insert("sig".into(), sig.to_uppercase());
    }
    log.schedule(vec![Outgoing {
        kind: CallbackKind::Receipt,
        url: callback.to_owned(),
        message_id: message_id.to_owned(),
        headers: Vec::new(),
        content_type: "application/json",
        body: serde_json::to_string(&fields).unwrap_or_default(),
    }]);
}

async fn get_balance(
    State(emulator): State<VonageEmulator>,
    connection: Connection,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    if let Some(answer) = emulator.play_faults(connection).await {
        return injected_api(answer);
    }
    let account = emulator.account();
    let query: Vec<(String, String)> =
        serde_urlencoded::from_str(query.as_deref().unwrap_or_default()).unwrap_or_default();
    let from_query =
        |name: &str| query.iter().find(|(key, _)| key == name).map(|(_, value)| value.clone());
    let credentials = basic_credentials(&headers)
        .or_else(|| Some((from_query("api_key")?, from_query("api_secret")?)));
    match credentials {
        Some((key, secret)) if key == account.api_key && secret == account.api_secret => {
            Json(json!({"value": 10.28, "autoReload": false})).into_response()
        }
        _ => (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error-code": "401", "error-code-label": "authentication failed"})),
        )
            .into_response(),
    }
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

fn content_type(headers: &HeaderMap) -> Option<String> {
    headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

// ---------------------------------------------------------------------------------------------
// Voice API

/// An RFC 7807 problem, as the Voice API answers errors.
fn problem(
    status: StatusCode,
    fragment: &str,
    title: &str,
    detail: &str,
    invalid: Option<Value>,
) -> Response {
    let mut body = json!({
        "type": format!("https://developer.nexmo.com/api-errors#{fragment}"),
        "title": title,
        "detail": detail,
        "instance": "bf0ca0bf927b3b52e3cb03217e1a1ddf",
    });
    if let Some(invalid) = invalid {
        body["invalid_parameters"] = invalid;
    }
    (status, Json(body)).into_response()
}

fn invalid_parameter(name: &str, reason: &str) -> Response {
    problem(
        StatusCode::BAD_REQUEST,
        "bad-request",
        "Bad Request",
        "The request failed due to validation errors",
        Some(json!([{"name": name, "reason": reason}])),
    )
}

fn injected_api(answer: InjectedAnswer) -> Response {
    let error = |status: StatusCode, code: u32| {
        let reason = status.canonical_reason().unwrap_or("Injected error");
        problem(status, &code.to_string(), reason, reason, None)
    };
    answer.render(error, || {
        let status = StatusCode::TOO_MANY_REQUESTS;
        problem(status, "throttled", "Too Many Requests", "Rate limit exceeded", None)
    })
}

/// Whether `Authorization: Bearer` carries a JWT the application's public key verifies, for
/// this application, with `iat` and `jti`.
fn is_jwt_valid(headers: &HeaderMap, account: &VonageAccount) -> bool {
    #[derive(serde::Deserialize)]
    struct Claims {
        application_id: String,
        #[allow(dead_code)]
        iat: u64,
        #[allow(dead_code)]
        jti: String,
    }
    let (Some(application_id), Some(pem)) = (&account.application_id, &account.public_key_pem)
    else {
        return false;
    };
    let Some(token) = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
    else {
        return false;
    };
    let Ok(key) = DecodingKey::from_rsa_pem(pem.as_bytes()) else {
        return false;
    };
    let mut validation = Validation::new(Algorithm::RS256);
    validation.required_spec_claims = ["exp".to_owned()].into();
    jsonwebtoken::decode::<Claims>(token.trim(), &key, &validation)
        .is_ok_and(|data| &data.claims.application_id == application_id)
}

async fn list_calls(
    State(emulator): State<VonageEmulator>,
    connection: Connection,
    headers: HeaderMap,
) -> Response {
    if let Some(answer) = emulator.play_faults(connection).await {
        return injected_api(answer);
    }
    if !is_jwt_valid(&headers, emulator.account()) {
        return problem(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Invalid Token",
            "You did not provide correct credentials.",
            None,
        );
    }
    Json(json!({
        "count": 0, "page_size": 1, "record_index": 0,
        "_links": {"self": {"href": "/calls?page_size=1&record_index=0&order=asc"}},
        "_embedded": {"calls": []},
    }))
    .into_response()
}

async fn create_call(
    State(emulator): State<VonageEmulator>,
    connection: Connection,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let is_authenticated = is_jwt_valid(&headers, emulator.account());
    emulator.record(|received_at| ReceivedSend {
        kind: SendKind::Call,
        is_authenticated,
        to: parsed["to"][0]["number"].as_str().map(str::to_owned),
        from: parsed["from"]["number"].as_str().map(str::to_owned),
        text: parsed["ncco"][0]["text"].as_str().map(str::to_owned),
        params: Vec::new(),
        body: parsed.clone(),
        content_type: content_type(&headers),
        received_at,
    });
    if let Some(answer) = emulator.play_faults(connection).await {
        return injected_api(answer);
    }
    if !is_authenticated {
        return problem(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Invalid Token",
            "You did not provide correct credentials.",
            None,
        );
    }
    if let Err(response) = validate_call(&parsed) {
        return response;
    }
    match parsed["to"][0]["number"].as_str() {
        Some("15005550005") => {
            return problem(
                StatusCode::PAYMENT_REQUIRED,
                "low-balance",
                "Low balance",
                "This request could not be performed due to your account balance being low.",
                None,
            );
        }
        Some("15005550007") => {
            return problem(
                StatusCode::TOO_MANY_REQUESTS,
                "throttled",
                "Too Many Requests",
                "Rate limit exceeded",
                None,
            );
        }
        _ => {}
    }
    let uuid = emulator.new_uuid_v4();
    let conversation_uuid = format!("CON-{}", emulator.new_uuid_v4());
    if let Some(event_url) = parsed["event_url"][0].as_str() {
        send_call_event(&emulator, event_url, &uuid, &conversation_uuid, &parsed);
    }
    (
        StatusCode::CREATED,
        Json(json!({"uuid": uuid, "status": "started", "direction": "outbound", "conversation_uuid": conversation_uuid})),
    )
        .into_response()
}

/// The spec's `CreateCallRequestNcco` / `CreateCallRequestAnswerUrl` and the NCCO schema.
#[allow(clippy::result_large_err)]
fn validate_call(body: &Value) -> Result<(), Response> {
    let Some(object) = body.as_object() else {
        return Err(invalid_parameter("body", "must be a JSON object"));
    };
    let is_number = |value: &Value| {
        value
            .as_str()
            .is_some_and(|n| (7..=15).contains(&n.len()) && n.bytes().all(|b| b.is_ascii_digit()))
    };
    let legs = object.get("to").and_then(Value::as_array).filter(|legs| !legs.is_empty());
    let Some(legs) = legs else {
        return Err(invalid_parameter("to", "is required and must be a non-empty array"));
    };
    for leg in legs {
        match leg["type"].as_str() {
            Some("phone") if is_number(&leg["number"]) => {}
            Some("phone") => return Err(invalid_parameter("to.number", "must be 7 to 15 digits")),
            Some("sip" | "websocket" | "vbc" | "app") => {}
            _ => {
                return Err(invalid_parameter(
                    "to.type",
                    "must be phone, sip, websocket, vbc or app",
                ));
            }
        }
    }
    let from = &object.get("from").cloned().unwrap_or(Value::Null);
    let is_random_from = object.get("random_from_number") == Some(&Value::Bool(true));
    if (from["type"] != "phone" || !is_number(&from["number"])) && !is_random_from {
        return Err(invalid_parameter("from", "must be a phone endpoint with 7 to 15 digits"));
    }
    match (object.get("ncco"), object.get("answer_url")) {
        (Some(ncco), None) => validate_ncco(ncco)?,
        (None, Some(Value::Array(urls)))
            if !urls.is_empty() && urls.iter().all(Value::is_string) => {}
        _ => return Err(invalid_parameter("ncco", "give exactly one of ncco and answer_url")),
    }
    if let Some(urls) = object.get("event_url") {
        let is_valid = urls.as_array().is_some_and(|urls| {
            !urls.is_empty()
                && urls.iter().all(|url| {
                    url.as_str().is_some_and(|url| {
                        url.starts_with("http://") || url.starts_with("https://")
                    })
                })
        });
        if !is_valid {
            return Err(invalid_parameter("event_url", "must be an array of URLs"));
        }
    }
    let in_range = |name: &str, low: u64, high: u64| {
        object
            .get(name)
            .is_none_or(|value| value.as_u64().is_some_and(|n| (low..=high).contains(&n)))
    };
    if !in_range("ringing_timer", 1, 120) {
        return Err(invalid_parameter("ringing_timer", "must be between 1 and 120"));
    }
    if !in_range("length_timer", 1, 7200) {
        return Err(invalid_parameter("length_timer", "must be between 1 and 7200"));
    }
    let is_one_of = |name: &str, allowed: &[&str]| {
        object
            .get(name)
            .is_none_or(|value| value.as_str().is_some_and(|text| allowed.contains(&text)))
    };
    if !is_one_of("event_method", &["POST", "GET"]) {
        return Err(invalid_parameter("event_method", "must be POST or GET"));
    }
    if !is_one_of("machine_detection", &["continue", "hangup"]) {
        return Err(invalid_parameter("machine_detection", "must be continue or hangup"));
    }
    Ok(())
}

#[allow(clippy::result_large_err)]
fn validate_ncco(ncco: &Value) -> Result<(), Response> {
    let Some(actions) = ncco.as_array().filter(|actions| !actions.is_empty()) else {
        return Err(invalid_parameter("ncco", "must be a non-empty array"));
    };
    for action in actions {
        let name = action["action"].as_str().unwrap_or_default();
        if !NCCO_ACTIONS.contains(&name) {
            return Err(invalid_parameter("ncco.action", "unknown action"));
        }
        if name != "talk" {
            continue;
        }
        if !action["text"]
            .as_str()
            .is_some_and(|text| !text.is_empty() && text.chars().count() <= 1500)
        {
            return Err(invalid_parameter("ncco.text", "is required, up to 1500 characters"));
        }
        if let Some(language) = action.get("language")
            && !language.as_str().is_some_and(|language| TALK_LANGUAGES.contains(&language))
        {
            return Err(invalid_parameter("ncco.language", "is not a supported language"));
        }
        for field in ["loop", "style"] {
            if action.get(field).is_some_and(|value| value.as_u64().is_none()) {
                return Err(invalid_parameter(
                    &format!("ncco.{field}"),
                    "must be an integer of 0 or more",
                ));
            }
        }
        if action.get("bargeIn").is_some_and(|value| !value.is_boolean()) {
            return Err(invalid_parameter("ncco.bargeIn", "must be a boolean"));
        }
    }
    Ok(())
}

/// Posts one call event (`answered`, or the plan's status for an undelivered call), with a
/// signed-webhook JWT when the account has a signature secret.
fn send_call_event(
    emulator: &VonageEmulator,
    event_url: &str,
    uuid: &str,
    conversation_uuid: &str,
    call: &Value,
) {
    let log = emulator.callback_log();
    let status = match log.receipts().outcome {
        ReceiptOutcome::None => return,
        ReceiptOutcome::Delivered => "answered".to_owned(),
        ReceiptOutcome::Undelivered { code } => code,
    };
    let now = time::OffsetDateTime::now_utc();
    let timestamp = now.format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
    let event = json!({
        "uuid": uuid,
        "conversation_uuid": conversation_uuid,
        "status": status,
        "direction": "outbound",
        "from": call["from"]["number"],
        "to": call["to"][0]["number"],
        "timestamp": timestamp,
    });
    let body = event.to_string();
    let mut headers = Vec::new();
    let account = emulator.account();
    if let Some(secret) = &account.signature_secret {
        let claims = json!({
            "iat": now.unix_timestamp(),
            "jti": emulator.new_uuid_v4(),
            "iss": "Vonage",
            "payload_hash": hex::encode(sha2::Sha256::digest(&body)),
            "api_key": account.api_key,
            "application_id": account.application_id,
        });
        match jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        ) {
            Ok(token) => headers.push(("authorization".to_owned(), format!("Bearer {token}"))),
            Err(error) => tracing::warn!(%error, "emulator could not sign a call event"),
        }
    }
    log.schedule(vec![Outgoing {
        kind: CallbackKind::Receipt,
        url: event_url.to_owned(),
        message_id: uuid.to_owned(),
        headers,
        content_type: "application/json",
        body,
    }]);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_match_known_values() {
        // Computed independently with Python's hashlib and hmac.
        let params: BTreeMap<&str, &str> = [("b", "x&y=z"), ("a", "1"), ("sig", "x")].into();
        assert_eq!(
            signature(&params, "secret", SignatureMethod::Md5Hash),
            "d088c52d7310db7e614291e02965665f"
        );
        assert_eq!(
            signature(&params, "secret", SignatureMethod::Sha256),
            "df118f87671493df4adacdac13cfe0589acd128b696c2eecf46e96e6494c11f5"
        );
    }

    #[test]
    fn counts_parts() {
        assert_eq!(num_parts(&"a".repeat(160), false), 1);
        assert_eq!(num_parts(&"a".repeat(161), false), 2);
        assert_eq!(num_parts(&"é".repeat(70), true), 1);
        assert_eq!(num_parts(&"é".repeat(71), true), 2);
    }
}
