//! Route rules: which providers may carry a destination, in the configured order.
//!
//! Operators ask for per-country provider choice (RestComm-Connect#41, Cal-ID#1313 and others in
//! the research notes), so a rule names countries, channels and an ordered provider list, and the
//! first rule that matches a (country, channel) wins, as in a firewall: the file reads top to
//! bottom the way it is applied. The raw [`RouteConfig`] is what serde reads from `[[routes]]`;
//! [`RouteTable::try_new`] validates every rule in one step, naming the offending key, so a typo
//! is refused at load time instead of silently never matching.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::Deserialize;

use crate::config::ConfigError;
use crate::destination::has_numbering_plan;
use crate::domain::{Channel, Country, ProviderId};

/// One `[[routes]]` entry as written in the config file.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Name shown by explain and the admin API; defaults to `routes[i]`.
    #[serde(default)]
    pub name: Option<String>,
    /// ISO 3166-1 alpha-2 codes this rule covers, or `["*"]` for every country.
    pub countries: Vec<String>,
    /// Channels this rule covers (`sms`, `voice`); defaults to both.
    #[serde(default = "default_route_channels")]
    pub channels: Vec<String>,
    /// Providers to try, best first; each must be configured under `[providers]`.
    pub providers: Vec<String>,
}

fn default_route_channels() -> Vec<String> {
    Channel::ALL.iter().map(|channel| channel.as_str().to_owned()).collect()
}

/// The configured providers and the channels each can carry; what routes are checked against.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProviderCatalog {
    channels: BTreeMap<ProviderId, Vec<Channel>>,
}

impl ProviderCatalog {
    /// Builds a catalog; a provider listed twice keeps its last entry.
    #[must_use]
    pub fn new(providers: impl IntoIterator<Item = (ProviderId, Vec<Channel>)>) -> ProviderCatalog {
        let channels = providers
            .into_iter()
            .map(|(provider, mut channels)| {
                channels.sort_unstable();
                channels.dedup();
                (provider, channels)
            })
            .collect();
        ProviderCatalog { channels }
    }

    /// Whether the provider is configured.
    #[must_use]
    pub fn contains(&self, provider: &ProviderId) -> bool {
        self.channels.contains_key(provider)
    }

    /// Whether the provider is configured and can carry `channel`.
    #[must_use]
    pub fn supports(&self, provider: &ProviderId, channel: Channel) -> bool {
        self.channels.get(provider).is_some_and(|channels| channels.contains(&channel))
    }

    /// The channels a configured provider can carry.
    #[must_use]
    pub fn channels(&self, provider: &ProviderId) -> Option<&[Channel]> {
        self.channels.get(provider).map(Vec::as_slice)
    }

    /// Every configured provider, in id order.
    pub fn providers(&self) -> impl Iterator<Item = &ProviderId> {
        self.channels.keys()
    }
}

/// Which countries a rule covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CountrySet {
    /// `["*"]`: every country.
    Any,
    /// The listed countries, in config order.
    Only(Vec<Country>),
}

impl CountrySet {
    /// Whether `country` is covered.
    #[must_use]
    pub fn contains(&self, country: Country) -> bool {
        match self {
            CountrySet::Any => true,
            CountrySet::Only(countries) => countries.contains(&country),
        }
    }
}

/// A rule's identity for explain output, logs and metrics: its position and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RuleId {
    /// Position in the `[[routes]]` list, from 0.
    pub index: usize,
    /// The configured name, or `routes[i]`.
    pub name: Arc<str>,
}

impl fmt::Display for RuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// One validated route rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteRule {
    id: RuleId,
    countries: CountrySet,
    channels: Vec<Channel>,
    providers: Vec<ProviderId>,
}

impl RouteRule {
    /// Position and name.
    #[must_use]
    pub fn id(&self) -> &RuleId {
        &self.id
    }

    /// The countries it covers.
    #[must_use]
    pub fn countries(&self) -> &CountrySet {
        &self.countries
    }

