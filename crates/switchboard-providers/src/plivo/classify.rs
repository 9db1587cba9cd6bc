//! Turns Plivo's answers and callbacks into acceptance, a classified [`ProviderError`] or a
//! [`DeliveryState`].
//!
//! Plivo's error bodies are `{"api_id","error":"<free text>"}`: the text is neither stable nor
//! safe to log (it can quote the number), so the class comes from the HTTP status, as the SDK's
//! own exception mapping does (400 validation, 401 authentication, 403 forbidden such as a geo
//! permission, 404, 405, 409, 422 invalid request, 500 server). Number-level verdicts arrive
//! later in the message status callback's `ErrorCode`.

use std::time::SystemTime;

use serde::Deserialize;
use switchboard_core::{Certainty, ErrorClass};

use super::KIND;
use crate::http::RawAnswer;
use crate::refusal::parse_retry_after;
use crate::{Accepted, DeliveryState, ProviderError};

/// Which create call an answer is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Created {
    /// `Message/`: `{"message_uuid":["..."]}`.
    Message,
    /// `Call/`: `{"request_uuid":"..."}`.
    Call,
}

#[derive(Deserialize)]
struct CreatedBody {
    #[serde(default)]
    message_uuid: Vec<String>,
    request_uuid: Option<String>,
}

pub(crate) fn classify_send(
    answer: &RawAnswer,
    created: Created,
    now: SystemTime,
) -> Result<Accepted, ProviderError> {
    if !(200..300).contains(&answer.status) {
        return Err(refusal(answer, now));
    }
    let body = serde_json::from_slice::<CreatedBody>(&answer.body).ok();
    let id = body.and_then(|body| match created {
        Created::Message => body.message_uuid.into_iter().next(),
        Created::Call => body.request_uuid,
    });
    crate::refusal::accepted(KIND, answer, id.filter(|id| is_uuid_like(id)), "uuid")
}

pub(crate) fn classify_probe(answer: &RawAnswer, now: SystemTime) -> Result<(), ProviderError> {
    if (200..300).contains(&answer.status) { Ok(()) } else { Err(refusal(answer, now)) }
}

