//! Turns Vonage's answers and receipts into acceptance, classified errors and delivery states.
//!
//! SMS API: the answer is HTTP 200 whatever happened, so the body decides. Each part of the
//! message has its own `status` (a string); `"0"` is acceptance. A 200 whose body we cannot read
//! is "possibly accepted": Vonage may have queued the message. Status codes follow the research
//! classification table (`sms.yml` `x-errors`): 1 and 10 throttled; 4, 8, 11, 14, 15, 29, 32
//! ours (credentials, account, sender, signature); 9 funds; 6 and 33 invalid number; 7 barred;
//! 5 transient. Codes the table leaves out (2 and 3 missing or invalid parameter, 12 too long,
//! 22 network code, 23 callback URL) describe a request we built, not the number: they are
//! auth_config, so another provider may still deliver. (The fault catalogue's F10 reads 3 as a
//! number-level verdict; the adapter has already validated the number, and a number verdict on
//! a generic code would end the user's sign-in on our own bug.) Unknown codes are transient.
//!
//! Voice API: 201 with a `uuid` is acceptance; errors are RFC 7807 bodies whose `type` ends in a
//! fragment we read (`#unauthorized`, `#low-balance`, `#throttled`), else the HTTP status decides.
//!
//! Bodies are parsed, never logged or copied: `error-text` can quote the number.

use std::time::SystemTime;

use serde::Deserialize;
use switchboard_core::{Certainty, ErrorClass};

use super::KIND;
use crate::http::RawAnswer;
use crate::{Accepted, DeliveryState, ProviderError};

/// The class of an SMS API `status` other than `"0"`.
#[must_use]
// Per-provider table, alike in shape across adapters on purpose: the codes are this provider's.
pub(crate) fn class_for_sms_status(status: u32) -> ErrorClass {
    match status {
        1 | 10 => ErrorClass::RateLimited,
        6 | 33 => ErrorClass::InvalidNumber,
        7 => ErrorClass::Blocked,
        9 => ErrorClass::Funds,
        2 | 3 | 4 | 8 | 11 | 12 | 14 | 15 | 22 | 23 | 29 | 32 => ErrorClass::AuthConfig,
        _ => ErrorClass::Transient,
    }
}

#[derive(Deserialize)]
struct SmsAnswer {
    messages: Vec<SmsPart>,
}

#[derive(Deserialize)]
struct SmsPart {
    status: Option<StringOrNumber>,
    #[serde(rename = "message-id")]
    message_id: Option<String>,
}

/// Vonage sends every value as a string; a number is tolerated.
#[derive(Deserialize)]
#[serde(untagged)]
enum StringOrNumber {
    Text(String),
    Number(u64),
}

impl StringOrNumber {
    fn code(&self) -> Option<u32> {
        match self {
            StringOrNumber::Text(text) => text.trim().parse().ok(),
            StringOrNumber::Number(number) => u32::try_from(*number).ok(),
        }
    }
}

