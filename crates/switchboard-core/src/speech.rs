//! What a voice call says: the passcode read one digit at a time, in the user's language where
//! we have a phrase for it, repeated so a user who missed it the first time hears it again.
//!
//! Shared by every voice adapter; each wraps the text in its own markup (TwiML `<Say>`, Vonage
//! NCCO `talk`, SSML for AWS).

use crate::domain::{Locale, MessageText, Passcode};

/// One language's phrasing. `tag` is the BCP 47 tag text-to-speech engines expect.
struct Phrasing {
    language: &'static str,
    tag: &'static str,
    intro: &'static str,
    again: &'static str,
}

/// Languages with a translated phrase. The first entry is the fallback.
const PHRASINGS: &[Phrasing] = &[
    Phrasing {
        language: "en",
        tag: "en-US",
        intro: "Your verification code is",
        again: "Again, your code is",
    },
    Phrasing {
        language: "fr",
        tag: "fr-FR",
        intro: "Votre code de vérification est",
        again: "Je répète, votre code est",
    },
    Phrasing {
        language: "de",
        tag: "de-DE",
        intro: "Ihr Bestätigungscode lautet",
        again: "Noch einmal, Ihr Code lautet",
    },
    Phrasing {
        language: "es",
        tag: "es-ES",
        intro: "Su código de verificación es",
        again: "Repito, su código es",
    },
    Phrasing {
        language: "it",
        tag: "it-IT",
        intro: "Il suo codice di verifica è",
        again: "Ripeto, il suo codice è",
    },
    Phrasing {
        language: "pt",
        tag: "pt-BR",
        intro: "O seu código de verificação é",
        again: "Repetindo, o seu código é",
    },
    Phrasing {
        language: "nl",
        tag: "nl-NL",
        intro: "Uw verificatiecode is",
        again: "Nogmaals, uw code is",
    },
    Phrasing {
        language: "sv",
        tag: "sv-SE",
        intro: "Din verifieringskod är",
        again: "En gång till, din kod är",
    },
    Phrasing {
        language: "da",
        tag: "da-DK",
        intro: "Din bekræftelseskode er",
        again: "Igen, din kode er",
    },
    Phrasing {
        language: "nb",
        tag: "nb-NO",
        intro: "Din bekreftelseskode er",
        again: "Igjen, koden din er",
    },
    Phrasing {
        language: "pl",
        tag: "pl-PL",
        intro: "Twój kod weryfikacyjny to",
        again: "Powtarzam, twój kod to",
    },
    Phrasing {
        language: "ja",
        tag: "ja-JP",
        intro: "確認コードは",
        again: "もう一度、確認コードは",
    },
];

/// The text of a voice call and the language to speak it in.
#[derive(Debug, Clone)]
pub struct Speech {
    /// BCP 47 tag for the TTS engine (`en-US`, `fr-FR`; `en-GB` when the user's region says so).
    pub language_tag: String,
    /// The full script; contains the passcode, so it is a [`MessageText`].
    pub text: MessageText,
}

/// Builds the call script for `passcode` in `locale`'s language (English when unknown).
///
/// Digits are separated by `", "` so every TTS engine reads them one by one instead of as a
/// number ("one, two, three", not "one hundred twenty-three").
#[must_use]
pub fn speak_passcode(passcode: &Passcode, locale: Option<&Locale>) -> Speech {
    let phrasing = locale
        .and_then(|locale| PHRASINGS.iter().find(|p| p.language == locale.language()))
        .unwrap_or(&PHRASINGS[0]);
    let language_tag = match locale.and_then(Locale::region) {
        // Keep the user's own region when the language matched (en-GB, fr-CA, pt-PT).
        Some(region) if locale.is_some_and(|l| l.language() == phrasing.language) => {
            format!("{}-{}", phrasing.language, region)
        }
        _ => phrasing.tag.to_owned(),
    };
    let digits = spaced_digits(passcode.expose());
    let text = format!("{} {digits}. {} {digits}.", phrasing.intro, phrasing.again);
    Speech { language_tag, text: MessageText::new(text) }
}

/// `"123"` -> `"1, 2, 3"`.
fn spaced_digits(code: &str) -> String {
    let mut out = String::with_capacity(code.len() * 3);
    for (index, digit) in code.chars().enumerate() {
        if index > 0 {
            out.push_str(", ");
        }
        out.push(digit);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_digits_one_by_one_twice() {
        let speech = speak_passcode(&Passcode::parse("918273").unwrap(), None);
        assert_eq!(speech.language_tag, "en-US");
        assert_eq!(speech.text.expose().matches("9, 1, 8, 2, 7, 3").count(), 2);
    }

    #[test]
    fn follows_the_users_language_and_region() {
        let code = Passcode::parse("1234").unwrap();
        let french = speak_passcode(&code, Locale::parse("fr-CA").as_ref());
        assert_eq!(french.language_tag, "fr-CA");
        assert!(french.text.expose().starts_with("Votre code"));
        let british = speak_passcode(&code, Locale::parse("EN-GB").as_ref());
        assert_eq!(british.language_tag, "en-GB");
        let unknown = speak_passcode(&code, Locale::parse("xx-YY").as_ref());
        assert_eq!(unknown.language_tag, "en-US");
        assert!(unknown.text.expose().starts_with("Your verification code"));
    }
}
