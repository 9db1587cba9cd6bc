//! Prices per provider, country and channel: what one SMS segment or one voice minute costs.
//!
//! Ranking with `optimize = "cost"` needs the price of a message before it is sent, and the
//! budget needs it to bound what failover may spend. Prices come from the operator's contract, so
//! they are configuration, in whatever currency unit the operator bills in (the core never mixes
//! currencies: every price in one file is in the same unit). A provider's `default` covers every
//! country without an entry of its own; a country entry overrides field by field. A provider with
//! no price at all is *unpriced*: ranking treats it as the dearest priced candidate, never as free.
//!
//! ```toml
//! [prices.twilio-us]
//! default = { sms = 0.0079, voice_minute = 0.014 }
//! countries.GB = { sms = 0.0400 }
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::catalog::ProviderCatalog;
use crate::config::ConfigError;
use crate::destination::has_numbering_plan;
use crate::domain::{Channel, Country, ProviderId};

/// Highest price accepted; anything above is a typo (a price in cents written as units).
const MAX_PRICE: f64 = 1_000.0;

/// The `[prices]` section as written: provider id to its prices.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(transparent)]
pub struct PriceConfig(pub BTreeMap<String, ProviderPriceConfig>);

impl PriceConfig {
    /// No prices: every provider unpriced (what a missing `[prices]` section stands for).
    #[must_use]
    pub fn empty() -> PriceConfig {
        PriceConfig(BTreeMap::new())
    }
}

/// `[prices.<provider>]`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderPriceConfig {
    /// Prices for every country without an entry under `countries`.
    #[serde(default)]
    pub default: Option<PriceEntryConfig>,
    /// Per-country prices (ISO 3166-1 alpha-2), overriding `default` field by field.
    #[serde(default)]
    pub countries: BTreeMap<String, PriceEntryConfig>,
}

/// One price entry.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceEntryConfig {
    /// Price of one SMS segment.
    #[serde(default)]
    pub sms: Option<f64>,
    /// Price of one minute of a voice call (an OTP call is billed as one minute).
    #[serde(default)]
    pub voice_minute: Option<f64>,
}

/// Validated prices.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PriceTable {
    providers: BTreeMap<ProviderId, ProviderPrices>,
}

#[derive(Clone, Debug, PartialEq)]
struct ProviderPrices {
    default: PriceEntryConfig,
    countries: BTreeMap<Country, PriceEntryConfig>,
}

impl PriceTable {
    /// Validates `[prices]` against the configured providers, naming the offending key.
    pub fn try_new(
        config: &PriceConfig,
        catalog: &ProviderCatalog,
    ) -> Result<PriceTable, ConfigError> {
        let mut providers = BTreeMap::new();
        for (name, prices) in &config.0 {
            let key = format!("prices.{name}");
            let provider =
                ProviderId::parse(name).filter(|provider| catalog.contains(provider)).ok_or_else(
                    || ConfigError::UnknownProvider { key: key.clone(), provider: name.clone() },
                )?;
            let default = match &prices.default {
                Some(entry) => validate_entry(&format!("{key}.default"), entry)?,
                None => PriceEntryConfig { sms: None, voice_minute: None },
            };
            let mut countries = BTreeMap::new();
            for (code, entry) in &prices.countries {
                let entry_key = format!("{key}.countries.{code}");
                let country = Country::parse(code)
                    .filter(|country| has_numbering_plan(*country))
                    .ok_or_else(|| {
                    ConfigError::invalid(
                        &entry_key,
                        format!("{code:?} is not an ISO 3166-1 alpha-2 code"),
                    )
                })?;
                if countries.insert(country, validate_entry(&entry_key, entry)?).is_some() {
                    return Err(ConfigError::invalid(
                        entry_key,
                        format!("{country} is listed twice"),
                    ));
                }
            }
            providers.insert(provider, ProviderPrices { default, countries });
        }
        Ok(PriceTable { providers })
    }

    /// Price of one unit (an SMS segment, a voice minute) through `provider` to `country`.
    #[must_use]
    pub fn unit_price(
        &self,
        provider: &ProviderId,
        country: Country,
        channel: Channel,
    ) -> Option<f64> {
        // A number of unknown country has no price: a provider's `default` is for the countries
        // an operator priced by omission, not for ranges nobody can place.
        if country.is_unknown() {
            return None;
        }
        let prices = self.providers.get(provider)?;
        let field = |entry: &PriceEntryConfig| match channel {
            Channel::Sms => entry.sms,
            Channel::Voice => entry.voice_minute,
        };
        prices.countries.get(&country).and_then(field).or_else(|| field(&prices.default))
    }

