//! Builds Sinch's request bodies: the SMS batch (spec `sendBatchObject`) and the text-to-speech
//! callout (spec `CalloutRequest` with `ttsCallout`).
//!
//! The bodies hold the passcode and the phone number: they go to the wire and nowhere else.

use serde_json::{Value, json};
use switchboard_core::{OutboundMessage, speak_passcode};

/// Sinch's limit on `client_reference`.
const MAX_CLIENT_REFERENCE: usize = 128;

/// `POST /xms/v1/{service_plan_id}/batches`: one recipient, the text, and a per-recipient
/// delivery report to `callback_url` when receipts are wanted. Sinch picks the encoding itself.
pub(crate) fn batch_body(
    sender: &str,
    callback_url: Option<&str>,
    message: &OutboundMessage,
) -> Value {
    let mut body = json!({
        "to": [message.destination.e164()],
        "from": sender,
        "body": message.text.expose(),
        "type": "mt_text",
    });
    let reference: String = message.reference.chars().take(MAX_CLIENT_REFERENCE).collect();
    if !reference.is_empty() {
        body["client_reference"] = json!(reference);
    }
    match callback_url {
        Some(url) => {
            body["delivery_report"] = json!("per_recipient");
            body["callback_url"] = json!(url);
        }
        None => body["delivery_report"] = json!("none"),
    }
    body
}

/// `POST /calling/v1/callouts`: a `ttsCallout` that reads the script; `enableDice` asks for the
/// disconnect event (sent to the application's callback URL) when receipts are wanted.
pub(crate) fn callout_body(
    caller_id: &str,
    wants_receipt: bool,
    message: &OutboundMessage,
) -> Value {
    let speech = speak_passcode(&message.passcode, message.locale.as_ref());
    let mut callout = json!({
        "cli": caller_id,
        "destination": {"type": "number", "endpoint": message.destination.e164()},
        "domain": "pstn",
        "locale": speech.language_tag,
        "text": speech.text.expose(),
        "enableAce": false,
        "enableDice": wants_receipt,
    });
    if !message.reference.is_empty() {
        callout["custom"] = json!(message.reference);
    }
    json!({"method": "ttsCallout", "ttsCallout": callout})
}

#[cfg(test)]
mod tests {
    use switchboard_core::Channel;

    use super::*;

    fn message(locale: Option<&str>) -> OutboundMessage {
        crate::testing::us_message(Channel::Sms, "Your code is 918273", locale)
    }

    #[test]
    fn batch_body_has_sinchs_fields() {
        assert_eq!(
            batch_body("+15005550006", None, &message(None)),
            json!({
                "to": ["+14155550100"], "from": "+15005550006", "body": "Your code is 918273",
                "type": "mt_text", "client_reference": "evt-1", "delivery_report": "none",
            })
        );
        let with_report =
            batch_body("Acme", Some("https://h/callbacks/s/sms/token"), &message(None));
        assert_eq!(with_report["delivery_report"], "per_recipient");
        assert_eq!(with_report["callback_url"], "https://h/callbacks/s/sms/token");
    }

    #[test]
    fn callout_reads_the_digits_in_the_users_language() {
        let body = callout_body("+15005550006", true, &message(Some("de-AT")));
        assert_eq!(body["method"], "ttsCallout");
        let callout = &body["ttsCallout"];
        assert_eq!(callout["cli"], "+15005550006");
        assert_eq!(callout["destination"], json!({"type": "number", "endpoint": "+14155550100"}));
        assert_eq!(callout["locale"], "de-AT");
        assert_eq!(callout["enableDice"], true);
        let text = callout["text"].as_str().unwrap();
        assert!(text.starts_with("Ihr Bestätigungscode"), "{text}");
        assert_eq!(text.matches("9, 1, 8, 2, 7, 3").count(), 2);
        assert_eq!(
            callout_body("+15005550006", false, &message(None))["ttsCallout"]["enableDice"],
            false
        );
    }
}
