//! Status callbacks: after a send that named a `StatusCallback`, the emulator POSTs the
//! message's or call's progress there, signed with `X-Twilio-Signature` as Twilio does
//! (HMAC-SHA1 with the auth token over the URL and the sorted form parameters).
//!
//! What the callbacks say is set at runtime ([`Delivery`]); they are posted in order from one
//! task per send, after the 201 was built, so a test that awaits the receipt sees it arrive
//! without any sleep.

use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha1::Sha1;

use super::{SendKind, TwilioEmulator};

/// What the status callbacks of the next sends report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case", deny_unknown_fields)]
pub enum Delivery {
    /// Messages: `sent`, then `delivered`. Calls: `in-progress` (if `answered` was asked
    /// for), then `completed`.
    #[default]
    Delivered,
    /// Messages: `sent`, then `undelivered` with `ErrorCode`. Calls: `failed` with `ErrorCode`.
    Undelivered {
        /// Twilio's error code (`30003` unreachable handset, `30005` unknown handset, ...).
        error_code: u32,
    },
    /// No callback at all (a lost receipt).
    Silent,
}

/// One callback the emulator posted, recorded once the receiver answered (or failed to).
#[derive(Clone, Debug, Serialize)]
pub struct SentCallback {
    /// The `StatusCallback` URL.
    pub url: String,
    /// The form parameters sent.
    pub params: Vec<(String, String)>,
    /// The receiver's HTTP status; `None` when the POST failed.
    pub status: Option<u16>,
}

impl SentCallback {
    /// The first value of form parameter `name`.
    #[must_use]
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }
}

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
    pub(super) status_callback: String,
    /// `StatusCallbackEvent` values (calls).
    pub(super) events: Vec<String>,
}

/// Posts the callbacks for `created` on a background task, in order.
pub(super) fn spawn(emulator: &TwilioEmulator, created: Created) {
    let delivery = emulator.delivery();
    let statuses = statuses(created.kind, delivery, &created.events);
    if statuses.is_empty() {
        return;
    }
    let emulator = emulator.clone();
    tokio::spawn(async move {
        for (status, error_code) in statuses {
            let params = form(&created, status, error_code);
            post(&emulator, &created.status_callback, params).await;
        }
    });
}

/// The `(status, ErrorCode)` sequence one send reports.
fn statuses(
    kind: SendKind,
    delivery: Delivery,
    events: &[String],
) -> Vec<(&'static str, Option<u32>)> {
    match (kind, delivery) {
        (_, Delivery::Silent) => vec![],
        (SendKind::Message, Delivery::Delivered) => vec![("sent", None), ("delivered", None)],
        (SendKind::Message, Delivery::Undelivered { error_code }) => {
            vec![("sent", None), ("undelivered", Some(error_code))]
        }
        (SendKind::Call, Delivery::Delivered) => {
            let mut statuses = vec![];
            if events.iter().any(|event| event == "answered") {
                statuses.push(("in-progress", None));
            }
            // Twilio always reports `completed`, whether or not it was asked for.
            statuses.push(("completed", None));
            statuses
        }
        (SendKind::Call, Delivery::Undelivered { error_code }) => {
            vec![("failed", Some(error_code))]
        }
    }
}

fn form(created: &Created, status: &str, error_code: Option<u32>) -> Vec<(String, String)> {
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
    push("ApiVersion", super::api::API_VERSION);
    if let Some(to) = &created.to {
        push("To", to);
    }
    if let Some(from) = &created.from {
        push("From", from);
    }
    if let Some(code) = error_code {
        push("ErrorCode", &code.to_string());
    }
    params
}

async fn post(emulator: &TwilioEmulator, url: &str, params: Vec<(String, String)>) {
    let signature = signature(&emulator.account().auth_token, url, &params);
    let result = emulator
        .callback_client()
        .post(url)
        .header("X-Twilio-Signature", signature)
        .header("User-Agent", "TwilioProxy/1.1")
        .form(&params)
        .send()
        .await;
    let status = match result {
        Ok(response) => Some(response.status().as_u16()),
        Err(error) => {
            tracing::debug!(%error, "twilio emulator callback failed");
            None
        }
    };
    emulator.record_callback(SentCallback { url: url.to_owned(), params, status });
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
        assert_eq!(
            statuses(SendKind::Call, Delivery::Delivered, &answered),
            [("in-progress", None), ("completed", None)]
        );
        assert_eq!(statuses(SendKind::Call, Delivery::Delivered, &[]), [("completed", None)]);
        assert!(statuses(SendKind::Message, Delivery::Silent, &[]).is_empty());
    }

    #[test]
    fn delivery_json_shape() {
        let undelivered: Delivery =
            serde_json::from_str(r#"{"outcome":"undelivered","error_code":30003}"#).unwrap();
        assert_eq!(undelivered, Delivery::Undelivered { error_code: 30003 });
        assert!(serde_json::from_str::<Delivery>(r#"{"outcome":"lost"}"#).is_err());
    }
}
