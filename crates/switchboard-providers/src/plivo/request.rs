//! Builds Plivo's JSON bodies (`Message/` and `Call/`, as plivo-python sends them) and the call
//! XML served from the answer URL. The message body and the XML hold the passcode and the phone
//! number: they go to the wire and nowhere else.

use quick_xml::escape::escape;
use serde_json::{Value, json};
use switchboard_core::{MessageText, OutboundMessage, speak_passcode};

/// The `Message/` body: `src`, `dst`, `text`, `type`, and the status callback when set.
pub(crate) fn message_body(
    message: &OutboundMessage,
    src: &str,
    message_expiry_s: Option<u32>,
    status_url: Option<&str>,
) -> Value {
    let mut body = json!({
        "src": src,
        "dst": message.destination.e164(),
        "text": message.text.expose(),
        "type": "sms",
    });
    if let Some(url) = status_url {
        body["url"] = json!(url);
        body["method"] = json!("POST");
    }
    if let Some(expiry) = message_expiry_s {
        body["message_expiry"] = json!(expiry);
    }
    body
}

/// The `Call/` body: `from`, `to`, the answer URL Plivo fetches the script from, and the
/// hangup URL that reports how the call ended.
pub(crate) fn call_body(
    message: &OutboundMessage,
    from: &str,
    answer_url: &str,
    hangup_url: &str,
    ring_timeout_s: Option<u32>,
) -> Value {
    let mut body = json!({
        "from": from,
        "to": message.destination.e164(),
        "answer_url": answer_url,
        "answer_method": "POST",
        "hangup_url": hangup_url,
        "hangup_method": "POST",
    });
    if let Some(seconds) = ring_timeout_s {
        body["ring_timeout"] = json!(seconds);
    }
    body
}

/// `<Response><Wait length="1"/><Speak voice language>script</Speak></Response>`.
///
/// The one-second wait keeps the first words from being lost while the callee lifts the phone;
/// the script already repeats the code, so `loop` is not used.
pub(crate) fn answer_xml(message: &OutboundMessage, voice: &str) -> MessageText {
    let speech = speak_passcode(&message.passcode, message.locale.as_ref());
    let language = speak_language(&speech.language_tag);
    MessageText::new(format!(
        "<Response><Wait length=\"1\"/><Speak voice=\"{}\" language=\"{}\">{}</Speak></Response>",
        escape(voice),
        escape(language),
        escape(speech.text.expose()),
    ))
}

/// Languages Plivo's `<Speak>` offers (its text-to-speech language list; unverified beyond
/// `en-US`). The first entry of a language is its fallback.
const LANGUAGES: &[&str] = &[
    "en-US", "en-GB", "en-AU", "en-IN", "fr-FR", "fr-CA", "de-DE", "es-ES", "es-US", "it-IT",
    "pt-BR", "pt-PT", "nl-NL", "sv-SE", "da-DK", "nb-NO", "pl-PL", "ja-JP",
];

fn speak_language(tag: &str) -> &'static str {
    let language = tag.split('-').next().unwrap_or(tag);
    LANGUAGES
        .iter()
        .find(|known| known.eq_ignore_ascii_case(tag))
        .or_else(|| LANGUAGES.iter().find(|known| known.split('-').next() == Some(language)))
        .copied()
        .unwrap_or(LANGUAGES[0])
}

#[cfg(test)]
mod tests {
    use switchboard_core::Channel;

    use super::*;

    fn message(locale: Option<&str>) -> OutboundMessage {
        crate::testing::us_message(Channel::Voice, "Your code is 918273", locale)
    }

    #[test]
    fn message_body_has_plivos_fields() {
        assert_eq!(
            message_body(&message(None), "+15005550006", Some(600), Some("https://x/status")),
            json!({"src": "+15005550006", "dst": "+14155550100", "text": "Your code is 918273",
                   "type": "sms", "url": "https://x/status", "method": "POST", "message_expiry": 600})
        );
        assert!(message_body(&message(None), "Acme", None, None).get("url").is_none());
    }

    #[test]
    fn call_body_names_the_answer_and_hangup_urls() {
        let body = call_body(
            &message(None),
            "+15005550006",
            "https://x/answer/t",
            "https://x/hangup",
            Some(30),
        );
        assert_eq!(body["answer_url"], "https://x/answer/t");
        assert_eq!(body["answer_method"], "POST");
        assert_eq!(body["hangup_url"], "https://x/hangup");
        assert_eq!(body["ring_timeout"], 30);
        assert_eq!(
            (body["from"].as_str(), body["to"].as_str()),
            (Some("+15005550006"), Some("+14155550100"))
        );
    }

    #[test]
    fn answer_xml_speaks_the_digits_in_the_users_language() {
        let xml = answer_xml(&message(Some("fr-BE")), "WOMAN");
        let xml = xml.expose();
        assert!(
            xml.starts_with(
                "<Response><Wait length=\"1\"/><Speak voice=\"WOMAN\" language=\"fr-FR\">Votre code"
            ),
            "{xml}"
        );
        assert_eq!(xml.matches("9, 1, 8, 2, 7, 3").count(), 2);
        assert!(xml.ends_with("</Speak></Response>"));
        let english = answer_xml(&message(Some("xx")), "Polly.Joanna");
        assert!(english.expose().contains("voice=\"Polly.Joanna\" language=\"en-US\""));
    }
}
