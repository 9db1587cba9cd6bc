//! Builds Telesign's form bodies (`POST /v1/messaging`, `POST /v1/voice`) and its request
//! authentication, as the official SDK (`telesign/rest.py`) does.
//!
//! HMAC ("TSA") signing, per `RestClient.generate_telesign_headers`:
//!
//! ```text
//! string_to_sign = METHOD "\n" content_type "\n" date
//!                  "\nx-ts-auth-method:HMAC-SHA256" "\nx-ts-nonce:" nonce
//!                  ["\n" url_encoded_body   (only when there is a content type and a body)]
//!                  "\n" resource_path
//! Authorization: TSA {customer_id}:base64(HMAC-SHA256(base64decode(api_key), string_to_sign))
//! ```
//!
//! The signature covers the exact body bytes sent, so the body is encoded once, here, and sent
//! as is. The forms hold the passcode and the phone number: they go to the wire and nowhere else.

use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use switchboard_core::{OutboundMessage, speak_passcode};

/// `Content-Type` of every POST.
pub(crate) const FORM: &str = "application/x-www-form-urlencoded";

/// `x-ts-auth-method` for the HMAC scheme.
pub(crate) const HMAC_METHOD: &str = "HMAC-SHA256";

/// The `/v1/messaging` form: `phone_number` (digits, no `+`), `message`, `message_type=OTP`,
/// then `sender_id` and `callback_url` when set.
pub(crate) fn messaging_form(
    message: &OutboundMessage,
    sender_id: Option<&str>,
    callback_url: Option<&str>,
) -> String {
    let mut form = vec![
        ("phone_number", message.destination.digits().to_owned()),
        ("message", message.text.expose().to_owned()),
        ("message_type", "OTP".to_owned()),
    ];
    if let Some(sender_id) = sender_id {
        form.push(("sender_id", sender_id.to_owned()));
    }
    if let Some(url) = callback_url {
        form.push(("callback_url", url.to_owned()));
    }
    encode(&form)
}

/// The `/v1/voice` form: `phone_number`, `message` (the script, digits spelt out one by one),
/// `message_type=OTP` and `voice`.
pub(crate) fn voice_form(message: &OutboundMessage, configured_voice: Option<&str>) -> String {
    let speech = speak_passcode(&message.passcode, message.locale.as_ref());
    let voice = configured_voice.map_or_else(|| voice_for(&speech.language_tag), str::to_owned);
    encode(&[
        ("phone_number", message.destination.digits().to_owned()),
        ("message", speech.text.expose().to_owned()),
        ("message_type", "OTP".to_owned()),
        ("voice", voice),
    ])
}

fn encode(form: &[(&str, String)]) -> String {
    // Encoding string pairs cannot fail.
    serde_urlencoded::to_string(form).unwrap_or_default()
}

/// Telesign voices (`f-` female, then the language tag). The research confirms `f-en-US`,
/// `f-en-GB` and `f-fr-FR`; the rest follow the same published naming and are unverified. The
/// first entry of a language is its fallback for regions without their own voice.
const VOICES: &[&str] = &[
    "en-US", "en-GB", "en-AU", "fr-FR", "fr-CA", "de-DE", "es-ES", "es-MX", "it-IT", "pt-BR",
    "pt-PT", "nl-NL", "sv-SE", "da-DK", "nb-NO", "pl-PL", "ja-JP",
];

/// The voice for a speech language tag: exact match, else the language's first, else US
/// English (the script is then English too, see `speak_passcode`).
fn voice_for(tag: &str) -> String {
    let language = tag.split('-').next().unwrap_or(tag);
    let known = VOICES
        .iter()
        .find(|known| known.eq_ignore_ascii_case(tag))
        .or_else(|| VOICES.iter().find(|known| known.split('-').next() == Some(language)))
        .unwrap_or(&VOICES[0]);
    format!("f-{known}")
}

/// Everything the HMAC scheme signs.
pub(crate) struct Signing<'a> {
    pub(crate) method: &'a str,
    /// `application/x-www-form-urlencoded` for POST, empty for GET.
    pub(crate) content_type: &'a str,
    /// RFC 2616 date, `Wed, 14 Dec 2016 18:20:12 GMT`.
    pub(crate) date: &'a str,
    pub(crate) nonce: &'a str,
    /// The url-encoded body as sent (empty for GET).
    pub(crate) body: &'a str,
    /// The path, `/v1/messaging`.
    pub(crate) resource: &'a str,
}

impl Signing<'_> {
    /// The SDK's `string_to_sign`.
    #[must_use]
    pub(crate) fn string_to_sign(&self) -> String {
        let mut text = format!(
            "{}\n{}\n{}\nx-ts-auth-method:{HMAC_METHOD}\nx-ts-nonce:{}",
            self.method, self.content_type, self.date, self.nonce
        );
        if !self.content_type.is_empty() && !self.body.is_empty() {
            text.push('\n');
            text.push_str(self.body);
        }
        text.push('\n');
        text.push_str(self.resource);
        text
    }

    /// `TSA {customer_id}:{signature}`.
    #[must_use]
    pub(crate) fn authorization(&self, customer_id: &str, key: &[u8]) -> String {
        format!("TSA {customer_id}:{}", signature(key, self.string_to_sign().as_bytes()))
    }
}

