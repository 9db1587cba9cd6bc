//! Turns Sinch's answers and callbacks into acceptance, classified errors and delivery states.
//!
//! SMS: 201 with the batch `id` is acceptance. Errors are `{"code","text"}`; the research table
//! is followed except where a code is generic. `syntax_invalid_parameter_format` is a number
//! verdict only when its text names the `to` parameter (the text is inspected, never logged);
//! other syntax errors are requests we built (auth_config). `blocked_account` is the account's
//! problem, not the recipient's: auth_config (the table lists it under blocked, which would stop
//! failover for every user while the account is blocked).
//!
//! Voice: 200 with `callId` (the SDK; the spec example writes `callid`, so both are read) is
//! acceptance. Errors carry `errorCode` (`40200` payment required, funds). `40003` is Sinch's
//! generic "invalid request": auth_config, not the number verdict the table suggests. Otherwise
//! the HTTP status decides.

use std::time::SystemTime;

use serde::Deserialize;
use switchboard_core::ErrorClass;

use super::KIND;
use crate::http::RawAnswer;
use crate::{Accepted, DeliveryState, ProviderError};

/// Classifies the answer to `POST /xms/v1/{plan}/batches`.
pub(crate) fn classify_batch(
    answer: &RawAnswer,
    now: SystemTime,
) -> Result<Accepted, ProviderError> {
    #[derive(Deserialize)]
    struct Created {
        id: Option<String>,
    }
    if answer.is_success() {
        let id =
            serde_json::from_slice::<Created>(&answer.body).ok().and_then(|created| created.id);
        return accepted(answer, id, "batch id");
    }
    Err(sms_refusal(answer, now))
}

fn accepted(answer: &RawAnswer, id: Option<String>, what: &str) -> Result<Accepted, ProviderError> {
    crate::refusal::accepted(KIND, answer, id.filter(|id| is_id(id)), what)
}

