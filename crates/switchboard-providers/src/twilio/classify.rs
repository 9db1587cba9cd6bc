//! Turns Twilio's answer into acceptance or a classified [`ProviderError`].
//!
//! Certainty first: a 2xx with a parseable `sid` is the only acceptance. A 2xx without one is
//! "possibly accepted" (Twilio may have queued the message; sending again could text the user
//! twice). Any other answer from Twilio is a refusal, so nothing was sent, with one exception:
//! 504 (a gateway gave up waiting for Twilio, which may still have taken the message).
//!
//! Then the class, from Twilio's `code` when it is one we know (research notes section 1.1),
//! else from the HTTP status. Twilio's error dictionary keeps growing (its 2024 changelog split
//! new codes off 21211, 21212, 21606 and 21614), so an unknown code must not be read as a
//! number-level verdict: that would end the user's sign-in on a code we do not understand.
//!
//! Bodies are parsed, never logged or copied: Twilio's `message` often quotes the phone number.

use std::time::SystemTime;

use serde::Deserialize;
use switchboard_core::ErrorClass;

use super::KIND;
use crate::http::RawAnswer;
use crate::refusal::class_for_status;
use crate::{Accepted, ProviderError};

/// Classifies the answer to a `Messages.json` or `Calls.json` POST.
pub(crate) fn classify_send(
    answer: &RawAnswer,
    now: SystemTime,
) -> Result<Accepted, ProviderError> {
    if !answer.is_success() {
        return Err(refusal(answer, now));
    }
    #[derive(Deserialize)]
    struct Created {
        sid: Option<String>,
    }
    let sid = serde_json::from_slice::<Created>(&answer.body).ok().and_then(|created| created.sid);
    crate::refusal::accepted(KIND, answer, sid.filter(|sid| is_resource_sid(sid)), "message sid")
}

/// Classifies the answer to the account-resource GET of a probe.
pub(crate) fn classify_probe(answer: &RawAnswer, now: SystemTime) -> Result<(), ProviderError> {
    if answer.is_success() { Ok(()) } else { Err(refusal(answer, now)) }
}

/// Two upper-case letters and 32 hex digits (`SM…`, `MM…`, `CA…`).
fn is_resource_sid(sid: &str) -> bool {
    sid.len() == 34
        && sid.as_bytes()[..2].iter().all(u8::is_ascii_uppercase)
        && sid.as_bytes()[2..].iter().all(u8::is_ascii_hexdigit)
}

/// A non-2xx answer: the class from Twilio's code when we know it, else from the status.
fn refusal(answer: &RawAnswer, now: SystemTime) -> ProviderError {
    let code = error_code(&answer.body);
    let class = code.and_then(class_for_code).unwrap_or_else(|| class_for_status(answer.status));
    crate::refusal::refusal(KIND, answer, class, code.map(|code| code.to_string()), now)
}

/// `code` from Twilio's error body (a number; tolerated as a numeric string). `None` for HTML
/// pages from a proxy, empty bodies and anything else that is not Twilio's JSON.
fn error_code(body: &[u8]) -> Option<u64> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let code = value.get("code")?;
    code.as_u64().or_else(|| code.as_str()?.trim().parse().ok())
}

