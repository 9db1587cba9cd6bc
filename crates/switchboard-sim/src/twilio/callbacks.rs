//! Status callbacks: after a send that named a `StatusCallback`, the emulator POSTs the
//! message's or call's progress there, signed with `X-Twilio-Signature` as Twilio does
//! (HMAC-SHA1 with the auth token over the URL and the sorted form parameters).
//!
//! What the callbacks say is set at runtime with the shared [`Receipts`](crate::Receipts):
//! delivered (the default: messages report `sent`, then `delivered`; calls `in-progress` if
//! `answered` was asked for, then `completed`), undelivered with Twilio's `ErrorCode` (messages
//! `sent`, then `undelivered`; calls `failed`), or none (a lost receipt). One send's callbacks
//! are posted in order from one task, after the 201 was built, so a test that awaits the
//! receipt sees it arrive without any sleep. A send without `StatusCallback` still has its fate
//! decided (the handset journal), and nothing is posted.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;

use super::{SendKind, TwilioEmulator};
use crate::callbacks::{CallbackKind, Outgoing, ReceiptOutcome};

/// `base64(HMAC-SHA1(auth_token, url + sorted name/value pairs))`, as twilio-python's
/// `RequestValidator.compute_signature`.
#[must_use]
pub fn signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    sorted.dedup();
    let mut mac = Hmac::<Sha1>::new_from_slice(auth_token.as_bytes())
        .unwrap_or_else(|_| unreachable!("hmac takes any key length"));
    mac.update(url.as_bytes());
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// What a created message or call needs for its callbacks.
pub(super) struct Created {
    pub(super) kind: SendKind,
    pub(super) sid: String,
    pub(super) account_sid: String,
    pub(super) to: Option<String>,
    pub(super) from: Option<String>,
    /// `StatusCallback`; `None`: the send asked for no callbacks.
    pub(super) status_callback: Option<String>,
    /// `StatusCallbackEvent` values (calls).
    pub(super) events: Vec<String>,
}

/// Decides the fate of `created` and posts its callbacks, if it asked for them, on a
/// background task, in order.
pub(super) fn spawn(emulator: &TwilioEmulator, created: &Created) {
    let log = emulator.callback_log();
    let Some(url) = &created.status_callback else {
        log.decide_unreported(&created.sid, created.to.as_deref());
        return;
    };
    let decision = log.decide(&created.sid, created.to.as_deref());
    let outgoing = statuses(created.kind, &decision.report, &created.events)
        .into_iter()
        .map(|(status, error_code)| {
            signed(emulator, created, url, form(created, status, error_code))
        })
        .collect();
    log.schedule(outgoing, decision.delay);
}

/// The `(status, ErrorCode)` sequence one send reports.
fn statuses<'a>(
    kind: SendKind,
    outcome: &'a ReceiptOutcome,
    events: &[String],
) -> Vec<(&'static str, Option<&'a str>)> {
    match (kind, outcome) {
        (_, ReceiptOutcome::None) => vec![],
        (SendKind::Message, ReceiptOutcome::Delivered) => vec![("sent", None), ("delivered", None)],
        (SendKind::Message, ReceiptOutcome::Undelivered { code }) => {
            vec![("sent", None), ("undelivered", Some(code))]
        }
        (SendKind::Call, ReceiptOutcome::Delivered) => {
            let mut statuses = vec![];
            if events.iter().any(|event| event == "answered") {
                statuses.push(("in-progress", None));
            }
            // Twilio always reports `completed`, whether or not it was asked for.
            statuses.push(("completed", None));
            statuses
        }
        (SendKind::Call, ReceiptOutcome::Undelivered { code }) => vec![("failed", Some(code))],
    }
}

fn form(created: &Created, status: &str, error_code: Option<&str>) -> Vec<(String, String)> {
    let mut params: Vec<(String, String)> = Vec::new();
    let mut push = |name: &str, value: &str| params.push((name.to_owned(), value.to_owned()));
    match created.kind {
        SendKind::Message => {
            push("MessageSid", &created.sid);
            push("SmsSid", &created.sid);
            push("MessageStatus", status);
            push("SmsStatus", status);
        }
        SendKind::Call => {
            push("CallSid", &created.sid);
            push("CallStatus", status);
            push("Direction", "outbound-api");
            push("CallbackSource", "call-progress-events");
        }
    }
    push("AccountSid", &created.account_sid);
    push("ApiVersion", super::API_VERSION);
    if let Some(to) = &created.to {
        push("To", to);
    }
    if let Some(from) = &created.from {
        push("From", from);
    }
    if let Some(code) = error_code {
        push("ErrorCode", code);
    }
    params
}

/// One status callback form, signed as Twilio signs it.
fn signed(
    emulator: &TwilioEmulator,
    created: &Created,
    url: &str,
    params: Vec<(String, String)>,
) -> Outgoing {
    let signature = signature(&emulator.account().auth_token, url, &params);
    Outgoing {
        kind: CallbackKind::Receipt,
        url: url.to_owned(),
        message_id: created.sid.clone(),
        headers: vec![
            ("X-Twilio-Signature".to_owned(), signature),
            ("User-Agent".to_owned(), "TwilioProxy/1.1".to_owned()),
        ],
        content_type: "application/x-www-form-urlencoded",
        body: serde_urlencoded::to_string(&params).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_like_the_sdk() {
        let params: Vec<(String, String)> = [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+14158675309"),
            ("Digits", "1234"),
            ("From", "+14158675309"),
            ("To", "+18005551212"),
        ]
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect();
        assert_eq!(
            signature("12345", "https://mycompany.com/myapp.php?foo=1&bar=2", &params),
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        );
    }

    #[test]
    fn calls_report_answered_only_when_asked() {
        let answered = vec!["answered".to_owned(), "completed".to_owned()];
        let delivered = ReceiptOutcome::Delivered;
        assert_eq!(
            statuses(SendKind::Call, &delivered, &answered),
            [("in-progress", None), ("completed", None)]
        );
        assert_eq!(statuses(SendKind::Call, &delivered, &[]), [("completed", None)]);
        assert!(statuses(SendKind::Message, &ReceiptOutcome::None, &[]).is_empty());
    }
}
