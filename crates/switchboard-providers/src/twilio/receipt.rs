//! Twilio's status callbacks (research notes 1.3) to [`Receipt`]s.
//!
//! A message callback carries `MessageSid`, `MessageStatus` and, for `failed`/`undelivered`,
//! `ErrorCode`; a call callback carries `CallSid` and `CallStatus`. Twilio adds fields without
//! notice, so unknown fields are ignored; an unknown status is read as pending (it says nothing
//! final), never as a failure.
//!
//! Delivery-time error codes (the 30xxx family; [3p] tables, research section 0): an unknown one
//! is `Transient`, as at send time, so a code we do not understand never becomes a verdict on
//! the user's number.

use switchboard_core::ErrorClass;

use super::classify;
use crate::{CallbackError, DeliveryState, Receipt};

/// The receipt in one callback's form parameters.
pub(crate) fn parse(params: &[(String, String)]) -> Result<Receipt, CallbackError> {
    let field = |name: &str| {
        params
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.trim())
            .filter(|value| !value.is_empty())
    };
    let error_code = field("ErrorCode").filter(|code| code.bytes().all(|b| b.is_ascii_digit()));
    let (message_id, status, state) = if let Some(sid) = field("MessageSid") {
        let status = field("MessageStatus").or_else(|| field("SmsStatus")).ok_or_else(|| {
            CallbackError::Malformed("message callback without MessageStatus".into())
        })?;
        (sid, status, message_state(status, error_code))
    } else if let Some(sid) = field("CallSid") {
        let status = field("CallStatus")
            .ok_or_else(|| CallbackError::Malformed("call callback without CallStatus".into()))?;
        (sid, status, call_state(status, error_code))
    } else {
        return Err(CallbackError::Malformed("neither MessageSid nor CallSid".into()));
    };
    if !is_sid(message_id) {
        return Err(CallbackError::Malformed("the sid is not a Twilio sid".into()));
    }
    // Status words are Twilio's fixed vocabulary; anything else is not echoed into logs.
    let status_code = if status.bytes().all(|b| b.is_ascii_lowercase() || b == b'-' || b == b'_')
        && status.len() <= 32
    {
        status
    } else {
        "unknown"
    };
    Ok(Receipt {
        message_id: message_id.to_owned(),
        state,
        provider_code: Some(error_code.unwrap_or(status_code).to_owned()),
    })
}

// Per-provider table, alike in shape across adapters on purpose: the codes are this provider's.
fn message_state(status: &str, error_code: Option<&str>) -> DeliveryState {
    match status {
        "delivered" | "read" => DeliveryState::Delivered,
        "undelivered" | "failed" => DeliveryState::Undelivered(class_for(error_code)),
        // Cancelled before sending (scheduled messages only): nothing reached the user.
        "canceled" => DeliveryState::Undelivered(ErrorClass::Transient),
        _ => DeliveryState::Pending,
    }
}

/// `answered` events arrive as `in-progress`: the callee picked up, which for a passcode call is
/// delivery. `busy` and `no-answer` are final but say nothing against the number or the
/// provider's routing; they are `Transient` (another try later, or by SMS, may reach the user)
/// and keep the call status as `provider_code` so the server can tell them from failures.
// Per-provider table, alike in shape across adapters on purpose: the codes are this provider's.
fn call_state(status: &str, error_code: Option<&str>) -> DeliveryState {
    match status {
        "in-progress" | "completed" => DeliveryState::Delivered,
        "busy" | "no-answer" | "canceled" => DeliveryState::Undelivered(ErrorClass::Transient),
        "failed" => DeliveryState::Undelivered(class_for(error_code)),
        _ => DeliveryState::Pending,
    }
}

fn class_for(error_code: Option<&str>) -> ErrorClass {
    error_code.and_then(|code| code.parse::<u64>().ok()).map_or(ErrorClass::Transient, |code| {
        delivery_class(code)
            .or_else(|| classify::class_for_code(code))
            .unwrap_or(ErrorClass::Transient)
    })
}

fn delivery_class(code: u64) -> Option<ErrorClass> {
    let class = match code {
        // Queue overflow: we sent faster than the sender's throughput.
        30001 => ErrorClass::RateLimited,
        // Account suspended.
        30002 => ErrorClass::Funds,
        // Unknown handset (30005); landline or unreachable carrier (30006).
        30005 | 30006 => ErrorClass::InvalidNumber,
        // Blocked by the carrier or the handset (30004); carrier filtering (30007).
        30004 | 30007 => ErrorClass::Blocked,
        // Sender not registered for the traffic (US A2P 10DLC 30034, toll-free 30032): our
        // configuration, and another provider's sender may well be registered.
        30032 | 30034 => ErrorClass::AuthConfig,
        // Handset unreachable (30003), unknown error (30008).
        30003 | 30008 => ErrorClass::Transient,
        _ => return None,
    };
    Some(class)
}

