//! Sender ids and numbers, per channel and per destination country, shared by every provider's
//! config so operators write them the same way everywhere:
//!
//! ```toml
//! from = "+15005550006"            # default sender (SMS, and voice unless voice_from is set)
//! voice_from = "+15005550007"      # optional default caller id for calls
//! [providers.x.senders.GB]         # optional per-country overrides
//! sms = "Acme"                     # alphanumeric sender where the country allows it
//! voice = "+447700900001"
//! max_per_second = 10              # optional: the throughput granted to this country's sender
//! ```

use std::collections::BTreeMap;
use std::num::NonZeroU32;

use serde::Deserialize;
use switchboard_core::{Channel, ConfigError, Country};

/// `[providers.<id>.senders.<CC>]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CountrySenderConfig {
    /// SMS sender for this country.
    #[serde(default)]
    pub sms: Option<String>,
    /// Caller id for calls to this country.
    #[serde(default)]
    pub voice: Option<String>,
    /// The throughput the provider grants this country's sender, in messages and calls per
    /// second (a long code's 1, a registered sender's campaign MPS); sends to the country take
    /// from it as well as from the account's `max_per_second`. Unset: no cap of its own.
    #[serde(default)]
    pub max_per_second: Option<u32>,
}

/// The per-country senders' throughput caps, by country (entries that do not parse are left
/// out: [`Senders::try_new`] refuses them).
pub(crate) fn caps(
    by_country: &BTreeMap<String, CountrySenderConfig>,
) -> BTreeMap<Country, NonZeroU32> {
    by_country
        .iter()
        .filter_map(|(code, config)| {
            Some((Country::parse(code)?, NonZeroU32::new(config.max_per_second?)?))
        })
        .collect()
}

/// Validated senders: a default per channel and overrides per country.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Senders {
    sms: Option<String>,
    voice: Option<String>,
    by_country: BTreeMap<Country, (Option<String>, Option<String>)>,
}

impl Senders {
    /// Validates `from`, `voice_from` and `senders` of the provider at `key`
    /// (`providers.twilio-us`). A sender is an E.164 number, a short code (3-8 digits) or an
    /// alphanumeric id (1-11 letters, digits, spaces; at least one letter); calls need a number.
    pub fn try_new(
        key: &str,
        from: Option<&str>,
        voice_from: Option<&str>,
        by_country: &BTreeMap<String, CountrySenderConfig>,
    ) -> Result<Senders, ConfigError> {
        let sms =
            from.map(|s| check_sender(&format!("{key}.from"), s, Channel::Sms)).transpose()?;
        let voice_default = voice_from.or(from.filter(|s| is_phone_number(s)));
        let voice = match voice_from {
            Some(s) => Some(check_sender(&format!("{key}.voice_from"), s, Channel::Voice)?),
            None => voice_default.map(str::to_owned),
        };
        let mut countries = BTreeMap::new();
        for (code, config) in by_country {
            let country_key = format!("{key}.senders.{code}");
            let country = Country::parse(code).ok_or_else(|| {
                ConfigError::invalid(&country_key, "is not an ISO 3166-1 alpha-2 country code")
            })?;
            let sms = config
                .sms
                .as_deref()
                .map(|s| check_sender(&format!("{country_key}.sms"), s, Channel::Sms))
                .transpose()?;
            let voice = config
                .voice
                .as_deref()
                .map(|s| check_sender(&format!("{country_key}.voice"), s, Channel::Voice))
                .transpose()?;
            if sms.is_none() && voice.is_none() {
                return Err(ConfigError::invalid(country_key, "give sms, voice or both"));
            }
            crate::throughput::check_max_per_second(&country_key, config.max_per_second)?;
            countries.insert(country, (sms, voice));
        }
        Ok(Senders { sms, voice, by_country: countries })
    }

    /// The sender for a message to `country` on `channel`: the country's override, else the
    /// channel default. `None` means this provider cannot send there on that channel.
    #[must_use]
    pub fn for_destination(&self, country: Country, channel: Channel) -> Option<&str> {
        let (sms, voice) = match self.by_country.get(&country) {
            Some((sms, voice)) => {
                (sms.as_deref().or(self.sms.as_deref()), voice.as_deref().or(self.voice.as_deref()))
            }
            None => (self.sms.as_deref(), self.voice.as_deref()),
        };
        match channel {
            Channel::Sms => sms,
            Channel::Voice => voice,
        }
    }

