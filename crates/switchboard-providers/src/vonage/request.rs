//! Builds Vonage's requests: the SMS API form (spec `sms.yml` `NewMessage`), its `sig`, the
//! Voice API call with an NCCO `talk` action (spec `CreateCallRequestNcco`, `ncco-schema.json`),
//! and the application JWT that authorises a call.
//!
//! The forms and bodies hold the passcode and the phone number: they go to the wire and nowhere
//! else.

use std::collections::BTreeMap;

use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use secrecy::ExposeSecret;
use serde::Serialize;
use serde_json::{Value, json};
use switchboard_core::{OutboundMessage, speak_passcode};

use super::config::{SignatureMethod, SmsAccount, SmsAuth};
use switchboard_core::text::{Encoding, encoding};

/// Vonage's `type`: `text` when the text encodes in GSM-7, else `unicode`. The alphabet is the
/// core's (`switchboard_core::text::encoding`), the one segment counts and prices use.
pub(crate) fn sms_type(text: &str) -> &'static str {
    match encoding(text) {
        Encoding::Gsm7 => "text",
        Encoding::Ucs2 => "unicode",
    }
}

/// One form body, as `(field, value)` pairs in the order sent.
pub(crate) type Form = Vec<(&'static str, String)>;

/// Vonage's limit on `client-ref`.
const MAX_CLIENT_REF: usize = 40;

/// Vonage numbers are digits only: no `+`.
pub(crate) fn digits(e164: &str) -> String {
    e164.trim_start_matches('+').to_owned()
}

/// The `POST /sms/json` form: credentials (or `timestamp` and `sig`), `from`, `to`, `text`,
/// `type`, and the receipt request when `callback` is given.
pub(crate) fn sms_form(
    account: &SmsAccount,
    sender: &str,
    ttl_ms: Option<u32>,
    callback: Option<&str>,
    message: &OutboundMessage,
    unix_now: u64,
) -> Form {
    let text = message.text.expose();
    let mut form: Form = vec![("api_key", account.api_key.clone())];
    if let SmsAuth::Secret(secret) = &account.auth {
        form.push(("api_secret", secret.expose_secret().to_owned()));
    }
    // An alphanumeric sender goes as written; numbers lose their `+`.
    let from = if sender.starts_with('+') { digits(sender) } else { sender.to_owned() };
    form.push(("from", from));
    form.push(("to", digits(message.destination.e164())));
    form.push(("text", text.to_owned()));
    // Without `unicode`, Vonage sends non-GSM characters as `?`.
    form.push(("type", sms_type(text).to_owned()));
    if let Some(ttl) = ttl_ms {
        form.push(("ttl", ttl.to_string()));
    }
    let client_ref: String = message.reference.chars().take(MAX_CLIENT_REF).collect();
    if !client_ref.is_empty() {
        form.push(("client-ref", client_ref));
    }
    match callback {
        Some(url) => {
            form.push(("status-report-req", "true".to_owned()));
            form.push(("callback", url.to_owned()));
        }
        None => form.push(("status-report-req", "false".to_owned())),
    }
    if let SmsAuth::Signature(secret, method) = &account.auth {
        form.push(("timestamp", unix_now.to_string()));
        let params: BTreeMap<&str, &str> =
            form.iter().map(|(key, value)| (*key, value.as_str())).collect();
        let sig = signature(&params, secret.expose_secret(), *method);
        form.push(("sig", sig));
    }
    form
}

/// Vonage's request signature over `params` (every parameter but `sig`), lower-case hex.
///
/// Keys in byte order, each fed as `&key=value` with `&` and `=` inside values replaced by `_`;
/// then `md5hash` appends the secret and hashes, the others take an HMAC keyed with it
/// (vonage-python-sdk `vonage_http_client/auth.py`).
#[must_use]
pub(crate) fn signature(
    params: &BTreeMap<&str, &str>,
    secret: &str,
    method: SignatureMethod,
) -> String {
    let mut concatenated = String::new();
    for (key, value) in params {
        if *key == "sig" {
            continue;
        }
        concatenated.push('&');
        concatenated.push_str(key);
        concatenated.push('=');
        concatenated.push_str(&value.replace(['&', '='], "_"));
    }
    let bytes = concatenated.as_bytes();
    let key = secret.as_bytes();
    // `new_from_slice` accepts keys of any length for HMAC.
    match method {
        SignatureMethod::Md5Hash => {
            let mut hasher = Md5::new();
            hasher.update(bytes);
            hasher.update(key);
            hex::encode(hasher.finalize())
        }
        SignatureMethod::Md5 => hmac_hex::<Hmac<Md5>>(key, bytes),
        SignatureMethod::Sha1 => hmac_hex::<Hmac<sha1::Sha1>>(key, bytes),
        SignatureMethod::Sha256 => hmac_hex::<Hmac<sha2::Sha256>>(key, bytes),
        SignatureMethod::Sha512 => hmac_hex::<Hmac<sha2::Sha512>>(key, bytes),
    }
}

fn hmac_hex<M: Mac + hmac::digest::KeyInit>(key: &[u8], data: &[u8]) -> String {
    let mut mac = <M as hmac::digest::KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(data);
    hex::encode(mac.finalize().into_bytes())
}

/// Settings of a call besides its destination.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CallSettings<'a> {
    pub(crate) caller_id: &'a str,
    pub(crate) event_url: Option<&'a str>,
    pub(crate) ringing_timer_s: u32,
    pub(crate) length_timer_s: u32,
}