/// Two upper-case letters and 32 hex digits.
fn is_sid(sid: &str) -> bool {
    sid.len() == 34
        && sid.as_bytes()[..2].iter().all(u8::is_ascii_uppercase)
        && sid.as_bytes()[2..].iter().all(u8::is_ascii_hexdigit)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SM: &str = "SM0123456789abcdef0123456789abcdef";
    const CA: &str = "CA0123456789abcdef0123456789abcdef";

    fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())).collect()
    }

    fn state(pairs: &[(&str, &str)]) -> DeliveryState {
        parse(&form(pairs)).unwrap().state
    }

    #[test]
    fn reads_message_statuses() {
        use DeliveryState::*;
        use ErrorClass::*;
        for (status, code, expected) in [
            ("delivered", None, Delivered),
            ("read", None, Delivered),
            ("queued", None, Pending),
            ("sent", None, Pending),
            ("some-new-status", None, Pending),
            ("undelivered", Some("30003"), Undelivered(Transient)),
            ("undelivered", Some("30005"), Undelivered(InvalidNumber)),
            ("undelivered", Some("30006"), Undelivered(InvalidNumber)),
            ("undelivered", Some("30007"), Undelivered(Blocked)),
            ("failed", Some("30004"), Undelivered(Blocked)),
            ("failed", Some("30001"), Undelivered(RateLimited)),
            ("failed", Some("30002"), Undelivered(Funds)),
            ("failed", Some("30034"), Undelivered(AuthConfig)),
            ("failed", Some("21610"), Undelivered(Blocked)),
            ("failed", Some("39999"), Undelivered(Transient)),
            ("failed", None, Undelivered(Transient)),
            ("failed", Some("abc"), Undelivered(Transient)),
        ] {
            let mut pairs =
                vec![("MessageSid", SM), ("MessageStatus", status), ("AccountSid", "AC1")];
            if let Some(code) = code {
                pairs.push(("ErrorCode", code));
            }
            assert_eq!(state(&pairs), expected, "{status} {code:?}");
        }
    }

    #[test]
    fn reads_call_statuses() {
        use DeliveryState::*;
        for (status, expected) in [
            ("initiated", Pending),
            ("ringing", Pending),
            ("in-progress", Delivered),
            ("completed", Delivered),
            ("busy", Undelivered(ErrorClass::Transient)),
            ("no-answer", Undelivered(ErrorClass::Transient)),
            ("failed", Undelivered(ErrorClass::Transient)),
        ] {
            assert_eq!(state(&[("CallSid", CA), ("CallStatus", status)]), expected, "{status}");
        }
        let receipt = parse(&form(&[("CallSid", CA), ("CallStatus", "no-answer")])).unwrap();
        assert_eq!(receipt.provider_code.as_deref(), Some("no-answer"));
    }

    #[test]
    fn carries_the_sid_and_the_code() {
        let receipt = parse(&form(&[
            ("SmsSid", SM),
            ("MessageSid", SM),
            ("SmsStatus", "undelivered"),
            ("MessageStatus", "undelivered"),
            ("ErrorCode", "30005"),
            ("To", "+14155550100"),
        ]))
        .unwrap();
        assert_eq!(receipt.message_id, SM);
        assert_eq!(receipt.provider_code.as_deref(), Some("30005"));
        assert!(!format!("{receipt:?}").contains("4155550100"));
    }

    #[test]
    fn refuses_what_is_not_a_status_callback() {
        for pairs in [
            &[("MessageStatus", "delivered")][..],
            &[("MessageSid", SM)][..],
            &[("CallSid", CA)][..],
            &[("MessageSid", "SM123"), ("MessageStatus", "delivered")][..],
            &[][..],
        ] {
            assert!(matches!(parse(&form(pairs)), Err(CallbackError::Malformed(_))), "{pairs:?}");
        }
    }

    #[test]
    fn odd_status_words_are_not_echoed() {
        let receipt =
            parse(&form(&[("MessageSid", SM), ("MessageStatus", "+14155550100\n")])).unwrap();
        assert_eq!(receipt.provider_code.as_deref(), Some("unknown"));
    }
}