    /// Price of one message: `segments` SMS segments, or one voice minute.
    #[must_use]
    pub fn message_price(
        &self,
        provider: &ProviderId,
        country: Country,
        channel: Channel,
        segments: u32,
    ) -> Option<f64> {
        let units = match channel {
            Channel::Sms => f64::from(segments.max(1)),
            Channel::Voice => 1.0,
        };
        self.unit_price(provider, country, channel).map(|price| price * units)
    }
}

fn validate_entry(key: &str, entry: &PriceEntryConfig) -> Result<PriceEntryConfig, ConfigError> {
    for (field, value) in [("sms", entry.sms), ("voice_minute", entry.voice_minute)] {
        if let Some(value) = value
            && !(value.is_finite() && (0.0..=MAX_PRICE).contains(&value))
        {
            return Err(ConfigError::invalid(
                format!("{key}.{field}"),
                format!("must be a number between 0 and {MAX_PRICE}"),
            ));
        }
    }
    if entry.sms.is_none() && entry.voice_minute.is_none() {
        return Err(ConfigError::invalid(key, "give sms, voice_minute or both"));
    }
    Ok(*entry)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        prices: PriceConfig,
    }

    fn catalog() -> ProviderCatalog {
        let both = vec![Channel::Sms, Channel::Voice];
        ProviderCatalog::new([
            (ProviderId::parse("twilio").unwrap(), both.clone()),
            (ProviderId::parse("vonage").unwrap(), both),
        ])
    }

    fn table(text: &str) -> Result<PriceTable, String> {
        let file: File = toml::from_str(text).map_err(|error| error.to_string())?;
        PriceTable::try_new(&file.prices, &catalog()).map_err(|error| error.to_string())
    }

    #[test]
    fn country_entries_override_the_default_field_by_field() {
        let prices = table(
            "[prices.twilio]\ndefault = { sms = 0.01, voice_minute = 0.02 }\ncountries.GB = { sms = 0.05 }\n",
        )
        .unwrap();
        let twilio = ProviderId::parse("twilio").unwrap();
        let gb = Country::parse("GB").unwrap();
        let us = Country::parse("US").unwrap();
        assert_eq!(prices.unit_price(&twilio, gb, Channel::Sms), Some(0.05));
        assert_eq!(prices.unit_price(&twilio, gb, Channel::Voice), Some(0.02));
        assert_eq!(prices.unit_price(&twilio, us, Channel::Sms), Some(0.01));
        assert_eq!(prices.message_price(&twilio, us, Channel::Sms, 3), Some(0.03));
        assert_eq!(prices.message_price(&twilio, us, Channel::Voice, 3), Some(0.02));
        let vonage = ProviderId::parse("vonage").unwrap();
        assert_eq!(prices.unit_price(&vonage, us, Channel::Sms), None, "unpriced");
        // The default never prices a number whose country nobody knows.
        assert_eq!(prices.unit_price(&twilio, Country::UNKNOWN, Channel::Sms), None);
    }

    #[test]
    fn validation_names_the_key() {
        let cases = [
            (
                "[prices.nexmo]\ndefault = { sms = 1.0 }",
                "prices.nexmo: unknown provider `nexmo` (not under [providers])",
            ),
            (
                "[prices.twilio]\ndefault = { sms = -1.0 }",
                "prices.twilio.default.sms: must be a number between 0 and 1000",
            ),
            (
                "[prices.twilio]\ncountries.ZZ = { sms = 1.0 }",
                "prices.twilio.countries.ZZ: \"ZZ\" is not an ISO 3166-1 alpha-2 code",
            ),
            (
                "[prices.twilio]\ncountries.gb = { sms = 1.0 }\ncountries.GB = { sms = 1.0 }",
                "prices.twilio.countries.gb: GB is listed twice",
            ),
            (
                "[prices.twilio]\ndefault = {}",
                "prices.twilio.default: give sms, voice_minute or both",
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(table(text).unwrap_err(), expected, "{text}");
        }
        assert!(
            table("[prices.twilio]\ndefault = { mms = 1.0 }")
                .unwrap_err()
                .contains("unknown field `mms`")
        );
    }
}
