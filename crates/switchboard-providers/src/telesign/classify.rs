//! Turns Telesign's answer into acceptance or a classified [`ProviderError`] (callbacks are
//! `receipt.rs`).
//!
//! Telesign asks clients to branch on `status.code` and `errors[].code`, not on the HTTP status
//! (its "all status and error codes" page), and an HTTP 200 can carry a final failure status.
//! So, in order: a known `errors[].code` decides, then a known `status.code`, then the HTTP
//! status. An unknown code never becomes a number-level verdict: that would end the user's
//! sign-in on a code we do not understand.
//!
//! Acceptance is a 2xx with a `reference_id` whose status is not a known failure. A 2xx without
//! one is "possibly accepted" (sending again could text the user twice).
//!
//! Bodies are parsed, never logged or copied: descriptions can quote the phone number.

use std::time::SystemTime;

use serde::Deserialize;
use switchboard_core::{Certainty, ErrorClass};

use super::KIND;
use crate::http::RawAnswer;
use crate::refusal::parse_retry_after;
use crate::{Accepted, ProviderError};

/// The parts of Telesign's JSON the classifier reads.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct TelesignBody {
    pub(crate) reference_id: Option<String>,
    pub(crate) status: Option<Status>,
    #[serde(default)]
    pub(crate) errors: Vec<Code>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Status {
    pub(crate) code: Option<i64>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Code {
    pub(crate) code: Option<i64>,
}

impl TelesignBody {
    pub(crate) fn parse(body: &[u8]) -> TelesignBody {
        serde_json::from_slice(body).unwrap_or_default()
    }

    fn status_code(&self) -> Option<i64> {
        self.status.as_ref().and_then(|status| status.code)
    }
}

/// Classifies the answer to a `/v1/messaging` or `/v1/voice` POST.
pub(crate) fn classify_send(
    answer: &RawAnswer,
    now: SystemTime,
) -> Result<Accepted, ProviderError> {
    let body = TelesignBody::parse(&answer.body);
    if !(200..300).contains(&answer.status) {
        return Err(refusal(answer, &body, now));
    }
    if let Some(class) = body.status_code().and_then(class_for_status_code) {
        // F15: an HTTP 200 carrying a final failure. Telesign did not send it.
        return Err(error(answer, &body, class, Certainty::NotSent));
    }
    crate::refusal::accepted(
        KIND,
        answer,
        body.reference_id.filter(|id| is_reference_id(id)),
        "reference_id",
    )
}

/// Classifies the answer to the probe's status GET: any answer that got past authentication
/// (2xx, or 404 for the made-up reference id) means the API is up and the credentials work.
pub(crate) fn classify_probe(answer: &RawAnswer, now: SystemTime) -> Result<(), ProviderError> {
    if (200..300).contains(&answer.status) || answer.status == 404 {
        return Ok(());
    }
    let body = TelesignBody::parse(&answer.body);
    let error = refusal(answer, &body, now);
    // A 400 about the made-up reference id is still an authenticated answer.
    if answer.status == 400 && error.class != ErrorClass::AuthConfig {
        return Ok(());
    }
    Err(error)
}

/// Telesign's reference ids are 32 hex digits; accept any short token of letters and digits.
fn is_reference_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn refusal(answer: &RawAnswer, body: &TelesignBody, now: SystemTime) -> ProviderError {
    let class = body
        .errors
        .iter()
        .filter_map(|error| error.code)
        .find_map(class_for_error_code)
        .or_else(|| body.status_code().and_then(class_for_status_code))
        .unwrap_or_else(|| crate::refusal::class_for_status(answer.status));
    let certainty =
        if answer.status == 504 { Certainty::PossiblyAccepted } else { Certainty::NotSent };
    let mut error = error(answer, body, class, certainty);
    if class == ErrorClass::RateLimited {
        error.retry_after =
            answer.retry_after.as_deref().and_then(|value| parse_retry_after(value, now));
    }
    error
}

fn error(
    answer: &RawAnswer,
    body: &TelesignBody,
    class: ErrorClass,
    certainty: Certainty,
) -> ProviderError {
    let error_code = body.errors.iter().find_map(|error| error.code);
    let status_code = body.status_code();
    let provider_code = error_code.or(status_code).map(|code| code.to_string());
    let detail = match (status_code, error_code) {
        (Some(status), Some(code)) => {
            format!("http {}, status {status}, error {code}", answer.status)
        }
        (Some(status), None) => format!("http {}, status {status}", answer.status),
        (None, Some(code)) => format!("http {}, error {code}", answer.status),
        (None, None) => format!("http {}", answer.status),
    };
    ProviderError {
        provider_kind: KIND,
        class,
        certainty,
        retry_after: None,
        provider_code,
        detail,
    }
}

/// `errors[].code` (five digits, negative for authentication), research section 3.
// Per-provider table, alike in shape across adapters on purpose: the codes are this provider's.
fn class_for_error_code(code: i64) -> Option<ErrorClass> {
    let class = match code {
        // Customer ID account suspended.
        -30001 => ErrorClass::Funds,
        // Authentication: customer id, Authorization, Date, nonce, signature, API key.
        -30015..=-30000 => ErrorClass::AuthConfig,
        // Product not enabled, source IP not allowed, trial number not verified, bad request.
        -20002 | -10009 | -10033 | -40006 => ErrorClass::AuthConfig,
        _ => return None,
    };
    Some(class)
}

/// `status.code` of a send's answer (and of callbacks' final failures).
// Per-provider table, alike in shape across adapters on purpose: the codes are this provider's.
pub(super) fn class_for_status_code(code: i64) -> Option<ErrorClass> {
    let class = match code {
        // Invalid phone_number or its country code (400); wrong/invalid phone (voice); permanent
        // phone error, cannot route, SMS not supported (final DLR states).
        11000 | 11001 | 104 | 211 | 220 | 222 => ErrorClass::InvalidNumber,
        // Blocked by our own request, by Telesign's global blocklist, country or prefix.
        129 | 130 | 229 | 230 | 237 | 238 => ErrorClass::Blocked,
        // Blocked for a high risk score: Telesign's fraud protection.
        233 => ErrorClass::FraudBlock,
        // Invalid content (231); invalid or missing parameters we built (sender_id, message,
        // message_type, callback_url, ...): our configuration or our bug.
        231 | 11003 | 11004 | 11009 | 11013 | 11017 | 12000 | 12009 | 12017 => {
            ErrorClass::AuthConfig
        }
        // Rate limit exceeded (messaging's 3204).
        3204 => ErrorClass::RateLimited,
        // Transaction not attempted (500) and not authorized (501) say nothing more by
        // themselves: the `errors[]` codes do.
        _ => return None,
    };
    Some(class)
}

#[cfg(test)]
mod tests {
    use super::*;

    const REF: &str = "0123456789ABCDEF0123456789ABCDEF";

    fn answer(status: u16, body: &str) -> RawAnswer {
        RawAnswer::new(status, body)
    }

    fn send(status: u16, body: &str) -> Result<Accepted, ProviderError> {
        classify_send(&answer(status, body), SystemTime::UNIX_EPOCH)
    }

    fn telesign(status_code: i64, errors: &[i64]) -> String {
        let errors: Vec<String> = errors
            .iter()
            .map(|code| format!(r#"{{"code":{code},"description":"phone +447700900123"}}"#))
            .collect();
        format!(
            r#"{{"reference_id":"{REF}","status":{{"code":{status_code},"description":"x","updated_on":"2026-05-03T12:00:00Z"}},"errors":[{}]}}"#,
            errors.join(",")
        )
    }

    #[test]
    fn in_progress_with_a_reference_is_acceptance() {
        for code in [290, 103, 203] {
            assert_eq!(send(200, &telesign(code, &[])).unwrap().message_id, REF);
        }
        for body in ["", "{}", r#"{"status":{"code":290}}"#, "<html/>", r#"{"reference_id":"a b"}"#]
        {
            crate::testing::assert_possibly_accepted(send(200, body), body);
        }
    }

    #[test]
    fn classifies_telesign_answers() {
        use ErrorClass::*;
        let cases: &[(u16, String, ErrorClass, Certainty)] = &[
            (400, telesign(11000, &[]), InvalidNumber, Certainty::NotSent),
            (400, telesign(11001, &[]), InvalidNumber, Certainty::NotSent),
            (400, telesign(11013, &[]), AuthConfig, Certainty::NotSent),
            (400, telesign(500, &[-40006]), AuthConfig, Certainty::NotSent),
            (401, telesign(501, &[-30006]), AuthConfig, Certainty::NotSent),
            (401, telesign(501, &[-30000]), AuthConfig, Certainty::NotSent),
            (401, telesign(501, &[-30015]), AuthConfig, Certainty::NotSent),
            (401, telesign(501, &[-30001]), Funds, Certainty::NotSent),
            (401, telesign(501, &[-20002]), AuthConfig, Certainty::NotSent),
            (400, telesign(500, &[-10033]), AuthConfig, Certainty::NotSent),
            (429, telesign(3204, &[]), RateLimited, Certainty::NotSent),
            (429, String::new(), RateLimited, Certainty::NotSent),
            // HTTP 200 carrying a final failure (research F15).
            (200, telesign(229, &[]), Blocked, Certainty::NotSent),
            (200, telesign(230, &[]), Blocked, Certainty::NotSent),
            (200, telesign(233, &[]), FraudBlock, Certainty::NotSent),
            (200, telesign(211, &[]), InvalidNumber, Certainty::NotSent),
            (200, telesign(104, &[]), InvalidNumber, Certainty::NotSent),
            (500, telesign(500, &[]), Transient, Certainty::NotSent),
            (503, "<html>503</html>".into(), Transient, Certainty::NotSent),
            (504, String::new(), Timeout, Certainty::PossiblyAccepted),
            // Unknown codes fall back to the HTTP status.
            (400, telesign(99999, &[-99999]), Transient, Certainty::NotSent),
            (401, telesign(501, &[-12345]), AuthConfig, Certainty::NotSent),
            (400, "\u{0}garbage".into(), Transient, Certainty::NotSent),
            (302, String::new(), AuthConfig, Certainty::NotSent),
        ];
        for (status, body, class, certainty) in cases {
            let error = send(*status, body).unwrap_err();
            assert_eq!((error.class, error.certainty), (*class, *certainty), "{status} {body}");
            assert!(!error.to_string().contains("447700900123"), "{error}");
        }
    }

    #[test]
    fn error_carries_codes_not_descriptions() {
        let error = send(401, &telesign(501, &[-30006])).unwrap_err();
        assert_eq!(error.provider_code.as_deref(), Some("-30006"));
        assert_eq!(error.to_string(), "telesign auth_config: http 401, status 501, error -30006");
    }

    #[test]
    fn rate_limits_carry_retry_after() {
        let answer = RawAnswer {
            status: 429,
            retry_after: Some("4".into()),
            amzn_error_type: None,
            body: Vec::new(),
        };
        let error = classify_send(&answer, SystemTime::UNIX_EPOCH).unwrap_err();
        assert_eq!(error.retry_after, Some(std::time::Duration::from_secs(4)));
    }

    #[test]
    fn probe_accepts_authenticated_answers() {
        let now = SystemTime::UNIX_EPOCH;
        assert!(classify_probe(&answer(200, "{}"), now).is_ok());
        assert!(classify_probe(&answer(404, "{}"), now).is_ok());
        assert!(classify_probe(&answer(400, &telesign(11000, &[])), now).is_ok());
        let error = classify_probe(&answer(401, &telesign(501, &[-30006])), now).unwrap_err();
        assert_eq!(error.class, ErrorClass::AuthConfig);
        assert_eq!(classify_probe(&answer(503, ""), now).unwrap_err().class, ErrorClass::Transient);
    }
}
