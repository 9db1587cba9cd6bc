//! The callbacks Sinch makes, verified before anything is read from them.
//!
//! - SMS delivery reports (`{callback_base}/sms/{callback_token}`): unsigned JSON, either a
//!   `recipient_delivery_report_sms` (one recipient) or a `delivery_report_sms` summary; the
//!   caller has already checked the path's token.
//! - Voice events (`{callback_base}/voice`): signed with the application secret (see `sign`);
//!   only DiCE (`"event":"dice"`) carries a verdict. The signed `x-timestamp` must be within
//!   [`MAX_SKEW`] of now, so a captured event cannot be replayed later.

use std::time::{Duration, SystemTime};

use serde::Deserialize;

use super::classify::{dice_state, report_state};
use super::sign;
use crate::secret::constant_time_eq;
use crate::{Callback, CallbackError, Receipt};

/// How far a signed callback's timestamp may be from our clock.
const MAX_SKEW: Duration = Duration::from_secs(15 * 60);

/// Reads one SMS delivery report.
pub(crate) fn delivery_report(callback: &Callback) -> Result<Vec<Receipt>, CallbackError> {
    #[derive(Deserialize)]
    struct Report {
        #[serde(rename = "type")]
        kind: Option<String>,
        batch_id: Option<String>,
        status: Option<String>,
        code: Option<u32>,
        #[serde(default)]
        statuses: Vec<StatusCount>,
    }
    #[derive(Deserialize)]
    struct StatusCount {
        status: String,
        code: Option<u32>,
    }
    let report: Report = serde_json::from_slice(&callback.body)
        .map_err(|_| CallbackError::Malformed("delivery report is not JSON".into()))?;
    let batch_id = report
        .batch_id
        .filter(|id| !id.is_empty())
        .ok_or_else(|| CallbackError::Malformed("delivery report without batch_id".into()))?;
    let receipt = |status: &str, code: Option<u32>| Receipt {
        message_id: batch_id.clone(),
        state: report_state(status, code),
        provider_code: code.map(|code| code.to_string()),
    };
    match report.kind.as_deref() {
        Some("recipient_delivery_report_sms") => {
            let status = report
                .status
                .ok_or_else(|| CallbackError::Malformed("delivery report without status".into()))?;
            Ok(vec![receipt(&status, report.code)])
        }
        Some("delivery_report_sms") => {
            Ok(report.statuses.iter().map(|entry| receipt(&entry.status, entry.code)).collect())
        }
        _ => Err(CallbackError::Malformed("not an SMS delivery report".into())),
    }
}

/// Checks `Authorization: Application {key}:{signature}` over the request as received.
pub(crate) fn verify_signed(
    callback: &Callback,
    application_key: &str,
    application_secret: &str,
    now: SystemTime,
) -> Result<(), CallbackError> {
    let header = |name: &str| callback.headers.get(name).and_then(|value| value.to_str().ok());
    let authorization = header("authorization").ok_or(CallbackError::BadSignature)?;
    let (scheme, credentials) = authorization.split_once(' ').ok_or(CallbackError::BadSignature)?;
    let (key, signature) = credentials.trim().split_once(':').ok_or(CallbackError::BadSignature)?;
    if !scheme.eq_ignore_ascii_case("application") || key != application_key {
        return Err(CallbackError::BadSignature);
    }
    let timestamp = header("x-timestamp").ok_or(CallbackError::BadSignature)?;
    if !is_fresh(timestamp, now) {
        return Err(CallbackError::BadSignature);
    }
    let url = reqwest::Url::parse(&callback.url).map_err(|_| CallbackError::BadSignature)?;
    let path = match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    };
    let content_type = header("content-type").unwrap_or_default();
    let text =
        sign::string_to_sign(&callback.method, &callback.body, content_type, timestamp, &path);
    let expected = sign::signature(application_secret, &text).ok_or(CallbackError::BadSignature)?;
    if constant_time_eq(expected.as_bytes(), signature.as_bytes()) {
        Ok(())
    } else {
        Err(CallbackError::BadSignature)
    }
}

fn is_fresh(timestamp: &str, now: SystemTime) -> bool {
    let Ok(at) =
        time::OffsetDateTime::parse(timestamp, &time::format_description::well_known::Rfc3339)
    else {
        return false;
    };
    let at = SystemTime::from(at);
    let skew = at.duration_since(now).or_else(|_| now.duration_since(at)).unwrap_or(Duration::MAX);
    skew <= MAX_SKEW
}