    /// The channels it covers, in config order.
    #[must_use]
    pub fn channels(&self) -> &[Channel] {
        &self.channels
    }

    /// The providers to try, best first; never empty, never a repeat.
    #[must_use]
    pub fn providers(&self) -> &[ProviderId] {
        &self.providers
    }

    /// Whether this rule covers the country and channel.
    #[must_use]
    pub fn is_match(&self, country: Country, channel: Channel) -> bool {
        self.channels.contains(&channel) && self.countries.contains(country)
    }
}

/// The rule that matched a lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuleMatch<'t> {
    /// Position of the rule in the table.
    pub index: usize,
    /// The rule itself.
    pub rule: &'t RouteRule,
}

/// Validated route rules, in config order, with the catalog they were checked against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteTable {
    rules: Vec<RouteRule>,
    catalog: ProviderCatalog,
}

impl RouteTable {
    /// Validates `[[routes]]` against the configured providers.
    pub fn try_new(
        routes: &[RouteConfig],
        catalog: &ProviderCatalog,
    ) -> Result<RouteTable, ConfigError> {
        if routes.is_empty() {
            return Err(ConfigError::invalid("routes", "at least one [[routes]] rule is required"));
        }
        let mut rules: Vec<RouteRule> = Vec::with_capacity(routes.len());
        for (index, route) in routes.iter().enumerate() {
            let rule = validate_rule(index, route, catalog)?;
            if let Some(earlier) = rules.iter().find(|earlier| earlier.id.name == rule.id.name) {
                return Err(ConfigError::invalid(
                    format!("routes[{index}].name"),
                    format!(
                        "{:?} is already the name of routes[{}]",
                        &*rule.id.name, earlier.id.index
                    ),
                ));
            }
            if is_shadowed(&rule, &rules) {
                return Err(ConfigError::invalid(
                    format!("routes[{index}]"),
                    "never matches: earlier rules already cover all of its countries and channels",
                ));
            }
            rules.push(rule);
        }
        Ok(RouteTable { rules, catalog: catalog.clone() })
    }

    /// The first rule, in config order, that covers `country` on `channel`.
    #[must_use]
    pub fn find(&self, country: Country, channel: Channel) -> Option<RuleMatch<'_>> {
        self.rules
            .iter()
            .enumerate()
            .find(|(_, rule)| rule.is_match(country, channel))
            .map(|(index, rule)| RuleMatch { index, rule })
    }

    /// Every rule, in config order.
    #[must_use]
    pub fn rules(&self) -> &[RouteRule] {
        &self.rules
    }

    /// The providers and channels the rules were validated against.
    #[must_use]
    pub fn catalog(&self) -> &ProviderCatalog {
        &self.catalog
    }
}

fn validate_rule(
    index: usize,
    route: &RouteConfig,
    catalog: &ProviderCatalog,
) -> Result<RouteRule, ConfigError> {
    let key = format!("routes[{index}]");
    let name = match &route.name {
        Some(name) if name.trim().is_empty() => {
            return Err(ConfigError::invalid(format!("{key}.name"), "must not be blank"));
        }
        Some(name) => Arc::from(name.as_str()),
        None => Arc::from(key.as_str()),
    };
    let countries = validate_countries(&key, &route.countries)?;
    let channels = validate_channels(&key, &route.channels)?;
    let providers = validate_providers(&key, &route.providers, &channels, catalog)?;
    Ok(RouteRule { id: RuleId { index, name }, countries, channels, providers })
}

