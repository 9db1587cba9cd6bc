//! Domain nouns shared by every crate: channels, countries, provider ids, purposes, locales and
//! the secrets that travel with a delivery (passcode, message text). A destination number is in
//! `destination.rs`, the message an adapter sends in `message.rs`.
//!
//! None of these is a wire type: Okta's JSON lives in the server, provider JSON in the adapters.

use std::fmt;
use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};

/// How a passcode reaches the user.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Channel {
    /// A text message.
    Sms,
    /// A phone call that reads the code aloud.
    Voice,
}

impl Channel {
    /// Both channels, in a stable order (for iteration and metrics).
    pub const ALL: [Channel; 2] = [Channel::Sms, Channel::Voice];

    /// Lower-case name used in config, logs and metric labels.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Sms => "sms",
            Channel::Voice => "voice",
        }
    }

    /// Parses the config spelling (`sms`, `voice`), case-insensitively.
    pub fn parse(text: &str) -> Option<Channel> {
        if text.eq_ignore_ascii_case("sms") {
            Some(Channel::Sms)
        } else if text.eq_ignore_ascii_case("voice") {
            Some(Channel::Voice)
        } else {
            None
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An ISO 3166-1 alpha-2 country code, upper case (`US`, `GB`), or [`Country::UNKNOWN`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Country([u8; 2]);

impl Country {
    /// The country of a number the metadata cannot place (an unknown range under a calling code
    /// several countries share, like +1). Printed `unknown`; no configuration can name it, so no
    /// country list, price or cap ever applies to it by mistake.
    pub const UNKNOWN: Country = Country(*b"??");

    /// Whether this is [`Country::UNKNOWN`].
    #[must_use]
    pub fn is_unknown(self) -> bool {
        self == Country::UNKNOWN
    }

    /// Parses two ASCII letters, any case.
    pub fn parse(text: &str) -> Option<Country> {
        let bytes = text.as_bytes();
        if bytes.len() == 2 && bytes.iter().all(u8::is_ascii_alphabetic) {
            Some(Country([bytes[0].to_ascii_uppercase(), bytes[1].to_ascii_uppercase()]))
        } else {
            None
        }
    }

    /// The two upper-case letters, or `unknown`.
    #[must_use]
    pub fn as_str(&self) -> &str {
        if self.is_unknown() {
            return "unknown";
        }
        // Constructed only from ASCII letters, so this cannot fail.
        std::str::from_utf8(&self.0).unwrap_or("unknown")
    }
}

impl fmt::Display for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Country({})", self.as_str())
    }
}

/// The operator's name for one configured provider account (`twilio-us`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProviderId(Arc<str>);

impl ProviderId {
    /// Accepts 1 to 64 characters of ASCII letters, digits, `-` and `_`.
    pub fn parse(text: &str) -> Option<ProviderId> {
        let is_valid = !text.is_empty()
            && text.len() <= 64
            && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        is_valid.then(|| ProviderId(Arc::from(text)))
    }

    /// The id as written in config.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ProviderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ProviderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProviderId({})", &self.0)
    }
}

/// Why Okta asked for the passcode. Okta's `requestType`, as a bounded set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Purpose {
    /// Enrolling a phone factor.
    Enrollment,
    /// Sign-in MFA challenge.
    Verification,
    /// Self-service account unlock.
    AccountUnlock,
    /// Self-service password reset.
    PasswordReset,
    /// A request type this version does not know.
    Other,
}

impl Purpose {
    /// Every purpose, in a stable order (for iteration and metrics).
    pub const ALL: [Purpose; 5] = [
        Purpose::Enrollment,
        Purpose::Verification,
        Purpose::AccountUnlock,
        Purpose::PasswordReset,
        Purpose::Other,
    ];

    /// Parses the config spelling (`verification`, `password_reset`, ...), case-insensitively.
    pub fn parse(text: &str) -> Option<Purpose> {
        Purpose::ALL.into_iter().find(|purpose| purpose.as_str().eq_ignore_ascii_case(text))
    }

