//! The callbacks Vonage makes, verified before anything is read from them.
//!
//! - SMS delivery receipts (`{callback_base}/sms`): the parameters arrive as JSON (the spec's
//!   `DeliveryReceipt`), a form or a query string, as the dashboard's webhook format says; signed
//!   receipts carry `timestamp`, `nonce` and `sig`, where `sig` is computed over every other
//!   parameter exactly as a signed request is (see [`super::request::signature`]).
//! - Voice events (`{callback_base}/voice`): `Authorization: Bearer` with an HS256 JWT made with
//!   the signature secret, whose `payload_hash` claim is the SHA-256 of the body; a token is
//!   only good for the body it was made for.

use std::collections::{BTreeMap, HashSet};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::classify::{call_event_state, sms_receipt_state};
use super::config::SignatureMethod;
use super::request::signature;
use crate::secret::constant_time_eq;
use crate::{Callback, CallbackError, Receipt};

/// Verifies and reads one SMS delivery receipt.
pub(crate) fn sms_receipt(
    callback: &Callback,
    secret: &str,
    method: SignatureMethod,
) -> Result<Vec<Receipt>, CallbackError> {
    let params = receipt_params(callback)?;
    let Some(sig) = params.get("sig") else {
        return Err(CallbackError::BadSignature);
    };
    let signed: BTreeMap<&str, &str> =
        params.iter().map(|(key, value)| (key.as_str(), value.as_str())).collect();
    let expected = signature(&signed, secret, method);
    if !constant_time_eq(expected.as_bytes(), sig.to_ascii_lowercase().as_bytes()) {
        return Err(CallbackError::BadSignature);
    }
    let message_id = params
        .get("messageId")
        .filter(|id| !id.is_empty())
        .ok_or_else(|| CallbackError::Malformed("receipt without messageId".into()))?;
    let status = params
        .get("status")
        .ok_or_else(|| CallbackError::Malformed("receipt without status".into()))?;
    let err_code = params.get("err-code").map(String::as_str);
    Ok(vec![Receipt {
        message_id: message_id.clone(),
        state: sms_receipt_state(status, err_code),
        provider_code: err_code.filter(|code| is_short_code(code)).map(str::to_owned),
    }])
}

/// The receipt's parameters, wherever the dashboard setting put them.
fn receipt_params(callback: &Callback) -> Result<BTreeMap<String, String>, CallbackError> {
    let malformed = |what: &str| CallbackError::Malformed(format!("receipt {what}"));
    if callback.method.eq_ignore_ascii_case("GET") {
        let query = callback.url.split_once('?').map_or("", |(_, query)| query);
        return serde_urlencoded::from_str(query).map_err(|_| malformed("query is not a form"));
    }
    let body = callback.body.as_ref();
    if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') {
        let object: serde_json::Map<String, Value> =
            serde_json::from_slice(body).map_err(|_| malformed("body is not a JSON object"))?;
        return Ok(object
            .into_iter()
            .map(|(key, value)| {
                let text = match value {
                    Value::String(text) => text,
                    other => other.to_string(),
                };
                (key, text)
            })
            .collect());
    }
    serde_urlencoded::from_bytes(body).map_err(|_| malformed("body is not a form"))
}