// Per-provider table, alike in shape across adapters on purpose: the codes are this provider's.
pub(crate) fn class_for_code(code: u64) -> Option<ErrorClass> {
    let class = match code {
        // Invalid To (21211 SMS, 21217 calls), invalid number (21401), not a mobile (21614).
        21211 | 21217 | 21401 | 21614 => ErrorClass::InvalidNumber,
        // Recipient opted out (21610); destination blocked for the account (21216, calls).
        21610 | 21216 => ErrorClass::Blocked,
        // Twilio's fraud guard refused the destination (SMS pumping protection).
        60410 | 60605 => ErrorClass::FraudBlock,
        // Too many requests (20429); the sender's queue is full (21611).
        20429 | 21611 => ErrorClass::RateLimited,
        // Our side: authentication (20003), wrong account (20404), sender invalid, unverified or
        // not allowed for this destination (21212, 21210, 21606), region or geo permission off
        // (21408, 21215), trial-account restriction (21608), no route between sender and
        // destination (21612 SMS, 21214 calls). Another provider may well deliver.
        20003 | 20404 | 21210 | 21212 | 21606 | 21408 | 21215 | 21608 | 21612 | 21214 => {
            ErrorClass::AuthConfig
        }
        // A request we built without a required parameter: our bug, not the number's.
        21201 | 21205 | 21213 | 21602 | 21603 | 21604 => ErrorClass::AuthConfig,
        // Account suspended (30002) or not active (20005).
        30002 | 20005 => ErrorClass::Funds,
        _ => return None,
    };
    Some(class)
}

#[cfg(test)]
mod tests {
    use switchboard_core::Certainty;

    use std::time::Duration;

    use super::*;

    const SID: &str = "SM0123456789abcdef0123456789abcdef";

    fn send(status: u16, body: &str) -> Result<Accepted, ProviderError> {
        classify_send(&RawAnswer::new(status, body), SystemTime::UNIX_EPOCH)
    }

    fn twilio_error(status: u16, code: u64) -> String {
        format!(
            r#"{{"code":{code},"message":"The 'To' number +14155550100 is not valid","more_info":"https://www.twilio.com/docs/errors/{code}","status":{status}}}"#
        )
    }