    /// Whether any destination can be reached on `channel`.
    #[must_use]
    pub fn supports(&self, channel: Channel) -> bool {
        match channel {
            Channel::Sms => {
                self.sms.is_some() || self.by_country.values().any(|(sms, _)| sms.is_some())
            }
            Channel::Voice => {
                self.voice.is_some() || self.by_country.values().any(|(_, voice)| voice.is_some())
            }
        }
    }
}

/// `+` and 7 to 15 digits.
#[must_use]
pub fn is_phone_number(text: &str) -> bool {
    text.strip_prefix('+').is_some_and(|digits| {
        (7..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
    })
}

fn check_sender(key: &str, text: &str, channel: Channel) -> Result<String, ConfigError> {
    let is_short_code = (3..=8).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit());
    let is_alphanumeric = (1..=11).contains(&text.len())
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b' ')
        && text.bytes().any(|b| b.is_ascii_alphabetic());
    match channel {
        Channel::Voice if !is_phone_number(text) => Err(ConfigError::invalid(
            key,
            "a caller id must be an E.164 number (+ and 7 to 15 digits)",
        )),
        Channel::Sms if !(is_phone_number(text) || is_short_code || is_alphanumeric) => {
            Err(ConfigError::invalid(
                key,
                "a sender is an E.164 number, a 3-8 digit short code, or 1-11 letters, digits and spaces",
            ))
        }
        _ => Ok(text.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn country(code: &str) -> Country {
        Country::parse(code).unwrap()
    }

    #[test]
    fn country_overrides_fall_back_to_channel_defaults() {
        let mut by_country = BTreeMap::new();
        by_country.insert(
            "GB".to_owned(),
            CountrySenderConfig { sms: Some("Acme".into()), voice: None, max_per_second: None },
        );
        by_country.insert(
            "fr".to_owned(),
            CountrySenderConfig {
                sms: None,
                voice: Some("+33123456789".into()),
                max_per_second: None,
            },
        );
        let senders =
            Senders::try_new("providers.p", Some("+15005550006"), None, &by_country).unwrap();
        assert_eq!(senders.for_destination(country("GB"), Channel::Sms), Some("Acme"));
        assert_eq!(senders.for_destination(country("GB"), Channel::Voice), Some("+15005550006"));
        assert_eq!(senders.for_destination(country("FR"), Channel::Voice), Some("+33123456789"));
        assert_eq!(senders.for_destination(country("US"), Channel::Sms), Some("+15005550006"));
        assert!(senders.supports(Channel::Voice));
    }

    #[test]
    fn an_alphanumeric_default_cannot_call() {
        let senders =
            Senders::try_new("providers.p", Some("Acme"), None, &BTreeMap::new()).unwrap();
        assert!(senders.supports(Channel::Sms));
        assert!(!senders.supports(Channel::Voice));
        assert_eq!(senders.for_destination(country("US"), Channel::Voice), None);
    }

    #[test]
    fn refusals_name_the_key() {
        let error = Senders::try_new("providers.p", Some("not a sender!"), None, &BTreeMap::new())
            .unwrap_err();
        assert!(error.to_string().starts_with("providers.p.from: "), "{error}");
        let error =
            Senders::try_new("providers.p", Some("+15005550006"), Some("Acme"), &BTreeMap::new())
                .unwrap_err();
        assert!(error.to_string().starts_with("providers.p.voice_from: "), "{error}");
        let mut by_country = BTreeMap::new();
        by_country.insert(
            "GBR".to_owned(),
            CountrySenderConfig { sms: Some("Acme".into()), voice: None, max_per_second: None },
        );
        let error = Senders::try_new("providers.p", None, None, &by_country).unwrap_err();
        assert!(error.to_string().starts_with("providers.p.senders.GBR: "), "{error}");
    }

    #[test]
    fn a_countrys_sender_may_have_a_throughput_cap_checked_by_name() {
        let entry = |cap| CountrySenderConfig {
            sms: Some("+447400123456".into()),
            voice: None,
            max_per_second: cap,
        };
        let mut by_country = BTreeMap::new();
        by_country.insert("GB".to_owned(), entry(Some(1)));
        by_country.insert("FR".to_owned(), entry(None));
        assert!(Senders::try_new("providers.p", None, None, &by_country).is_ok());
        assert_eq!(
            caps(&by_country).into_iter().collect::<Vec<_>>(),
            [(country("GB"), NonZeroU32::new(1).unwrap())]
        );
        by_country.insert("GB".to_owned(), entry(Some(0)));
        let error = Senders::try_new("providers.p", None, None, &by_country).unwrap_err();
        assert!(
            error.to_string().starts_with("providers.p.senders.GB.max_per_second: "),
            "{error}"
        );
    }
}
