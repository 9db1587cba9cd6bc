//! Vonage's Voice API (`POST /v1/calls`, `GET /v1/calls`): the RS256 JWT check, the body and
//! NCCO validation, answers as RFC 7807 problems, and the call events posted after a call.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use md5::Digest;
use serde_json::{Value, json};

use super::{ReceivedSend, SendKind, VonageAccount, VonageEmulator};
use crate::callbacks::{CallbackKind, Outgoing, ReceiptOutcome};
use crate::faults::InjectedAnswer;
use crate::request::content_type;
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

/// An RFC 7807 problem, as the Voice API answers errors.
pub(super) fn problem(
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

pub(super) fn injected_api(answer: InjectedAnswer) -> Response {
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

pub(super) async fn list_calls(
    State(emulator): State<VonageEmulator>,
    connection: Connection,
    headers: HeaderMap,
) -> Response {
    let is_authenticated = || is_jwt_valid(&headers, emulator.account());
    if let Err(response) =
        emulator.gate(connection, is_authenticated, injected_api, unauthorized).await
    {
        return response;
    }
    Json(json!({
        "count": 0, "page_size": 1, "record_index": 0,
        "_links": {"self": {"href": "/calls?page_size=1&record_index=0&order=asc"}},
        "_embedded": {"calls": []},
    }))
    .into_response()
}

pub(super) async fn create_call(
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
    if let Err(response) =
        emulator.gate(connection, || is_authenticated, injected_api, unauthorized).await
    {
        return response;
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
    match parsed["event_url"][0].as_str() {
        Some(event_url) => {
            send_call_event(&emulator, event_url, &uuid, &conversation_uuid, &parsed)
        }
        None => {
            emulator.callback_log().decide_unreported(&uuid, parsed["to"][0]["number"].as_str());
        }
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
    let decision = log.decide(uuid, call["to"][0]["number"].as_str());
    let status = match decision.report {
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
    log.schedule(
        vec![Outgoing {
            kind: CallbackKind::Receipt,
            url: event_url.to_owned(),
            message_id: uuid.to_owned(),
            headers,
            content_type: "application/json",
            body,
        }],
        decision.delay,
    );
}

/// The Voice API's refusal of a missing or invalid JWT.
fn unauthorized() -> Response {
    problem(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "Invalid Token",
        "You did not provide correct credentials.",
        None,
    )
}