    #[test]
    fn only_a_sid_is_acceptance() {
        let created = format!(r#"{{"sid":"{SID}","status":"queued"}}"#);
        assert_eq!(send(201, &created), Ok(Accepted { message_id: SID.into() }));
        assert_eq!(
            send(200, r#"{"sid":"CA0123456789abcdef0123456789abcdef"}"#).unwrap().message_id.len(),
            34
        );
        for body in
            ["", "{}", r#"{"sid":null}"#, r#"{"sid":"SM123"}"#, "<html>ok</html>", r#"{"sid":42}"#]
        {
            crate::testing::assert_possibly_accepted(send(201, body), body);
        }
    }

    #[test]
    fn classifies_twilio_errors() {
        use ErrorClass::*;
        let cases: &[(u16, &str, ErrorClass, Certainty)] = &[
            (400, &twilio_error(400, 21211), InvalidNumber, Certainty::NotSent),
            (400, &twilio_error(400, 21614), InvalidNumber, Certainty::NotSent),
            (400, &twilio_error(400, 21217), InvalidNumber, Certainty::NotSent),
            (400, &twilio_error(400, 21401), InvalidNumber, Certainty::NotSent),
            (400, &twilio_error(400, 21610), Blocked, Certainty::NotSent),
            (400, &twilio_error(400, 21216), Blocked, Certainty::NotSent),
            (400, &twilio_error(400, 60410), FraudBlock, Certainty::NotSent),
            (403, &twilio_error(403, 60605), FraudBlock, Certainty::NotSent),
            (429, &twilio_error(429, 20429), RateLimited, Certainty::NotSent),
            (400, &twilio_error(400, 21611), RateLimited, Certainty::NotSent),
            (401, &twilio_error(401, 20003), AuthConfig, Certainty::NotSent),
            (404, &twilio_error(404, 20404), AuthConfig, Certainty::NotSent),
            (400, &twilio_error(400, 21606), AuthConfig, Certainty::NotSent),
            (400, &twilio_error(400, 21408), AuthConfig, Certainty::NotSent),
            (400, &twilio_error(400, 21608), AuthConfig, Certainty::NotSent),
            (400, &twilio_error(400, 21612), AuthConfig, Certainty::NotSent),
            (400, &twilio_error(400, 21212), AuthConfig, Certainty::NotSent),
            (400, &twilio_error(400, 21604), AuthConfig, Certainty::NotSent),
            (401, &twilio_error(401, 30002), Funds, Certainty::NotSent),
            (401, &twilio_error(401, 20005), Funds, Certainty::NotSent),
            (500, &twilio_error(500, 20500), Transient, Certainty::NotSent),
            (503, &twilio_error(503, 20503), Transient, Certainty::NotSent),
            // Unknown codes fall back to the status.
            (400, &twilio_error(400, 21999), Transient, Certainty::NotSent),
            (401, &twilio_error(401, 99999), AuthConfig, Certainty::NotSent),
            (429, &twilio_error(429, 12345), RateLimited, Certainty::NotSent),
            // Not Twilio's JSON: the status decides, nothing panics.
            (
                502,
                "<html><body><h1>502 Bad Gateway</h1></body></html>",
                Transient,
                Certainty::NotSent,
            ),
            (504, "<html>Gateway Timeout</html>", Timeout, Certainty::PossiblyAccepted),
            (403, "", AuthConfig, Certainty::NotSent),
            (402, "not json", Funds, Certainty::NotSent),
            (400, r#"{"code":"21211"}"#, InvalidNumber, Certainty::NotSent),
            (400, r#"{"code":-1}"#, Transient, Certainty::NotSent),
            (400, r#"{"code":[1]}"#, Transient, Certainty::NotSent),
            (400, "\u{0}\u{ff}garbage", Transient, Certainty::NotSent),
            (301, "", AuthConfig, Certainty::NotSent),
            (418, "{}", Transient, Certainty::NotSent),
        ];
        for (status, body, class, certainty) in cases {
            let error = send(*status, body).unwrap_err();
            assert_eq!((error.class, error.certainty), (*class, *certainty), "{status} {body}");
            assert!(!error.to_string().contains("4155550100"), "{error}");
            assert!(!error.detail.contains("not valid"), "{error}");
        }
    }

    #[test]
    fn error_carries_the_code_not_the_message() {
        let error = send(400, &twilio_error(400, 21211)).unwrap_err();
        assert_eq!(error.provider_code.as_deref(), Some("21211"));
        assert_eq!(error.to_string(), "twilio invalid_number: http 400, code 21211");
    }

    #[test]
    fn parses_retry_after_as_seconds_or_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let in_ten = httpdate::fmt_http_date(now + Duration::from_secs(10));
        for (header, expected) in [
            ("3", Some(Duration::from_secs(3))),
            (" 0 ", Some(Duration::ZERO)),
            (in_ten.as_str(), Some(Duration::from_secs(10))),
            ("Thu, 01 Jan 1970 00:00:00 GMT", Some(Duration::ZERO)),
            ("soon", None),
            ("-5", None),
        ] {
            let body = twilio_error(429, 20429);
            let answer =
                RawAnswer { retry_after: Some(header.into()), ..RawAnswer::new(429, body) };
            let error = classify_send(&answer, now).unwrap_err();
            assert_eq!(error.class, ErrorClass::RateLimited);
            assert_eq!(error.retry_after, expected, "{header}");
        }
        let body = twilio_error(500, 20500);
        let answer = RawAnswer { retry_after: Some("3".into()), ..RawAnswer::new(500, body) };
        assert_eq!(
            classify_send(&answer, now).unwrap_err().retry_after,
            None,
            "only rate limits carry it"
        );
    }

    #[test]
    fn probe_accepts_any_2xx() {
        let answer = RawAnswer::new(200, "<not json>");
        assert_eq!(classify_probe(&answer, SystemTime::UNIX_EPOCH), Ok(()));
        let body = twilio_error(401, 20003);
        let answer = RawAnswer::new(401, body);
        assert_eq!(
            classify_probe(&answer, SystemTime::UNIX_EPOCH).unwrap_err().class,
            ErrorClass::AuthConfig
        );
    }
}