    /// Lower-case name used in config, logs and metric labels.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Enrollment => "enrollment",
            Purpose::Verification => "verification",
            Purpose::AccountUnlock => "account_unlock",
            Purpose::PasswordReset => "password_reset",
            Purpose::Other => "other",
        }
    }
}

/// A one-time passcode. Only digits; `Debug` and `Display` redact it.
#[derive(Clone)]
pub struct Passcode(SecretString);

impl Passcode {
    /// Accepts 4 to 10 ASCII digits.
    pub fn parse(text: &str) -> Option<Passcode> {
        let is_valid = (4..=10).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit());
        is_valid.then(|| Passcode(SecretString::from(text.to_owned())))
    }

    /// The digits. Call only where the code is put on the wire to a provider.
    #[must_use]
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for Passcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Passcode(***)")
    }
}

impl fmt::Display for Passcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Text that contains a passcode (an SMS body, a voice script). `Debug` and `Display` redact it.
#[derive(Clone)]
pub struct MessageText(SecretString);

impl MessageText {
    /// Wraps text that must never be logged.
    #[must_use]
    pub fn new(text: String) -> MessageText {
        MessageText(SecretString::from(text))
    }

    /// The text. Call only where the text is put on the wire to a provider.
    #[must_use]
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for MessageText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MessageText(***)")
    }
}

impl fmt::Display for MessageText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A BCP 47-ish locale as Okta sends it (`EN-US`, `fr`), normalised to `en-US` form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Locale {
    language: String,
    region: Option<String>,
}

impl Locale {
    /// Parses `ll`, `ll-RR` or `ll_RR`, any case; anything else gives `None`.
    pub fn parse(text: &str) -> Option<Locale> {
        let mut parts = text.trim().split(['-', '_']);
        let language = parts.next()?;
        if !(2..=3).contains(&language.len()) || !language.bytes().all(|b| b.is_ascii_alphabetic())
        {
            return None;
        }
        let region = match parts.next() {
            Some(region)
                if region.len() == 2 && region.bytes().all(|b| b.is_ascii_alphabetic()) =>
            {
                Some(region.to_ascii_uppercase())
            }
            Some(_) => return None,
            None => None,
        };
        Some(Locale { language: language.to_ascii_lowercase(), region })
    }

    /// Lower-case language subtag (`en`).
    #[must_use]
    pub fn language(&self) -> &str {
        &self.language
    }

    /// Upper-case region subtag (`US`), if any.
    #[must_use]
    pub fn region(&self) -> Option<&str> {
        self.region.as_deref()
    }

    /// `en-US` or `en`.
    #[must_use]
    pub fn tag(&self) -> String {
        match &self.region {
            Some(region) => format!("{}-{}", self.language, region),
            None => self.language.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passcode_accepts_four_to_ten_digits_only() {
        assert!(Passcode::parse("1234").is_some());
        assert!(Passcode::parse("1234567890").is_some());
        assert!(Passcode::parse("123").is_none());
        assert!(Passcode::parse("12345678901").is_none());
        assert!(Passcode::parse("12a4").is_none());
    }

    #[test]
    fn locale_normalises_okta_spelling() {
        let locale = Locale::parse("EN-US").unwrap();
        assert_eq!(locale.tag(), "en-US");
        assert_eq!(Locale::parse("fr").unwrap().tag(), "fr");
        assert_eq!(Locale::parse("pt_br").unwrap().tag(), "pt-BR");
        assert!(Locale::parse("english").is_none());
    }

    #[test]
    fn ids_and_countries_validate() {
        assert_eq!(Country::parse("gb").unwrap().as_str(), "GB");
        // The unknown country prints plainly and no spelling parses to it.
        assert_eq!(Country::UNKNOWN.to_string(), "unknown");
        assert!(Country::UNKNOWN.is_unknown() && !Country::parse("US").unwrap().is_unknown());
        assert!(
            ["??", "unknown", "ZZ"]
                .iter()
                .all(|text| Country::parse(text) != Some(Country::UNKNOWN))
        );
        assert!(Country::parse("GBR").is_none());
        assert!(ProviderId::parse("twilio-us_1").is_some());
        assert!(ProviderId::parse("twilio us").is_none());
        assert!(ProviderId::parse("").is_none());
    }
}