/// Classifies the answer to `POST /sms/json`.
pub(crate) fn classify_sms(answer: &RawAnswer, now: SystemTime) -> Result<Accepted, ProviderError> {
    let parsed = serde_json::from_slice::<SmsAnswer>(&answer.body).ok();
    if !answer.is_success() {
        // Not the SMS API's own answer (a gateway's 429 or 5xx); a status it carries still names
        // the class, else the HTTP status does.
        let code = parsed
            .as_ref()
            .and_then(|parsed| parsed.messages.first())
            .and_then(|part| part.status.as_ref()?.code())
            .filter(|code| *code != 0);
        let class = match code {
            Some(code) if answer.status != 429 => class_for_sms_status(code),
            _ => crate::refusal::class_for_status(answer.status),
        };
        return Err(crate::refusal::refusal(KIND, answer, class, code.map(|c| c.to_string()), now));
    }
    let unreadable = || crate::refusal::without(KIND, answer, "readable message status");
    let Some(parsed) = parsed.filter(|parsed| !parsed.messages.is_empty()) else {
        return Err(unreadable());
    };
    let mut first_id = None;
    let mut n_accepted = 0;
    let mut refused = None;
    for part in &parsed.messages {
        match part.status.as_ref().and_then(StringOrNumber::code) {
            Some(0) => {
                n_accepted += 1;
                if first_id.is_none() {
                    first_id = part.message_id.clone().filter(|id| is_message_id(id));
                }
            }
            Some(code) => {
                refused.get_or_insert(code);
            }
            None => return Err(unreadable()),
        }
    }
    match (refused, first_id) {
        (None, Some(message_id)) => Ok(Accepted { message_id }),
        (None, None) => Err(unreadable()),
        (Some(code), _) => {
            let class = class_for_sms_status(code);
            let certainty =
                if n_accepted > 0 { Certainty::PossiblyAccepted } else { Certainty::NotSent };
            Err(ProviderError {
                provider_kind: KIND,
                class,
                certainty,
                retry_after: None,
                provider_code: Some(code.to_string()),
                detail: format!("http {}, status {code}", answer.status),
            })
        }
    }
}

