//! Builds the form bodies of `Messages.json` and `Calls.json` (spec operations CreateMessage and
//! CreateCall: PascalCase form fields, `application/x-www-form-urlencoded`).
//!
//! The forms hold the passcode and the phone number: they go to the wire and nowhere else.

use quick_xml::escape::escape;
use switchboard_core::{OutboundMessage, speak_passcode};

/// One form body, as `(field, value)` pairs in the order sent.
pub(crate) type Form = Vec<(&'static str, String)>;

/// Who sends an SMS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SmsSender<'a> {
    /// `From`: a number, short code or alphanumeric sender ID.
    From(&'a str),
    /// `MessagingServiceSid`.
    MessagingService(&'a str),
}

/// The call progress events we ask Twilio to report: `answered` is delivery for a passcode
/// call, `completed` carries the final status (busy, no-answer, failed, completed).
const CALL_EVENTS: [&str; 2] = ["answered", "completed"];

/// The CreateMessage form: `To`, `From` or `MessagingServiceSid`, `Body`, `ValidityPeriod`,
/// `StatusCallback`.
pub(crate) fn message_form(
    sender: SmsSender<'_>,
    validity_period_s: Option<u32>,
    status_callback: Option<&str>,
    message: &OutboundMessage,
) -> Form {
    let mut form = vec![("To", message.destination.e164().to_owned())];
    form.push(match sender {
        SmsSender::From(from) => ("From", from.to_owned()),
        SmsSender::MessagingService(service) => ("MessagingServiceSid", service.to_owned()),
    });
    form.push(("Body", message.text.expose().to_owned()));
    if let Some(period) = validity_period_s {
        form.push(("ValidityPeriod", period.to_string()));
    }
    if let Some(url) = status_callback {
        form.push(("StatusCallback", url.to_owned()));
    }
    form
}

/// The CreateCall form: `To`, `From`, inline `Twiml` that reads the passcode, and the status
/// callback with its events.
pub(crate) fn call_form(
    caller_id: &str,
    voice: Option<&str>,
    status_callback: Option<&str>,
    message: &OutboundMessage,
) -> Form {
    let mut form = vec![
        ("To", message.destination.e164().to_owned()),
        ("From", caller_id.to_owned()),
        ("Twiml", twiml(voice, message)),
    ];
    if let Some(url) = status_callback {
        form.push(("StatusCallback", url.to_owned()));
        form.push(("StatusCallbackMethod", "POST".to_owned()));
        for event in CALL_EVENTS {
            form.push(("StatusCallbackEvent", event.to_owned()));
        }
    }
    form
}

/// `<Response><Pause/><Say language voice>script</Say></Response>`.
///
/// The leading one-second pause keeps the first words from being lost while the callee lifts
/// the phone to their ear. The script already says the code twice, so `<Say loop>` is not used.
fn twiml(configured_voice: Option<&str>, message: &OutboundMessage) -> String {
    let speech = speak_passcode(&message.passcode, message.locale.as_ref());
    let (language, default_voice) = polly_voice(&speech.language_tag);
    let voice = configured_voice.unwrap_or(default_voice);
    format!(
        "<Response><Pause length=\"1\"/><Say language=\"{}\" voice=\"{}\">{}</Say></Response>",
        escape(language),
        escape(voice),
        escape(speech.text.expose()),
    )
}

/// Amazon Polly voices Twilio offers, by `<Say language>` tag. The first entry of a language is
/// its fallback for regions without their own voice.
const POLLY_VOICES: &[(&str, &str)] = &[
    ("en-US", "Polly.Joanna"),
    ("en-GB", "Polly.Amy"),
    ("en-AU", "Polly.Nicole"),
    ("en-IN", "Polly.Aditi"),
    ("fr-FR", "Polly.Celine"),
    ("fr-CA", "Polly.Chantal"),
    ("de-DE", "Polly.Marlene"),
    ("es-ES", "Polly.Conchita"),
    ("es-MX", "Polly.Mia"),
    ("es-US", "Polly.Penelope"),
    ("it-IT", "Polly.Carla"),
    ("pt-BR", "Polly.Vitoria"),
    ("pt-PT", "Polly.Ines"),
    ("nl-NL", "Polly.Lotte"),
    ("sv-SE", "Polly.Astrid"),
    ("da-DK", "Polly.Naja"),
    ("nb-NO", "Polly.Liv"),
    ("pl-PL", "Polly.Ewa"),
    ("ja-JP", "Polly.Mizuki"),
];

/// The `<Say language>` tag and default voice for `tag`: the exact tag if Twilio has a voice
/// for it, else the language's first voice (so `fr-BE` speaks as `fr-FR`), else US English.
///
/// The returned tag always belongs to the voice: a `language` that contradicts the voice makes
/// Twilio's text-to-speech misread the script.
fn polly_voice(tag: &str) -> (&'static str, &'static str) {
    let language = tag.split('-').next().unwrap_or(tag);
    POLLY_VOICES
        .iter()
        .find(|(known, _)| known.eq_ignore_ascii_case(tag))
        .or_else(|| {
            POLLY_VOICES.iter().find(|(known, _)| known.split('-').next() == Some(language))
        })
        .copied()
        .unwrap_or(POLLY_VOICES[0])
}

#[cfg(test)]
mod tests {
    use switchboard_core::Channel;

    use super::*;

    fn message(channel: Channel, text: &str, locale: Option<&str>) -> OutboundMessage {
        crate::testing::us_message(channel, text, locale)
    }

    #[test]
    fn message_form_has_twilios_fields_in_order() {
        let sms = message(Channel::Sms, "Your code is 918273", None);
        let from = SmsSender::From("+15005550006");
        assert_eq!(
            message_form(from, None, None, &sms),
            [
                ("To", "+14155550100".to_owned()),
                ("From", "+15005550006".to_owned()),
                ("Body", "Your code is 918273".to_owned()),
            ]
        );
        let service = SmsSender::MessagingService("MG0123456789abcdef0123456789abcdef");
        let form = message_form(service, Some(300), Some("https://cb.example/status"), &sms);
        let fields: Vec<_> = form.iter().map(|(field, _)| *field).collect();
        assert_eq!(
            fields,
            ["To", "MessagingServiceSid", "Body", "ValidityPeriod", "StatusCallback"]
        );
        assert_eq!(form[3].1, "300");
        assert_eq!(form[4].1, "https://cb.example/status");
    }

    #[test]
    fn call_form_reads_the_digits_in_twiml() {
        let call = message(Channel::Voice, "unused for voice", None);
        let form = call_form("+15005550006", None, None, &call);
        assert_eq!(form.len(), 3, "no callback fields without a callback URL");
        assert_eq!(form[0], ("To", "+14155550100".to_owned()));
        assert_eq!(form[1], ("From", "+15005550006".to_owned()));
        let (field, twiml) = &form[2];
        assert_eq!(*field, "Twiml");
        assert!(
            twiml.starts_with(
                "<Response><Pause length=\"1\"/><Say language=\"en-US\" voice=\"Polly.Joanna\">Your verification code is 9, 1, 8, 2, 7, 3."
            ),
            "{twiml}"
        );
        assert!(twiml.ends_with("</Say></Response>"));
        assert_eq!(twiml.matches("9, 1, 8, 2, 7, 3").count(), 2);
    }

    #[test]
    fn call_form_asks_for_answered_and_completed_events() {
        let call = message(Channel::Voice, "", None);
        let form = call_form("+15005550006", None, Some("https://cb.example/status"), &call);
        let callback: Vec<_> =
            form.iter().filter(|(field, _)| field.starts_with("StatusCallback")).collect();
        assert_eq!(
            callback,
            [
                &("StatusCallback", "https://cb.example/status".to_owned()),
                &("StatusCallbackMethod", "POST".to_owned()),
                &("StatusCallbackEvent", "answered".to_owned()),
                &("StatusCallbackEvent", "completed".to_owned()),
            ]
        );
    }

    #[test]
    fn twiml_follows_the_locale_and_the_configured_voice() {
        let french = twiml(None, &message(Channel::Voice, "", Some("fr-CA")));
        assert!(
            french.contains("language=\"fr-CA\" voice=\"Polly.Chantal\">Votre code"),
            "{french}"
        );
        let belgian = twiml(None, &message(Channel::Voice, "", Some("fr-BE")));
        assert!(belgian.contains("language=\"fr-FR\" voice=\"Polly.Celine\""), "{belgian}");
        let unknown = twiml(None, &message(Channel::Voice, "", Some("xx")));
        assert!(unknown.contains("language=\"en-US\" voice=\"Polly.Joanna\""), "{unknown}");
        let configured = twiml(Some("Polly.Matthew"), &message(Channel::Voice, "", None));
        assert!(configured.contains("voice=\"Polly.Matthew\""), "{configured}");
    }

    #[test]
    fn twiml_escapes_markup() {
        // Config validation keeps voice names plain; escaping still guards the document.
        let twiml = twiml(Some("a\"<b>&'"), &message(Channel::Voice, "", None));
        assert!(twiml.contains("voice=\"a&quot;&lt;b&gt;&amp;&apos;\""), "{twiml}");
        // Speech text carries no markup characters today; every `<` and `>` left is TwiML's own.
        assert_eq!(twiml.matches('<').count(), 5, "{twiml}");
    }

    #[test]
    fn every_spoken_language_has_a_voice() {
        for language in ["en", "fr", "de", "es", "it", "pt", "nl", "sv", "da", "nb", "pl", "ja"] {
            let (tag, _) = polly_voice(language);
            assert!(tag.starts_with(language), "{language} -> {tag}");
        }
    }
}