fn is_uuid_like(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

fn refusal(answer: &RawAnswer, now: SystemTime) -> ProviderError {
    let class = match answer.status {
        // Validation errors are about the request we built or our sender; forbidden is a geo
        // permission or a disabled feature: another provider may deliver.
        400 | 401 | 403 | 404 | 405 | 409 | 422 | 300..=399 => ErrorClass::AuthConfig,
        402 => ErrorClass::Funds,
        429 => ErrorClass::RateLimited,
        504 => ErrorClass::Timeout,
        _ => ErrorClass::Transient,
    };
    let certainty =
        if answer.status == 504 { Certainty::PossiblyAccepted } else { Certainty::NotSent };
    let retry_after = if class == ErrorClass::RateLimited {
        answer.retry_after.as_deref().and_then(|value| parse_retry_after(value, now))
    } else {
        None
    };
    ProviderError {
        provider_kind: KIND,
        class,
        certainty,
        retry_after,
        provider_code: None,
        detail: format!("http {}", answer.status),
    }
}

/// A message status callback's `Status` and `ErrorCode`.
// Per-provider table, alike in shape across adapters on purpose: the codes are this provider's.
pub(crate) fn message_state(status: &str, error_code: Option<&str>) -> DeliveryState {
    match status {
        "delivered" => DeliveryState::Delivered,
        "queued" | "sent" | "received" => DeliveryState::Pending,
        "failed" | "undelivered" | "rejected" => DeliveryState::Undelivered(
            error_code
                .and_then(|code| code.trim().parse::<u32>().ok())
                .map_or(ErrorClass::Transient, class_for_error_code),
        ),
        _ => DeliveryState::Pending,
    }
}

/// Plivo messaging error codes (research section 6; codes from 60 on are unverified).
// Per-provider table, alike in shape across adapters on purpose: the codes are this provider's.
fn class_for_error_code(code: u32) -> ErrorClass {
    match code {
        // Invalid destination, destination permanently unavailable.
        50 | 70 => ErrorClass::InvalidNumber,
        // Prohibited by carrier, STOP opt-out.
        100 | 200 => ErrorClass::Blocked,
        // Spam detected: the carrier's filter, not the number.
        30 => ErrorClass::Blocked,
        // Invalid source number, account disabled.
        40 | 910 => ErrorClass::AuthConfig,
        900 => ErrorClass::Funds,
        950 => ErrorClass::RateLimited,
        // Network error, temporarily unavailable, expired, unknown...
        _ => ErrorClass::Transient,
    }
}

/// A hangup callback's `CallStatus`: a completed call was answered.
// Per-provider table, alike in shape across adapters on purpose: the codes are this provider's.
pub(crate) fn call_state(call_status: &str) -> DeliveryState {
    match call_status {
        "completed" => DeliveryState::Delivered,
        "busy" | "no-answer" | "timeout" | "failed" | "cancel" | "canceled" => {
            DeliveryState::Undelivered(ErrorClass::Transient)
        }
        _ => DeliveryState::Pending,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str) -> RawAnswer {
        RawAnswer::new(status, body)
    }

    fn send(status: u16, body: &str, created: Created) -> Result<Accepted, ProviderError> {
        classify_send(&answer(status, body), created, SystemTime::UNIX_EPOCH)
    }

    #[test]
    fn a_uuid_is_acceptance() {
        let queued = r#"{"api_id":"948b53a2-0000","message":"message(s) queued","message_uuid":["5b40a428-bfc7-4daf-9d06-726c558bf3b8"]}"#;
        assert_eq!(
            send(202, queued, Created::Message).unwrap().message_id,
            "5b40a428-bfc7-4daf-9d06-726c558bf3b8"
        );
        let fired = r#"{"message":"call fired","request_uuid":"9834029e-58b6-11e1-b8b7-a5bd0e4e126f","api_id":"x"}"#;
        assert_eq!(send(201, fired, Created::Call).unwrap().message_id.len(), 36);
        for (body, created) in [
            ("", Created::Message),
            (fired, Created::Message),
            (queued, Created::Call),
            (r#"{"message_uuid":["<x>"]}"#, Created::Message),
        ] {
            crate::testing::assert_possibly_accepted(send(202, body, created), body);
        }
    }

    #[test]
    fn classifies_by_status_and_never_copies_the_text() {
        use ErrorClass::*;
        for (status, class, certainty) in [
            (400, AuthConfig, Certainty::NotSent),
            (401, AuthConfig, Certainty::NotSent),
            (402, Funds, Certainty::NotSent),
            (403, AuthConfig, Certainty::NotSent),
            (404, AuthConfig, Certainty::NotSent),
            (422, AuthConfig, Certainty::NotSent),
            (429, RateLimited, Certainty::NotSent),
            (500, Transient, Certainty::NotSent),
            (503, Transient, Certainty::NotSent),
            (504, Timeout, Certainty::PossiblyAccepted),
        ] {
            let error = send(
                status,
                r#"{"api_id":"x","error":"dst +14155550100 is invalid"}"#,
                Created::Message,
            )
            .unwrap_err();
            assert_eq!((error.class, error.certainty), (class, certainty), "{status}");
            assert_eq!(error.to_string(), format!("plivo {class}: http {status}"));
        }
    }

    #[test]
    fn maps_callbacks_to_delivery_states() {
        use DeliveryState::*;
        assert_eq!(message_state("delivered", None), Delivered);
        assert_eq!(message_state("sent", None), Pending);
        assert_eq!(
            message_state("undelivered", Some("50")),
            Undelivered(ErrorClass::InvalidNumber)
        );
        assert_eq!(message_state("failed", Some("200")), Undelivered(ErrorClass::Blocked));
        assert_eq!(message_state("failed", Some("900")), Undelivered(ErrorClass::Funds));
        assert_eq!(message_state("failed", Some("20")), Undelivered(ErrorClass::Transient));
        assert_eq!(message_state("failed", Some("x")), Undelivered(ErrorClass::Transient));
        assert_eq!(call_state("completed"), Delivered);
        assert_eq!(call_state("no-answer"), Undelivered(ErrorClass::Transient));
        assert_eq!(call_state("ringing"), Pending);
    }
}
