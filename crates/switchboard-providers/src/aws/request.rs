//! The JSON bodies of `SendTextMessage` and `SendVoiceMessage` (botocore model
//! `pinpoint-sms-voice-v2` 2022-03-31; PascalCase members, awsJson1_0).
//!
//! The bodies hold the passcode and the phone number: they go to the wire and nowhere else.

use quick_xml::escape::escape;
use serde_json::{Map, Value, json};
use switchboard_core::{OutboundMessage, speak_passcode};

/// Optional members shared by both operations, from config.
#[derive(Clone, Debug, Default)]
pub(crate) struct Options {
    pub(crate) configuration_set_name: Option<String>,
    pub(crate) max_price: Option<String>,
    pub(crate) max_price_per_minute: Option<String>,
    pub(crate) time_to_live_s: Option<u32>,
    pub(crate) voice_id: Option<String>,
}

/// `SendTextMessage`: always `TRANSACTIONAL` (a passcode is not marketing, and promotional
/// routes may be filtered or delayed).
pub(crate) fn text_message(
    origination_identity: Option<&str>,
    options: &Options,
    message: &OutboundMessage,
) -> Value {
    let mut body = Map::new();
    body.insert("DestinationPhoneNumber".into(), json!(message.destination.e164()));
    if let Some(identity) = origination_identity {
        body.insert("OriginationIdentity".into(), json!(identity));
    }
    body.insert("MessageBody".into(), json!(message.text.expose()));
    body.insert("MessageType".into(), json!("TRANSACTIONAL"));
    if let Some(name) = &options.configuration_set_name {
        body.insert("ConfigurationSetName".into(), json!(name));
    }
    if let Some(price) = &options.max_price {
        body.insert("MaxPrice".into(), json!(price));
    }
    if let Some(ttl) = options.time_to_live_s {
        body.insert("TimeToLive".into(), json!(ttl));
    }
    Value::Object(body)
}

/// `SendVoiceMessage`: SSML that reads the passcode one digit at a time.
pub(crate) fn voice_message(
    origination_identity: &str,
    options: &Options,
    message: &OutboundMessage,
) -> Value {
    let speech = speak_passcode(&message.passcode, message.locale.as_ref());
    let voice_id = options.voice_id.as_deref().unwrap_or_else(|| voice_for(&speech.language_tag));
    let mut body = Map::new();
    body.insert("DestinationPhoneNumber".into(), json!(message.destination.e164()));
    body.insert("OriginationIdentity".into(), json!(origination_identity));
    body.insert("MessageBody".into(), json!(ssml(speech.text.expose())));
    body.insert("MessageBodyTextType".into(), json!("SSML"));
    body.insert("VoiceId".into(), json!(voice_id));
    if let Some(name) = &options.configuration_set_name {
        body.insert("ConfigurationSetName".into(), json!(name));
    }
    if let Some(price) = &options.max_price_per_minute {
        body.insert("MaxPricePerMinute".into(), json!(price));
    }
    if let Some(ttl) = options.time_to_live_s {
        body.insert("TimeToLive".into(), json!(ttl));
    }
    Value::Object(body)
}

/// `<speak><break time="1s"/>script</speak>`. The script from `speak_passcode` already
/// separates the digits with commas (so each is read alone) and says the code twice; the
/// leading pause keeps the first words from being lost while the callee lifts the phone.
fn ssml(script: &str) -> String {
    format!("<speak><break time=\"1s\"/>{}</speak>", escape(script))
}

/// The `VoiceId` enum of the model (Polly voices, in capitals).
pub(crate) const VOICE_IDS: &[&str] = &[
    "AMY",
    "ASTRID",
    "BIANCA",
    "BRIAN",
    "CAMILA",
    "CARLA",
    "CARMEN",
    "CELINE",
    "CHANTAL",
    "CONCHITA",
    "CRISTIANO",
    "DORA",
    "EMMA",
    "ENRIQUE",
    "EWA",
    "FILIZ",
    "GERAINT",
    "GIORGIO",
    "GWYNETH",
    "HANS",
    "INES",
    "IVY",
    "JACEK",
    "JAN",
    "JOANNA",
    "JOEY",
    "JUSTIN",
    "KARL",
    "KENDRA",
    "KIMBERLY",
    "LEA",
    "LIV",
    "LOTTE",
    "LUCIA",
    "LUPE",
    "MADS",
    "MAJA",
    "MARLENE",
    "MATHIEU",
    "MATTHEW",
    "MAXIM",
    "MIA",
    "MIGUEL",
    "MIZUKI",
    "NAJA",
    "NICOLE",
    "PENELOPE",
    "RAVEENA",
    "RICARDO",
    "RUBEN",
    "RUSSELL",
    "SALLI",
    "SEOYEON",
    "TAKUMI",
    "TATYANA",
    "VICKI",
    "VITORIA",
    "ZEINA",
    "ZHIYU",
];