/// Reads a verified Voice event: a DiCE gives one receipt, other events none.
pub(crate) fn call_event(callback: &Callback) -> Result<Vec<Receipt>, CallbackError> {
    #[derive(Deserialize)]
    struct Event {
        event: Option<String>,
        #[serde(alias = "callId")]
        callid: Option<String>,
        result: Option<String>,
    }
    let event: Event = serde_json::from_slice(&callback.body)
        .map_err(|_| CallbackError::Malformed("voice event is not JSON".into()))?;
    if event.event.as_deref() != Some("dice") {
        return Ok(Vec::new());
    }
    let (Some(call_id), Some(result)) = (event.callid, event.result) else {
        return Err(CallbackError::Malformed("dice without callid or result".into()));
    };
    let provider_code = (result.len() <= 16 && result.bytes().all(|b| b.is_ascii_alphabetic()))
        .then(|| result.clone());
    Ok(vec![Receipt { message_id: call_id, state: dice_state(&result), provider_code }])
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use http::HeaderMap;
    use switchboard_core::ErrorClass;

    use super::*;
    use crate::DeliveryState;

    const KEY: &str = "669E367E-6BBA-48AB-AF15-266871C28135";
    const SECRET: &str = "BeIukql3pTKJ8RGL5zo0DA==";
    const URL: &str = "https://hook.example/callbacks/sinch-eu/voice";

    fn request(headers: HeaderMap, body: &str) -> Callback {
        Callback {
            method: "POST".into(),
            url: URL.into(),
            subpath: "/voice".into(),
            headers,
            body: Bytes::from(body.to_owned()),
        }
    }

    fn signed(body: &str, timestamp: &str, secret: &str) -> Callback {
        let text = sign::string_to_sign(
            "POST",
            body.as_bytes(),
            "application/json; charset=utf-8",
            timestamp,
            "/callbacks/sinch-eu/voice",
        );
        let mut headers = HeaderMap::new();
        let signature = sign::signature(secret, &text).unwrap();
        headers.insert("authorization", format!("Application {KEY}:{signature}").parse().unwrap());
        headers.insert("x-timestamp", timestamp.parse().unwrap());
        headers.insert("content-type", "application/json; charset=utf-8".parse().unwrap());
        request(headers, body)
    }

    fn at(timestamp: &str) -> SystemTime {
        SystemTime::from(
            time::OffsetDateTime::parse(timestamp, &time::format_description::well_known::Rfc3339)
                .unwrap(),
        )
    }

    #[test]
    fn verifies_and_reads_dice() {
        let body = r#"{"event":"dice","callid":"adf92089-df2a-4f14-a377-1e975f588fe4","timestamp":"2026-01-01T12:00:00Z","reason":"MANAGERHANGUP","result":"ANSWERED","version":1,"custom":"evt-1"}"#;
        let callback = signed(body, "2026-01-01T12:00:00Z", SECRET);
        verify_signed(&callback, KEY, SECRET, at("2026-01-01T12:05:00Z")).unwrap();
        let receipts = call_event(&callback).unwrap();
        assert_eq!(receipts[0].message_id, "adf92089-df2a-4f14-a377-1e975f588fe4");
        assert_eq!(receipts[0].state, DeliveryState::Delivered);
        let ace = r#"{"event":"ace","callid":"x"}"#;
        assert!(call_event(&signed(ace, "2026-01-01T12:00:00Z", SECRET)).unwrap().is_empty());
    }

    #[test]
    fn refuses_forged_stale_and_unsigned_events() {
        let body = r#"{"event":"dice","callid":"c","result":"ANSWERED"}"#;
        let now = at("2026-01-01T12:00:00Z");
        let forged = signed(body, "2026-01-01T12:00:00Z", "c2VjcmV0");
        let stale = signed(body, "2026-01-01T11:00:00Z", SECRET);
        let mut tampered = signed(body, "2026-01-01T12:00:00Z", SECRET);
        tampered.body = Bytes::from(body.replace("ANSWERED", "FAILED"));
        let mut moved = signed(body, "2026-01-01T12:00:00Z", SECRET);
        moved.url = "https://hook.example/callbacks/other/voice".into();
        for callback in [forged, stale, tampered, moved, request(HeaderMap::new(), body)] {
            assert_eq!(
                verify_signed(&callback, KEY, SECRET, now),
                Err(CallbackError::BadSignature)
            );
        }
        let other_key = signed(body, "2026-01-01T12:00:00Z", SECRET);
        assert_eq!(
            verify_signed(&other_key, "another-key", SECRET, now),
            Err(CallbackError::BadSignature)
        );
    }

    #[test]
    fn reads_delivery_reports() {
        let per_recipient = r#"{"type":"recipient_delivery_report_sms","batch_id":"01FC66621VHDBN119Z8PMV1QPQ","recipient":"+14155550100","code":402,"status":"Failed","at":"2026-01-01T12:00:00.000Z"}"#;
        let receipts = delivery_report(&request(HeaderMap::new(), per_recipient)).unwrap();
        assert_eq!(receipts[0].message_id, "01FC66621VHDBN119Z8PMV1QPQ");
        assert_eq!(receipts[0].state, DeliveryState::Undelivered(ErrorClass::InvalidNumber));
        assert_eq!(receipts[0].provider_code.as_deref(), Some("402"));
        let summary = r#"{"type":"delivery_report_sms","batch_id":"01FC66621VHDBN119Z8PMV1QPQ","total_message_count":"1","statuses":[{"code":0,"status":"Delivered","count":1}]}"#;
        let receipts = delivery_report(&request(HeaderMap::new(), summary)).unwrap();
        assert_eq!(receipts[0].state, DeliveryState::Delivered);
        for bad in [
            "{",
            r#"{"type":"mo_text","batch_id":"x"}"#,
            r#"{"type":"recipient_delivery_report_sms"}"#,
        ] {
            assert!(
                matches!(
                    delivery_report(&request(HeaderMap::new(), bad)),
                    Err(CallbackError::Malformed(_))
                ),
                "{bad}"
            );
        }
    }
}