/// The `POST /v1/calls` body: one phone leg, the NCCO inline, and `event_url` when receipts are
/// wanted.
pub(crate) fn call_body(settings: &CallSettings<'_>, message: &OutboundMessage) -> Value {
    let mut body = json!({
        "to": [{"type": "phone", "number": digits(message.destination.e164())}],
        "from": {"type": "phone", "number": digits(settings.caller_id)},
        "ncco": ncco(message),
        "ringing_timer": settings.ringing_timer_s,
        "length_timer": settings.length_timer_s,
    });
    if let Some(url) = settings.event_url {
        body["event_url"] = json!([url]);
        body["event_method"] = json!("POST");
    }
    body
}

/// `[{"action":"talk", "text", "language", "style": 0, "bargeIn": false, "loop": 1}]`.
///
/// The script already says the code twice, so the talk action plays once.
pub(crate) fn ncco(message: &OutboundMessage) -> Value {
    let speech = speak_passcode(&message.passcode, message.locale.as_ref());
    json!([{
        "action": "talk",
        "text": speech.text.expose(),
        "language": talk_language(&speech.language_tag),
        "style": 0,
        "bargeIn": false,
        "loop": 1,
    }])
}

/// The NCCO `talk` languages (`ncco-schema.json` `definitions.languages`).
const TALK_LANGUAGES: &[&str] = &[
    "ar",
    "bn-IN",
    "ca-ES",
    "cmn-CN",
    "cmn-TW",
    "cs-CZ",
    "cy-GB",
    "da-DK",
    "de-DE",
    "el-GR",
    "en-AU",
    "en-GB",
    "en-GB-WLS",
    "en-IN",
    "en-US",
    "en-ZA",
    "es-ES",
    "es-MX",
    "es-US",
    "eu-ES",
    "fi-FI",
    "fil-PH",
    "fr-CA",
    "fr-FR",
    "he-IL",
    "hi-IN",
    "hu-HU",
    "id-ID",
    "is-IS",
    "it-IT",
    "ja-JP",
    "ko-KR",
    "ml-IN",
    "nb-NO",
    "nl-NL",
    "pl-PL",
    "pt-BR",
    "pt-PT",
    "ro-RO",
    "ru-RU",
    "sk-SK",
    "sv-SE",
    "ta-IN",
    "te-IN",
    "th-TH",
    "tr-TR",
    "uk-UA",
    "vi-VN",
    "yue-CN",
];

/// The talk language for `tag`: the tag itself when Vonage has it, else the first of the same
/// language (`fr-BE` speaks as `fr-CA`), else US English. A language outside the enum makes
/// Vonage refuse the whole call.
pub(crate) fn talk_language(tag: &str) -> &'static str {
    let language = tag.split('-').next().unwrap_or(tag);
    TALK_LANGUAGES
        .iter()
        .find(|known| known.eq_ignore_ascii_case(tag))
        .or_else(|| TALK_LANGUAGES.iter().find(|known| known.split('-').next() == Some(language)))
        .copied()
        .unwrap_or("en-US")
}

/// The claims of the application JWT (vonage-python-sdk `vonage_jwt/jwt.py`).
#[derive(Debug, Serialize)]
pub(crate) struct ApplicationClaims<'a> {
    pub(crate) application_id: &'a str,
    pub(crate) iat: u64,
    pub(crate) exp: u64,
    pub(crate) jti: String,
}

/// How long an application JWT is valid. Short: each call signs a fresh one.
pub(crate) const JWT_LIFETIME_S: u64 = 300;

#[cfg(test)]
mod tests {
    #[test]
    fn recognises_gsm7() {
        let is_gsm7 = |text: &str| super::sms_type(text) == "text";
        assert!(is_gsm7("Your Acme code is 123456 {€}"));
        assert!(!is_gsm7("Votre code: 123456 ✓"));
        assert!(!is_gsm7("確認コード 123456"));
        assert!(is_gsm7("Code: 123456 é ñ Ç"));
        assert!(!is_gsm7("código ó"), "ó is not in the GSM default alphabet");
    }

    use secrecy::SecretString;
    use switchboard_core::Channel;

    use super::*;

