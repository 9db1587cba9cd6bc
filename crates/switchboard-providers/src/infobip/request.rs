//! Builds Infobip's JSON bodies: SMS through `POST /sms/3/messages` (operation
//! `send-sms-messages`, marked latest in the spec's `x-versions`) and voice through
//! `POST /tts/3/advanced` (`send-advanced-voice-tts`, the text-to-speech call that takes a
//! `notifyUrl`). Conformance tests validate these bodies against the published OpenAPI schemas.
//!
//! Numbers go without the `+` (`"to": "41793026727"`), as the spec's examples write them. The
//! bodies hold the passcode and the phone number: they go to the wire and nowhere else.

use serde_json::{Value, json};
use switchboard_core::{OutboundMessage, speak_passcode};

/// The `send-sms-messages` body: one message, one destination.
pub(crate) fn sms_body(
    message: &OutboundMessage,
    sender: Option<&str>,
    validity_period_min: Option<u32>,
    report_url: Option<&str>,
) -> Value {
    let mut sms = json!({
        "destinations": [{"to": message.destination.digits()}],
        "content": {"text": message.text.expose()},
    });
    if let Some(sender) = sender {
        sms["sender"] = json!(sender.trim_start_matches('+'));
    }
    if let Some(minutes) = validity_period_min {
        sms["options"] = json!({"validityPeriod": {"amount": minutes, "timeUnit": "MINUTES"}});
    }
    if let Some(url) = report_url {
        sms["webhooks"] = json!({
            "delivery": {"url": url, "intermediateReport": false, "notify": true},
            "contentType": "application/json",
        });
    }
    json!({"messages": [sms]})
}

/// The `send-advanced-voice-tts` body: the script in the user's language, digit by digit.
pub(crate) fn voice_body(
    message: &OutboundMessage,
    caller_id: Option<&str>,
    voice: Option<&str>,
    validity_period_min: Option<u32>,
    report_url: Option<&str>,
) -> Value {
    let speech = speak_passcode(&message.passcode, message.locale.as_ref());
    let mut call = json!({
        "destinations": [{"to": message.destination.digits()}],
        "text": speech.text.expose(),
        "language": tts_language(&speech.language_tag),
    });
    if let Some(from) = caller_id {
        call["from"] = json!(from.trim_start_matches('+'));
    }
    if let Some(name) = voice {
        call["voice"] = json!({"name": name});
    }
    if let Some(minutes) = validity_period_min {
        call["validityPeriod"] = json!(minutes);
    }
    if let Some(url) = report_url {
        call["notifyUrl"] = json!(url);
        call["notifyContentType"] = json!("application/json");
    }
    json!({"messages": [call]})
}

/// Infobip's TTS language codes for the tags `speak_passcode` produces. `en` and `de` appear in
/// the spec's examples; the regional codes follow Infobip's language list and are unverified.
/// Anything else falls back to the bare language, then English.
const LANGUAGES: &[(&str, &str)] = &[
    ("en-GB", "en-gb"),
    ("en-AU", "en-au"),
    ("en-IN", "en-in"),
    ("fr-CA", "fr-ca"),
    ("es-MX", "es-mx"),
    ("pt-BR", "pt-br"),
    ("pt-PT", "pt-pt"),
    ("en", "en"),
    ("fr", "fr"),
    ("de", "de"),
    ("es", "es"),
    ("it", "it"),
    ("pt", "pt-br"),
    ("nl", "nl"),
    ("sv", "sv"),
    ("da", "da"),
    ("nb", "no"),
    ("pl", "pl"),
    ("ja", "ja"),
];

fn tts_language(tag: &str) -> &'static str {
    let language = tag.split('-').next().unwrap_or(tag);
    LANGUAGES
        .iter()
        .find(|(known, _)| known.eq_ignore_ascii_case(tag))
        .or_else(|| LANGUAGES.iter().find(|(known, _)| *known == language))
        .map_or("en", |(_, code)| code)
}

#[cfg(test)]
mod tests {
    use switchboard_core::Channel;

    use super::*;

    fn message(locale: Option<&str>) -> OutboundMessage {
        crate::testing::outbound(
            "+41793026727",
            "CH",
            Channel::Sms,
            "5842",
            "Your code is 5842",
            locale,
        )
    }

    #[test]
    fn sms_body_is_one_message_to_one_destination() {
        assert_eq!(
            sms_body(&message(None), None, None, None),
            json!({"messages": [{
                "destinations": [{"to": "41793026727"}],
                "content": {"text": "Your code is 5842"},
            }]})
        );
        let full = sms_body(&message(None), Some("InfoSMS"), Some(10), Some("https://x/r/t"));
        let sms = &full["messages"][0];
        assert_eq!(sms["sender"], "InfoSMS");
        assert_eq!(sms["options"]["validityPeriod"], json!({"amount": 10, "timeUnit": "MINUTES"}));
        assert_eq!(sms["webhooks"]["delivery"]["url"], "https://x/r/t");
        assert_eq!(sms["webhooks"]["contentType"], "application/json");
    }

    #[test]
    fn voice_body_reads_the_digits_in_the_users_language() {
        let body = voice_body(
            &message(Some("de-AT")),
            Some("+41793026700"),
            Some("Hans"),
            Some(5),
            Some("https://x/r"),
        );
        let call = &body["messages"][0];
        assert_eq!(call["from"], "41793026700");
        assert_eq!(call["destinations"][0]["to"], "41793026727");
        assert_eq!(call["language"], "de");
        assert_eq!(call["voice"], json!({"name": "Hans"}));
        assert_eq!(call["validityPeriod"], 5);
        assert_eq!(call["notifyUrl"], "https://x/r");
        let text = call["text"].as_str().unwrap();
        assert_eq!(text.matches("5, 8, 4, 2").count(), 2, "{text}");
        assert_eq!(
            voice_body(&message(Some("en-GB")), None, None, None, None)["messages"][0]["language"],
            "en-gb"
        );
        assert_eq!(
            voice_body(&message(Some("xx")), None, None, None, None)["messages"][0]["language"],
            "en"
        );
    }
}