fn validate_countries(key: &str, countries: &[String]) -> Result<CountrySet, ConfigError> {
    if countries.is_empty() {
        return Err(ConfigError::invalid(
            format!("{key}.countries"),
            "must list at least one country code, or \"*\" for every country",
        ));
    }
    if countries.iter().any(|text| text == "*") {
        if countries.len() > 1 {
            return Err(ConfigError::invalid(
                format!("{key}.countries"),
                "\"*\" already covers every country and cannot be combined with codes",
            ));
        }
        return Ok(CountrySet::Any);
    }
    let mut parsed: Vec<Country> = Vec::with_capacity(countries.len());
    for (position, text) in countries.iter().enumerate() {
        let item_key = format!("{key}.countries[{position}]");
        let country = Country::parse(text)
            .filter(|country| has_numbering_plan(*country))
            .ok_or_else(|| {
                ConfigError::invalid(
                    &item_key,
                    format!("{text:?} is not an ISO 3166-1 alpha-2 code"),
                )
            })?;
        if let Some(first) = parsed.iter().position(|earlier| *earlier == country) {
            return Err(ConfigError::invalid(
                item_key,
                format!("{country} is listed twice (first at countries[{first}])"),
            ));
        }
        parsed.push(country);
    }
    Ok(CountrySet::Only(parsed))
}

fn validate_channels(key: &str, channels: &[String]) -> Result<Vec<Channel>, ConfigError> {
    if channels.is_empty() {
        return Err(ConfigError::invalid(
            format!("{key}.channels"),
            "must list at least one channel (\"sms\", \"voice\"), or be left out for both",
        ));
    }
    let mut parsed: Vec<Channel> = Vec::with_capacity(channels.len());
    for (position, text) in channels.iter().enumerate() {
        let item_key = format!("{key}.channels[{position}]");
        let channel = Channel::parse(text).ok_or_else(|| {
            ConfigError::invalid(
                &item_key,
                format!("unknown channel {text:?} (expected \"sms\" or \"voice\")"),
            )
        })?;
        if parsed.contains(&channel) {
            return Err(ConfigError::invalid(item_key, format!("{channel} is listed twice")));
        }
        parsed.push(channel);
    }
    Ok(parsed)
}

fn validate_providers(
    key: &str,
    providers: &[String],
    channels: &[Channel],
    catalog: &ProviderCatalog,
) -> Result<Vec<ProviderId>, ConfigError> {
    if providers.is_empty() {
        return Err(ConfigError::invalid(
            format!("{key}.providers"),
            "must list at least one provider",
        ));
    }
    let mut parsed: Vec<ProviderId> = Vec::with_capacity(providers.len());
    for (position, text) in providers.iter().enumerate() {
        let item_key = format!("{key}.providers[{position}]");
        let provider =
            ProviderId::parse(text).filter(|provider| catalog.contains(provider)).ok_or_else(
                || ConfigError::UnknownProvider { key: item_key.clone(), provider: text.clone() },
            )?;
        if let Some(first) = parsed.iter().position(|earlier| *earlier == provider) {
            return Err(ConfigError::invalid(
                item_key,
                format!("`{provider}` is listed twice (first at providers[{first}])"),
            ));
        }
        if !channels.iter().any(|channel| catalog.supports(&provider, *channel)) {
            let wanted: Vec<&str> = channels.iter().map(|channel| channel.as_str()).collect();
            return Err(ConfigError::invalid(
                item_key,
                format!(
                    "`{provider}` supports none of this rule's channels ({})",
                    wanted.join(", ")
                ),
            ));
        }
        parsed.push(provider);
    }
    Ok(parsed)
}

/// Whether every (country, channel) `rule` covers is already taken by an earlier rule, so it can
/// never be the first match: almost always an ordering mistake (a `"*"` rule placed first).
fn is_shadowed(rule: &RouteRule, earlier_rules: &[RouteRule]) -> bool {
    rule.channels.iter().all(|channel| {
        let covering = earlier_rules.iter().filter(|earlier| earlier.channels.contains(channel));
        match &rule.countries {
            CountrySet::Any => {
                covering.into_iter().any(|earlier| earlier.countries == CountrySet::Any)
            }
            CountrySet::Only(countries) => {
                let covering: Vec<&RouteRule> = covering.collect();
                countries.iter().all(|country| {
                    covering.iter().any(|earlier| earlier.countries.contains(*country))
                })
            }
        }
    })
}

#[cfg(test)]
mod tests;