    fn message(text: &str, locale: Option<&str>) -> OutboundMessage {
        crate::testing::us_message(Channel::Sms, text, locale)
    }

    fn secret_account() -> SmsAccount {
        SmsAccount {
            api_key: "abcd1234".into(),
            auth: SmsAuth::Secret(SecretString::from("s3cret")),
        }
    }

    #[test]
    fn sms_form_has_vonages_fields() {
        let form = sms_form(
            &secret_account(),
            "+15005550006",
            None,
            None,
            &message("Code 918273", None),
            0,
        );
        assert_eq!(
            form,
            [
                ("api_key", "abcd1234".to_owned()),
                ("api_secret", "s3cret".to_owned()),
                ("from", "15005550006".to_owned()),
                ("to", "14155550100".to_owned()),
                ("text", "Code 918273".to_owned()),
                ("type", "text".to_owned()),
                ("client-ref", "evt-1".to_owned()),
                ("status-report-req", "false".to_owned()),
            ]
        );
        let with_receipt = sms_form(
            &secret_account(),
            "Acme",
            Some(60_000),
            Some("https://hook.example/callbacks/v/sms"),
            &message("Code: 918273 ✓", None),
            0,
        );
        let get =
            |name: &str| with_receipt.iter().find(|(key, _)| *key == name).map(|(_, v)| v.as_str());
        assert_eq!(get("from"), Some("Acme"));
        assert_eq!(get("type"), Some("unicode"));
        assert_eq!(get("ttl"), Some("60000"));
        assert_eq!(get("status-report-req"), Some("true"));
        assert_eq!(get("callback"), Some("https://hook.example/callbacks/v/sms"));
    }

    #[test]
    fn signed_forms_carry_timestamp_and_sig_but_no_secret() {
        let account = SmsAccount {
            api_key: "abcd1234".into(),
            auth: SmsAuth::Signature(SecretString::from("sigsecret"), SignatureMethod::Md5Hash),
        };
        let form =
            sms_form(&account, "+15005550006", None, None, &message("hi", None), 1_700_000_000);
        assert!(form.iter().all(|(key, _)| *key != "api_secret"));
        assert_eq!(form[form.len() - 2], ("timestamp", "1700000000".to_owned()));
        let (key, sig) = &form[form.len() - 1];
        assert_eq!(*key, "sig");
        let params: BTreeMap<&str, &str> =
            form.iter().map(|(key, value)| (*key, value.as_str())).collect();
        assert_eq!(*sig, signature(&params, "sigsecret", SignatureMethod::Md5Hash));
    }

    #[test]
    fn signatures_match_known_values() {
        // `&a=1&b=x_y_z` with secret `secret`, computed independently (Python hashlib/hmac).
        let params: BTreeMap<&str, &str> = [("b", "x&y=z"), ("a", "1"), ("sig", "ignored")].into();
        assert_eq!(
            signature(&params, "secret", SignatureMethod::Md5Hash),
            "d088c52d7310db7e614291e02965665f"
        );
        assert_eq!(
            signature(&params, "secret", SignatureMethod::Sha256),
            "df118f87671493df4adacdac13cfe0589acd128b696c2eecf46e96e6494c11f5"
        );
    }

    #[test]
    fn call_body_reads_the_digits_in_the_users_language() {
        let settings = CallSettings {
            caller_id: "+15005550006",
            event_url: Some("https://hook.example/callbacks/v/voice"),
            ringing_timer_s: 45,
            length_timer_s: 90,
        };
        let body = call_body(&settings, &message("", Some("fr-BE")));
        assert_eq!(body["to"][0], json!({"type": "phone", "number": "14155550100"}));
        assert_eq!(body["from"], json!({"type": "phone", "number": "15005550006"}));
        assert_eq!(body["event_url"], json!(["https://hook.example/callbacks/v/voice"]));
        let talk = &body["ncco"][0];
        assert_eq!(talk["action"], "talk");
        assert_eq!(talk["language"], "fr-CA");
        assert!(talk["text"].as_str().unwrap().starts_with("Votre code"));
        assert_eq!(talk["text"].as_str().unwrap().matches("9, 1, 8, 2, 7, 3").count(), 2);
        let without = call_body(&CallSettings { event_url: None, ..settings }, &message("", None));
        assert!(without.get("event_url").is_none() && without.get("event_method").is_none());
    }

    #[test]
    fn talk_languages_fall_back_within_the_language() {
        assert_eq!(talk_language("en-GB"), "en-GB");
        assert_eq!(talk_language("de-AT"), "de-DE");
        assert_eq!(talk_language("nb-NO"), "nb-NO");
        assert_eq!(talk_language("xx-YY"), "en-US");
        for language in ["en", "fr", "de", "es", "it", "pt", "nl", "sv", "da", "nb", "pl", "ja"] {
            assert!(talk_language(language).starts_with(language), "{language}");
        }
    }
}
