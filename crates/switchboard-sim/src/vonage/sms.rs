//! Vonage's SMS API (`POST /sms/json`, `GET /account/get-balance`): credentials and `sig`,
//! parameter limits, magic recipients, answers and the delivery receipts posted after a send.
//! The checks' order and codes are in the `api` module's docs.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use serde_json::{Value, json};

use super::voice::injected_api;
use super::{ReceivedSend, SendKind, SignatureMethod, VonageAccount, VonageEmulator};
use crate::callbacks::{CallbackKind, Outgoing, ReceiptOutcome};
use crate::faults::{InjectedAnswer, html_page};
use crate::request::{basic_credentials, content_type};
use crate::server::Connection;

/// The longest SMS text accepted.
const MAX_TEXT_CHARS: usize = 3200;

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

pub(super) async fn send_sms(
    State(emulator): State<VonageEmulator>,
    Path(format): Path<String>,
    connection: Connection,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let first = |name: &str| crate::request::first_param(&params, name).map(str::to_owned);
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
    // The first part's id stands for the message, as the receipt's `messageId` does.
    if let Some(message_id) = messages[0]["message-id"].as_str() {
        match first("callback").filter(|_| wants_receipt) {
            Some(callback) => send_sms_receipt(&emulator, &callback, message_id, &params),
            None => {
                emulator.callback_log().decide_unreported(message_id, Some(to.as_str()));
            }
        }
    }
    sms_answer(StatusCode::OK, messages)
}

/// Checks the SMS credentials; the error is the status Vonage answers.
fn sms_auth(
    params: &[(String, String)],
    account: &VonageAccount,
) -> Result<(), (u32, &'static str)> {
    let first = |name: &str| crate::request::first_param(params, name);
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
    let first = |name: &str| crate::request::first_param(params, name);
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
    let to = crate::request::first_param(params, "to");
    let decision = log.decide(message_id, to);
    let (status, err_code) = match decision.report {
        ReceiptOutcome::None => return,
        ReceiptOutcome::Delivered => ("delivered", "0".to_owned()),
        ReceiptOutcome::Undelivered { code } => ("failed", code),
    };
    let first = |name: &str| crate::request::first_param(params, name).map(str::to_owned);
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
    log.schedule(
        vec![Outgoing {
            kind: CallbackKind::Receipt,
            url: callback.to_owned(),
            message_id: message_id.to_owned(),
            headers: Vec::new(),
            content_type: "application/json",
            body: serde_json::to_string(&fields).unwrap_or_default(),
        }],
        decision.delay,
    );
}

pub(super) async fn get_balance(
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
    let from_query = |name: &str| crate::request::first_param(&query, name).map(str::to_owned);
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