/// A voice per spoken language tag; the first entry of a language is its fallback. AWS picks
/// the language from the voice, so the voice must speak the script's language.
const VOICES: &[(&str, &str)] = &[
    ("en-US", "JOANNA"),
    ("en-GB", "AMY"),
    ("en-AU", "NICOLE"),
    ("en-IN", "RAVEENA"),
    ("fr-FR", "CELINE"),
    ("fr-CA", "CHANTAL"),
    ("de-DE", "MARLENE"),
    ("es-ES", "CONCHITA"),
    ("es-MX", "MIA"),
    ("es-US", "PENELOPE"),
    ("it-IT", "CARLA"),
    ("pt-BR", "VITORIA"),
    ("pt-PT", "INES"),
    ("nl-NL", "LOTTE"),
    ("sv-SE", "ASTRID"),
    ("da-DK", "NAJA"),
    ("nb-NO", "LIV"),
    ("pl-PL", "EWA"),
    ("ja-JP", "MIZUKI"),
];

fn voice_for(tag: &str) -> &'static str {
    let language = tag.split('-').next().unwrap_or(tag);
    VOICES
        .iter()
        .find(|(known, _)| known.eq_ignore_ascii_case(tag))
        .or_else(|| VOICES.iter().find(|(known, _)| known.split('-').next() == Some(language)))
        .map_or(VOICES[0].1, |(_, voice)| voice)
}

#[cfg(test)]
mod tests {
    use switchboard_core::Channel;

    use super::*;

    fn message(locale: Option<&str>) -> OutboundMessage {
        crate::testing::us_message(Channel::Sms, "Your code is 918273", locale)
    }

    #[test]
    fn text_message_has_only_what_is_configured() {
        let body = text_message(None, &Options::default(), &message(None));
        assert_eq!(
            body,
            json!({
                "DestinationPhoneNumber": "+14155550100",
                "MessageBody": "Your code is 918273",
                "MessageType": "TRANSACTIONAL",
            })
        );
        let options = Options {
            configuration_set_name: Some("otp".into()),
            max_price: Some("0.05".into()),
            max_price_per_minute: Some("0.10".into()),
            time_to_live_s: Some(300),
            voice_id: None,
        };
        let body = text_message(Some("+15550000000"), &options, &message(None));
        assert_eq!(body["OriginationIdentity"], "+15550000000");
        assert_eq!(body["ConfigurationSetName"], "otp");
        assert_eq!(body["MaxPrice"], "0.05");
        assert_eq!(body["TimeToLive"], 300);
        assert!(body.get("MaxPricePerMinute").is_none());
    }

    #[test]
    fn voice_message_reads_the_digits_in_ssml() {
        let body = voice_message("+15550000000", &Options::default(), &message(None));
        assert_eq!(body["MessageBodyTextType"], "SSML");
        assert_eq!(body["VoiceId"], "JOANNA");
        let ssml = body["MessageBody"].as_str().unwrap();
        assert!(ssml.starts_with("<speak><break time=\"1s\"/>Your verification code is 9, 1, 8"));
        assert!(ssml.ends_with("</speak>"));
        assert_eq!(ssml.matches("9, 1, 8, 2, 7, 3").count(), 2);
    }

    #[test]
    fn voice_follows_the_language_unless_configured() {
        let french = voice_message("+1", &Options::default(), &message(Some("fr-CA")));
        assert_eq!(french["VoiceId"], "CHANTAL");
        let belgian = voice_message("+1", &Options::default(), &message(Some("fr-BE")));
        assert_eq!(belgian["VoiceId"], "CELINE");
        let options = Options { voice_id: Some("MATTHEW".into()), ..Options::default() };
        assert_eq!(voice_message("+1", &options, &message(Some("fr-FR")))["VoiceId"], "MATTHEW");
        for (_, voice) in VOICES {
            assert!(VOICE_IDS.contains(voice), "{voice} is not in the model's enum");
        }
    }

    #[test]
    fn ssml_escapes_markup() {
        assert_eq!(ssml("a<b>&"), "<speak><break time=\"1s\"/>a&lt;b&gt;&amp;</speak>");
    }
}