/// Batch ids are 26-character ULIDs, call ids UUIDs (sometimes with a `_leg` suffix).
fn is_id(id: &str) -> bool {
    (8..=64).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Classifies the answer to the SMS probe (`GET /xms/v1/{plan}/batches`).
pub(crate) fn classify_probe(answer: &RawAnswer, now: SystemTime) -> Result<(), ProviderError> {
    if answer.is_success() { Ok(()) } else { Err(sms_refusal(answer, now)) }
}

fn sms_refusal(answer: &RawAnswer, now: SystemTime) -> ProviderError {
    #[derive(Deserialize)]
    struct SmsError {
        code: Option<String>,
        text: Option<String>,
    }
    let parsed = serde_json::from_slice::<SmsError>(&answer.body).ok();
    let code = parsed.as_ref().and_then(|error| error.code.clone()).filter(|code| {
        code.len() <= 64 && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
    });
    let names_recipient = parsed
        .as_ref()
        .and_then(|error| error.text.as_deref())
        .is_some_and(|text| text.contains("parameter 'to"));
    let class = match code.as_deref() {
        Some("syntax_invalid_parameter_format") if names_recipient => ErrorClass::InvalidNumber,
        Some(code) if code.starts_with("syntax_") => ErrorClass::AuthConfig,
        Some(
            "blocked_account"
            | "illegal_number_type"
            | "missing_callback_url"
            | "missing_group"
            | "unprovisioned_region"
            | "unauthorized"
            | "forbidden",
        ) => ErrorClass::AuthConfig,
        _ => crate::refusal::class_for_status(answer.status),
    };
    crate::refusal::refusal(KIND, answer, class, code, now)
}

/// Classifies the answer to `POST /calling/v1/callouts`.
pub(crate) fn classify_callout(
    answer: &RawAnswer,
    now: SystemTime,
) -> Result<Accepted, ProviderError> {
    #[derive(Deserialize)]
    struct Created {
        #[serde(rename = "callId", alias = "callid")]
        call_id: Option<String>,
    }
    if answer.is_success() {
        let id = serde_json::from_slice::<Created>(&answer.body)
            .ok()
            .and_then(|created| created.call_id);
        return accepted(answer, id, "call id");
    }
    #[derive(Deserialize)]
    struct VoiceError {
        #[serde(rename = "errorCode")]
        error_code: Option<serde_json::Value>,
    }
    let code = serde_json::from_slice::<VoiceError>(&answer.body)
        .ok()
        .and_then(|error| error.error_code)
        .and_then(|code| match code {
            serde_json::Value::String(text) => text.trim().parse::<u32>().ok(),
            serde_json::Value::Number(number) => {
                number.as_u64().and_then(|n| u32::try_from(n).ok())
            }
            _ => None,
        });
    let class = match (code, answer.status) {
        (Some(40200), _) => ErrorClass::Funds,
        // Invalid request or parameters: a request we built.
        (Some(40000..=40099), _) | (None, 400) => ErrorClass::AuthConfig,
        _ => crate::refusal::class_for_status(answer.status),
    };
    Err(crate::refusal::refusal(KIND, answer, class, code.map(|c| c.to_string()), now))
}

/// What a delivery report's `status` and `code` say about one recipient.
#[must_use]
// Per-provider table, alike in shape across adapters on purpose: the codes are this provider's.
pub(crate) fn report_state(status: &str, code: Option<u32>) -> DeliveryState {
    let class_by_code = code.and_then(class_for_report_code);
    match status {
        "Delivered" => DeliveryState::Delivered,
        "Rejected" | "Deleted" => {
            DeliveryState::Undelivered(class_by_code.unwrap_or(ErrorClass::Blocked))
        }
        "Aborted" | "Cancelled" | "Expired" | "Failed" => {
            DeliveryState::Undelivered(class_by_code.unwrap_or(ErrorClass::Transient))
        }
        // Queued, Dispatched, Unknown.
        _ => DeliveryState::Pending,
    }
}

/// Sinch's own delivery-report codes (research notes section 5.1); other codes are the
/// operators' SMPP codes and leave the status to decide.
// Per-provider table, alike in shape across adapters on purpose: the codes are this provider's.
fn class_for_report_code(code: u32) -> Option<ErrorClass> {
    let class = match code {
        402 => ErrorClass::InvalidNumber,
        403 | 404 | 406 | 407 | 408 => ErrorClass::Transient,
        405 | 410 | 411 | 412 => ErrorClass::AuthConfig,
        _ => return None,
    };
    Some(class)
}

/// What a DiCE `result` says about a call.
#[must_use]
// Per-provider table, alike in shape across adapters on purpose: the codes are this provider's.
pub(crate) fn dice_state(result: &str) -> DeliveryState {
    match result.to_ascii_uppercase().as_str() {
        "ANSWERED" => DeliveryState::Delivered,
        "BUSY" | "NOANSWER" | "FAILED" => DeliveryState::Undelivered(ErrorClass::Transient),
        _ => DeliveryState::Pending,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_core::Certainty;

    fn answer(status: u16, body: &str) -> RawAnswer {
        RawAnswer::new(status, body)
    }

    #[test]
    fn only_an_id_is_acceptance() {
        let created = r#"{"id":"01FC66621VHDBN119Z8PMV1QPQ","to":["+14155550100"],"from":"+15005550006","canceled":false,"body":"x","type":"mt_text"}"#;
        let batch =
            |status, body: &str| classify_batch(&answer(status, body), SystemTime::UNIX_EPOCH);
        assert_eq!(batch(201, created).unwrap().message_id, "01FC66621VHDBN119Z8PMV1QPQ");
        for body in ["", "{}", r#"{"id":""}"#, "<html/>"] {
            let error = batch(201, body).unwrap_err();
            assert_eq!(
                (error.class, error.certainty),
                (ErrorClass::Transient, Certainty::PossiblyAccepted)
            );
        }
        let callout =
            |status, body: &str| classify_callout(&answer(status, body), SystemTime::UNIX_EPOCH);
        assert_eq!(
            callout(200, r#"{"callId":"adf92089-df2a-4f14-a377-1e975f588fe4"}"#)
                .unwrap()
                .message_id
                .len(),
            36
        );
        assert!(callout(200, r#"{"callid":"adf92089-df2a-4f14-a377-1e975f588fe4"}"#).is_ok());
        assert_eq!(callout(200, "{}").unwrap_err().certainty, Certainty::PossiblyAccepted);
    }

    #[test]
    fn classifies_sms_errors() {
        use ErrorClass::*;
        let error = |code: &str, text: &str| format!(r#"{{"code":"{code}","text":"{text}"}}"#);
        for (status, body, class) in [
            (
                400,
                error(
                    "syntax_invalid_parameter_format",
                    "The format of parameter 'to[0]' is invalid; value '+1' is not a valid MSISDN",
                ),
                InvalidNumber,
            ),
            (
                400,
                error(
                    "syntax_invalid_parameter_format",
                    "The format of parameter 'expire_at' is invalid",
                ),
                AuthConfig,
            ),
            (400, error("syntax_invalid_json", "bad json"), AuthConfig),
            (400, error("syntax_constraint_violation", "body too long"), AuthConfig),
            (403, error("blocked_account", "blocked"), AuthConfig),
            (403, error("illegal_number_type", "x"), AuthConfig),
            (
                403,
                error(
                    "missing_callback_url",
                    "Requesting delivery report without any callback URL.",
                ),
                AuthConfig,
            ),
            (401, "".to_owned(), AuthConfig),
            (429, error("too_many_requests", "slow down"), RateLimited),
            (500, "<html/>".to_owned(), Transient),
            (400, error("brand_new_code", "?"), Transient),
        ] {
            let refused =
                classify_batch(&answer(status, &body), SystemTime::UNIX_EPOCH).unwrap_err();
            assert_eq!(
                (refused.class, refused.certainty),
                (class, Certainty::NotSent),
                "{status} {body}"
            );
            assert!(!refused.detail.contains("MSISDN") && !refused.detail.contains("+1"));
        }
        let gateway = classify_batch(&answer(504, ""), SystemTime::UNIX_EPOCH).unwrap_err();
        assert_eq!((gateway.class, gateway.certainty), (Timeout, Certainty::PossiblyAccepted));
    }

    #[test]
    fn classifies_voice_errors() {
        use ErrorClass::*;
        for (status, body, class) in [
            (
                400,
                r#"{"status":"400 Invalid Request","errorCode":"40003","message":"Invalid request"}"#,
                AuthConfig,
            ),
            (
                402,
                r#"{"status":"402 Payment Required","errorCode":"40200","message":"Payment required"}"#,
                Funds,
            ),
            (
                401,
                r#"{"status":"401 Unauthorized","errorCode":"40100","message":"Authorization required"}"#,
                AuthConfig,
            ),
            (500, r#"{"status":"500 Server Error","errorCode":"50000"}"#, Transient),
            (429, "", RateLimited),
            (400, "", AuthConfig),
        ] {
            let error =
                classify_callout(&answer(status, body), SystemTime::UNIX_EPOCH).unwrap_err();
            assert_eq!(
                (error.class, error.certainty),
                (class, Certainty::NotSent),
                "{status} {body}"
            );
        }
    }

    #[test]
    fn maps_reports_and_dice_to_states() {
        use DeliveryState::*;
        assert_eq!(report_state("Delivered", Some(0)), Delivered);
        assert_eq!(report_state("Dispatched", Some(401)), Pending);
        assert_eq!(report_state("Queued", Some(400)), Pending);
        assert_eq!(report_state("Failed", Some(402)), Undelivered(ErrorClass::InvalidNumber));
        assert_eq!(report_state("Failed", Some(404)), Undelivered(ErrorClass::Transient));
        assert_eq!(report_state("Rejected", Some(412)), Undelivered(ErrorClass::AuthConfig));
        assert_eq!(report_state("Deleted", None), Undelivered(ErrorClass::Blocked));
        assert_eq!(report_state("Expired", Some(1)), Undelivered(ErrorClass::Transient));
        assert_eq!(report_state("Unknown", None), Pending);
        assert_eq!(dice_state("ANSWERED"), Delivered);
        assert_eq!(dice_state("NOANSWER"), Undelivered(ErrorClass::Transient));
        assert_eq!(dice_state("NA"), Pending);
    }
}