/// Vonage's codes are short numbers; anything else is not copied into logs.
fn is_short_code(code: &str) -> bool {
    (1..=8).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Verifies and reads one Voice event.
pub(crate) fn call_event(
    callback: &Callback,
    secret: &str,
    api_key: Option<&str>,
) -> Result<Vec<Receipt>, CallbackError> {
    #[derive(Deserialize)]
    struct SignedClaims {
        payload_hash: Option<String>,
        api_key: Option<String>,
    }
    let token = callback
        .headers
        .get(http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")))
        .ok_or(CallbackError::BadSignature)?;
    let mut validation = Validation::new(Algorithm::HS256);
    // Vonage's tokens carry `iat` and `jti`; `exp` is checked when present.
    validation.required_spec_claims = HashSet::new();
    let claims = jsonwebtoken::decode::<SignedClaims>(
        token.trim(),
        &DecodingKey::from_secret(secret.as_bytes()),
        &validation,
    )
    .map_err(|_| CallbackError::BadSignature)?
    .claims;
    let body_hash = hex::encode(Sha256::digest(&callback.body));
    let is_body_signed = claims.payload_hash.is_some_and(|hash| {
        constant_time_eq(hash.to_ascii_lowercase().as_bytes(), body_hash.as_bytes())
    });
    let is_our_account = match (api_key, claims.api_key.as_deref()) {
        (Some(ours), Some(theirs)) => ours == theirs,
        _ => true,
    };
    if !is_body_signed || !is_our_account {
        return Err(CallbackError::BadSignature);
    }
    #[derive(Deserialize)]
    struct Event {
        uuid: Option<String>,
        status: Option<String>,
    }
    let event: Event = serde_json::from_slice(&callback.body)
        .map_err(|_| CallbackError::Malformed("event is not a JSON object".into()))?;
    // Events without a call status (input, recording, transfer) carry no receipt.
    let (Some(uuid), Some(status)) = (event.uuid, event.status) else {
        return Ok(Vec::new());
    };
    let provider_code = (status.len() <= 16 && status.bytes().all(|b| b.is_ascii_lowercase()))
        .then(|| status.clone());
    Ok(vec![Receipt { message_id: uuid, state: call_event_state(&status), provider_code }])
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use http::HeaderMap;
    use jsonwebtoken::{EncodingKey, Header};
    use switchboard_core::ErrorClass;

    use super::*;
    use crate::DeliveryState;

    const SECRET: &str = "signature-secret";

    fn callback(method: &str, url: &str, headers: HeaderMap, body: &str) -> Callback {
        Callback {
            method: method.into(),
            url: url.into(),
            subpath: "/sms".into(),
            headers,
            body: Bytes::from(body.to_owned()),
        }
    }

    fn signed_receipt(
        status: &str,
        err_code: &str,
        method: SignatureMethod,
    ) -> BTreeMap<String, String> {
        let mut params: BTreeMap<String, String> = [
            ("msisdn", "14155550100"),
            ("to", "Acme"),
            ("network-code", "12345"),
            ("messageId", "0A0000000123ABCD1"),
            ("price", "0.033"),
            ("status", status),
            ("scts", "2001011400"),
            ("err-code", err_code),
            ("api-key", "abcd1234"),
            ("message-timestamp", "2020-01-01 12:00:00"),
            ("timestamp", "1582650446"),
            ("nonce", "ec11dd3e-1e7f-4db5-9467-82b02cd223b9"),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect();
        let view: BTreeMap<&str, &str> =
            params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let sig = signature(&view, SECRET, method).to_uppercase();
        params.insert("sig".into(), sig);
        params
    }

    #[test]
    fn reads_signed_receipts_in_every_format() {
        let params = signed_receipt("delivered", "0", SignatureMethod::Md5Hash);
        let json = serde_json::to_string(&params).unwrap();
        let form = serde_urlencoded::to_string(&params).unwrap();
        for request in [
            callback("POST", "https://h/callbacks/v/sms", HeaderMap::new(), &json),
            callback("POST", "https://h/callbacks/v/sms", HeaderMap::new(), &form),
            callback("GET", &format!("https://h/callbacks/v/sms?{form}"), HeaderMap::new(), ""),
        ] {
            let receipts = sms_receipt(&request, SECRET, SignatureMethod::Md5Hash).unwrap();
            assert_eq!(
                receipts,
                [Receipt {
                    message_id: "0A0000000123ABCD1".into(),
                    state: DeliveryState::Delivered,
                    provider_code: Some("0".into()),
                }]
            );
        }
        let hmac = signed_receipt("failed", "6", SignatureMethod::Sha512);
        let request =
            callback("POST", "u", HeaderMap::new(), &serde_json::to_string(&hmac).unwrap());
        let receipts = sms_receipt(&request, SECRET, SignatureMethod::Sha512).unwrap();
        assert_eq!(receipts[0].state, DeliveryState::Undelivered(ErrorClass::Blocked));
    }

    #[test]
    fn refuses_forged_or_unsigned_receipts() {
        let mut params = signed_receipt("delivered", "0", SignatureMethod::Md5Hash);
        let request =
            callback("POST", "u", HeaderMap::new(), &serde_json::to_string(&params).unwrap());
        assert_eq!(
            sms_receipt(&request, "other", SignatureMethod::Md5Hash),
            Err(CallbackError::BadSignature)
        );
        assert_eq!(
            sms_receipt(&request, SECRET, SignatureMethod::Md5),
            Err(CallbackError::BadSignature)
        );
        params.insert("status".into(), "failed".into());
        let tampered =
            callback("POST", "u", HeaderMap::new(), &serde_json::to_string(&params).unwrap());
        assert_eq!(
            sms_receipt(&tampered, SECRET, SignatureMethod::Md5Hash),
            Err(CallbackError::BadSignature)
        );
        params.remove("sig");
        let unsigned =
            callback("POST", "u", HeaderMap::new(), &serde_json::to_string(&params).unwrap());
        assert_eq!(
            sms_receipt(&unsigned, SECRET, SignatureMethod::Md5Hash),
            Err(CallbackError::BadSignature)
        );
        let garbage = callback("POST", "u", HeaderMap::new(), "{not json");
        assert!(matches!(
            sms_receipt(&garbage, SECRET, SignatureMethod::Md5Hash),
            Err(CallbackError::Malformed(_))
        ));
    }

    fn event_token(secret: &str, body: &str, api_key: &str) -> String {
        let claims = serde_json::json!({
            "iat": 1_700_000_000u64,
            "jti": "b4d1c2c0-0000-4000-8000-000000000000",
            "iss": "Vonage",
            "payload_hash": hex::encode(Sha256::digest(body.as_bytes())),
            "api_key": api_key,
            "application_id": "aaaaaaaa-bbbb-4ccc-8ddd-0123456789ab",
        });
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    fn event(token: &str, body: &str) -> Callback {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
        Callback { subpath: "/voice".into(), ..callback("POST", "u", headers, body) }
    }

    #[test]
    fn reads_signed_voice_events_and_refuses_others() {
        let body = r#"{"uuid":"63f61863-4a51-4f6b-86e1-46edebcf9356","conversation_uuid":"CON-1","status":"answered","direction":"outbound","timestamp":"2020-01-01T12:00:00.000Z"}"#;
        let receipts = call_event(
            &event(&event_token(SECRET, body, "abcd1234"), body),
            SECRET,
            Some("abcd1234"),
        )
        .unwrap();
        assert_eq!(receipts[0].message_id, "63f61863-4a51-4f6b-86e1-46edebcf9356");
        assert_eq!(receipts[0].state, DeliveryState::Delivered);

        let other_body = body.replace("answered", "failed");
        for (request, api_key) in [
            (event(&event_token("wrong", body, "abcd1234"), body), Some("abcd1234")),
            (event(&event_token(SECRET, body, "abcd1234"), &other_body), Some("abcd1234")),
            (event(&event_token(SECRET, body, "someone"), body), Some("abcd1234")),
            (callback("POST", "u", HeaderMap::new(), body), None),
            (event("not.a.jwt", body), None),
        ] {
            assert_eq!(call_event(&request, SECRET, api_key), Err(CallbackError::BadSignature));
        }
        let no_status = r#"{"uuid":"63f61863","dtmf":"1"}"#;
        let receipts =
            call_event(&event(&event_token(SECRET, no_status, "k"), no_status), SECRET, None)
                .unwrap();
        assert!(receipts.is_empty());
    }
}