/// Vonage message ids are 16 to 20 hex digits (`0A0000000123ABCD1`).
fn is_message_id(id: &str) -> bool {
    (8..=40).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Classifies the answer to `POST /v1/calls`.
pub(crate) fn classify_call(
    answer: &RawAnswer,
    now: SystemTime,
) -> Result<Accepted, ProviderError> {
    #[derive(Deserialize)]
    struct Created {
        uuid: Option<String>,
    }
    if answer.is_success() {
        let uuid = serde_json::from_slice::<Created>(&answer.body).ok().and_then(|c| c.uuid);
        return crate::refusal::accepted(
            KIND,
            answer,
            uuid.filter(|uuid| is_message_id(uuid)),
            "call uuid",
        );
    }
    Err(api_refusal(answer, now))
}

/// Classifies the answer to a probe (`GET /account/get-balance` or `GET /v1/calls`).
pub(crate) fn classify_probe(answer: &RawAnswer, now: SystemTime) -> Result<(), ProviderError> {
    if answer.is_success() { Ok(()) } else { Err(api_refusal(answer, now)) }
}

/// A non-2xx answer from an API that speaks RFC 7807.
fn api_refusal(answer: &RawAnswer, now: SystemTime) -> ProviderError {
    #[derive(Deserialize)]
    struct Problem {
        #[serde(rename = "type")]
        kind: Option<String>,
    }
    let fragment = serde_json::from_slice::<Problem>(&answer.body)
        .ok()
        .and_then(|problem| problem.kind)
        .and_then(|kind| kind.rsplit(['#', '/']).next().map(str::to_owned))
        .filter(|fragment| {
            fragment.len() <= 40 && fragment.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    let class = match fragment.as_deref() {
        Some("unauthorized" | "forbidden" | "invalid-credentials") => ErrorClass::AuthConfig,
        Some("low-balance" | "insufficient-funds") => ErrorClass::Funds,
        Some("throttled" | "rate-limit") => ErrorClass::RateLimited,
        _ => crate::refusal::class_for_status(answer.status),
    };
    crate::refusal::refusal(KIND, answer, class, fragment, now)
}

/// What an SMS delivery receipt's `status` and `err-code` say.
#[must_use]
// Per-provider table, alike in shape across adapters on purpose: the codes are this provider's.
pub(crate) fn sms_receipt_state(status: &str, err_code: Option<&str>) -> DeliveryState {
    match status {
        "delivered" => DeliveryState::Delivered,
        "expired" | "failed" | "rejected" => {
            let code = err_code.and_then(|code| code.trim().parse::<u32>().ok());
            DeliveryState::Undelivered(code.map_or(ErrorClass::Transient, class_for_receipt_code))
        }
        // accepted, buffered, unknown: nothing final yet.
        _ => DeliveryState::Pending,
    }
}

/// The class of a receipt `err-code` (research table, Vonage DLR column).
// Per-provider table, alike in shape across adapters on purpose: the codes are this provider's.
fn class_for_receipt_code(code: u32) -> ErrorClass {
    match code {
        3 | 12 => ErrorClass::InvalidNumber,
        4 | 6 | 9 | 13 | 14 => ErrorClass::Blocked,
        // Illegal message, unroutable: our content or route, another provider may deliver.
        10 | 11 => ErrorClass::AuthConfig,
        // 1 unknown, 2 absent subscriber, 5 portability, 7 busy, 8 network, 15 prepaid, 99.
        _ => ErrorClass::Transient,
    }
}

/// What a Voice event's `status` says about the call.
#[must_use]
// Per-provider table, alike in shape across adapters on purpose: the codes are this provider's.
pub(crate) fn call_event_state(status: &str) -> DeliveryState {
    match status {
        "answered" => DeliveryState::Delivered,
        "busy" | "cancelled" | "failed" | "rejected" | "timeout" | "unanswered" => {
            DeliveryState::Undelivered(ErrorClass::Transient)
        }
        // started, ringing, machine, completed (the verdict came with answered or a failure).
        _ => DeliveryState::Pending,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str) -> RawAnswer {
        RawAnswer::new(status, body)
    }

    fn sms(status: u16, body: &str) -> Result<Accepted, ProviderError> {
        classify_sms(&answer(status, body), SystemTime::UNIX_EPOCH)
    }

    fn refused(code: &str) -> String {
        format!(
            r#"{{"message-count":"1","messages":[{{"status":"{code}","error-text":"Bad number 14155550100"}}]}}"#
        )
    }

    #[test]
    fn a_zero_status_with_an_id_is_acceptance() {
        let body = r#"{"message-count":"1","messages":[{"to":"447700900000","message-id":"0A0000000123ABCD1","status":"0","remaining-balance":"3.14","message-price":"0.03","network":"12345"}]}"#;
        assert_eq!(sms(200, body), Ok(Accepted { message_id: "0A0000000123ABCD1".into() }));
        for body in [
            "",
            "{}",
            r#"{"messages":[]}"#,
            r#"{"messages":[{"status":"0"}]}"#,
            "<html/>",
            r#"{"messages":[{"status":"x"}]}"#,
        ] {
            crate::testing::assert_possibly_accepted(sms(200, body), body);
        }
    }

    #[test]
    fn classifies_every_documented_status_inside_http_200() {
        use ErrorClass::*;
        for (code, class) in [
            ("1", RateLimited),
            ("2", AuthConfig),
            ("3", AuthConfig),
            ("4", AuthConfig),
            ("5", Transient),
            ("6", InvalidNumber),
            ("7", Blocked),
            ("8", AuthConfig),
            ("9", Funds),
            ("10", RateLimited),
            ("11", AuthConfig),
            ("12", AuthConfig),
            ("14", AuthConfig),
            ("15", AuthConfig),
            ("22", AuthConfig),
            ("23", AuthConfig),
            ("29", AuthConfig),
            ("32", AuthConfig),
            ("33", InvalidNumber),
            ("99", Transient),
        ] {
            let error = sms(200, &refused(code)).unwrap_err();
            assert_eq!(
                (error.class, error.certainty),
                (class, Certainty::NotSent),
                "status {code}"
            );
            assert_eq!(error.provider_code.as_deref(), Some(code));
            assert!(!error.to_string().contains("4155550100") && !error.detail.contains("Bad"));
        }
    }

    #[test]
    fn a_part_refused_after_another_was_accepted_is_possibly_accepted() {
        let body = r#"{"message-count":"2","messages":[{"status":"0","message-id":"0A0000000123ABCD1"},{"status":"5"}]}"#;
        let error = sms(200, body).unwrap_err();
        assert_eq!(
            (error.class, error.certainty),
            (ErrorClass::Transient, Certainty::PossiblyAccepted)
        );
    }

    #[test]
    fn non_200_answers_fall_back_to_the_status() {
        let limited = RawAnswer {
            status: 429,
            retry_after: Some("4".into()),
            amzn_error_type: None,
            body: refused("1").into_bytes(),
        };
        let error = classify_sms(&limited, SystemTime::UNIX_EPOCH).unwrap_err();
        assert_eq!((error.class, error.certainty), (ErrorClass::RateLimited, Certainty::NotSent));
        assert_eq!(error.retry_after, Some(std::time::Duration::from_secs(4)));
        assert_eq!(error.provider_code.as_deref(), Some("1"));
        let error = sms(503, "<html>down</html>").unwrap_err();
        assert_eq!((error.class, error.certainty), (ErrorClass::Transient, Certainty::NotSent));
        let error = sms(504, "").unwrap_err();
        assert_eq!(
            (error.class, error.certainty),
            (ErrorClass::Timeout, Certainty::PossiblyAccepted)
        );
    }

    #[test]
    fn classifies_voice_answers() {
        let created = r#"{"uuid":"63f61863-4a51-4f6b-86e1-46edebcf9356","status":"started","direction":"outbound","conversation_uuid":"CON-f972836a-550f-45fa-956c-12a2ab5b7d22"}"#;
        let call =
            |status, body: &str| classify_call(&answer(status, body), SystemTime::UNIX_EPOCH);
        assert_eq!(call(201, created).unwrap().message_id, "63f61863-4a51-4f6b-86e1-46edebcf9356");
        let error = call(201, "{}").unwrap_err();
        assert_eq!(error.certainty, Certainty::PossiblyAccepted);
        for (status, body, class) in [
            (
                401,
                r#"{"type":"https://developer.nexmo.com/api-errors#unauthorized","title":"Unauthorized"}"#,
                ErrorClass::AuthConfig,
            ),
            (
                402,
                r#"{"type":"https://developer.nexmo.com/api-errors/#low-balance","title":"Low balance"}"#,
                ErrorClass::Funds,
            ),
            (
                429,
                r#"{"type":"https://developer.nexmo.com/api-errors#throttled"}"#,
                ErrorClass::RateLimited,
            ),
            (
                400,
                r#"{"type":"https://developer.nexmo.com/api-errors#bad-request","invalid_parameters":[]}"#,
                ErrorClass::Transient,
            ),
            (403, "", ErrorClass::AuthConfig),
            (500, "<html/>", ErrorClass::Transient),
        ] {
            let error = call(status, body).unwrap_err();
            assert_eq!(
                (error.class, error.certainty),
                (class, Certainty::NotSent),
                "{status} {body}"
            );
        }
    }

    #[test]
    fn maps_receipts_to_delivery_states() {
        use DeliveryState::*;
        assert_eq!(sms_receipt_state("delivered", Some("0")), Delivered);
        assert_eq!(sms_receipt_state("accepted", None), Pending);
        assert_eq!(sms_receipt_state("buffered", Some("0")), Pending);
        assert_eq!(sms_receipt_state("unknown", Some("1")), Pending);
        assert_eq!(sms_receipt_state("failed", Some("3")), Undelivered(ErrorClass::InvalidNumber));
        assert_eq!(sms_receipt_state("rejected", Some("6")), Undelivered(ErrorClass::Blocked));
        assert_eq!(sms_receipt_state("failed", Some("9")), Undelivered(ErrorClass::Blocked));
        assert_eq!(sms_receipt_state("expired", Some("2")), Undelivered(ErrorClass::Transient));
        assert_eq!(sms_receipt_state("failed", Some("11")), Undelivered(ErrorClass::AuthConfig));
        assert_eq!(sms_receipt_state("failed", None), Undelivered(ErrorClass::Transient));
        assert_eq!(call_event_state("answered"), Delivered);
        assert_eq!(call_event_state("ringing"), Pending);
        assert_eq!(call_event_state("completed"), Pending);
        assert_eq!(call_event_state("busy"), Undelivered(ErrorClass::Transient));
        assert_eq!(call_event_state("unanswered"), Undelivered(ErrorClass::Transient));
    }
}