/// `base64(HMAC-SHA256(key, data))`: request signatures and callback signatures alike.
#[must_use]
pub(crate) fn signature(key: &[u8], data: &[u8]) -> String {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC-SHA256 accepts keys of any length");
    mac.update(data);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// A random UUID v4 in its text form, as the SDK's `uuid.uuid4()` nonce.
#[must_use]
pub(crate) fn nonce() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use switchboard_core::Channel;

    use super::*;

    /// The SDK's test key, `EXAMPLE----TE8s…`: Python's lenient base64 drops the dashes, so
    /// this is the same key in strict base64.
    const SDK_KEY: &str =
        "EXAMPLETE8sTgg45yusumoN6BYsBVkh+yRJ5czgsnCehZaOYldPJdmFh6NeX8kunZ2zU1YWaUw/0wV6xfw==";
    const SDK_CUSTOMER: &str = "FFFFFFFF-EEEE-DDDD-1234-AB1234567890";

    fn key() -> Vec<u8> {
        base64::engine::general_purpose::STANDARD.decode(SDK_KEY).unwrap()
    }

    fn sdk_signing<'a>(method: &'a str, content_type: &'a str, body: &'a str) -> Signing<'a> {
        Signing {
            method,
            content_type,
            date: "Wed, 14 Dec 2016 18:20:12 GMT",
            nonce: "A1592C6F-E384-4CDB-BC42-C3AB970369E9",
            body,
            resource: "/v1/resource",
        }
    }

    /// Vectors from python_telesign `tests/test_rest.py`.
    #[test]
    fn matches_the_sdk_signature_vectors() {
        let key = key();
        assert_eq!(
            sdk_signing("POST", FORM, "test=param").authorization(SDK_CUSTOMER, &key),
            "TSA FFFFFFFF-EEEE-DDDD-1234-AB1234567890:2xVlmbrxLjYrrPun3G3WMNG6Jon4yKcTeOoK9DjXJ/Q="
        );
        assert_eq!(
            sdk_signing("POST", FORM, "test=%CF%BF").authorization(SDK_CUSTOMER, &key),
            "TSA FFFFFFFF-EEEE-DDDD-1234-AB1234567890:h8d4I0RTxErbxYXuzCOtNqb/f0w3Ck8e5SEkGNj01+8="
        );
        assert_eq!(
            sdk_signing("GET", "", "").authorization(SDK_CUSTOMER, &key),
            "TSA FFFFFFFF-EEEE-DDDD-1234-AB1234567890:aUm7I+9GKl3ww7PNeeJntCT0iS7b+EmRKEE4LnRzChQ="
        );
    }

    /// Vector from python_telesign `tests/test_util.py` (callback signature over the raw body).
    #[test]
    fn matches_the_sdk_callback_vector() {
        assert_eq!(
            signature(&key(), b"{'test': 123}"),
            "B97g3N9lPdVaptvifxRau7bzVAC5hhRBZ6HKXABN744="
        );
    }

    #[test]
    fn string_to_sign_has_the_sdk_layout() {
        let text = sdk_signing("POST", FORM, "a=1").string_to_sign();
        assert_eq!(
            text,
            "POST\napplication/x-www-form-urlencoded\nWed, 14 Dec 2016 18:20:12 GMT\n\
             x-ts-auth-method:HMAC-SHA256\nx-ts-nonce:A1592C6F-E384-4CDB-BC42-C3AB970369E9\n\
             a=1\n/v1/resource"
        );
    }

    fn message(locale: Option<&str>) -> OutboundMessage {
        crate::testing::outbound(
            "+447700900123",
            "GB",
            Channel::Sms,
            "918273",
            "Your code is 918273 & more",
            locale,
        )
    }

    #[test]
    fn messaging_form_has_telesigns_fields() {
        let form = messaging_form(&message(None), Some("Acme"), Some("https://x/cb/status"));
        assert_eq!(
            form,
            "phone_number=447700900123&message=Your+code+is+918273+%26+more&message_type=OTP\
             &sender_id=Acme&callback_url=https%3A%2F%2Fx%2Fcb%2Fstatus"
        );
        assert_eq!(
            messaging_form(&message(None), None, None),
            "phone_number=447700900123&message=Your+code+is+918273+%26+more&message_type=OTP"
        );
    }

    #[test]
    fn voice_form_spells_the_digits_in_the_users_language() {
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(&voice_form(&message(Some("fr-CA")), None)).unwrap();
        assert_eq!(pairs[0], ("phone_number".into(), "447700900123".into()));
        assert!(pairs[1].1.starts_with("Votre code"), "{}", pairs[1].1);
        assert_eq!(pairs[1].1.matches("9, 1, 8, 2, 7, 3").count(), 2);
        assert_eq!(pairs[2], ("message_type".into(), "OTP".into()));
        assert_eq!(pairs[3], ("voice".into(), "f-fr-CA".into()));
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(&voice_form(&message(Some("fr-BE")), None)).unwrap();
        assert_eq!(pairs[3].1, "f-fr-FR");
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(&voice_form(&message(None), Some("m-en-GB"))).unwrap();
        assert_eq!(pairs[3].1, "m-en-GB");
    }

    #[test]
    fn nonces_are_uuid_v4() {
        let (first, second) = (nonce(), nonce());
        assert_ne!(first, second);
        assert_eq!(first.len(), 36);
        assert_eq!(&first[14..15], "4");
        assert_eq!(first.matches('-').count(), 4);
    }
}
