//! `[[routes]]` as written ([`RouteConfig`]) and its validation into [`RouteRule`]s: every key
//! checked in one step, each error naming the offending key (`routes[2].race_width`), keys that
//! only make sense for another strategy or for a scored rule refused, and a rule that earlier
//! rules already cover entirely ("shadowed") refused as an ordering mistake.
//!
//! At about 520 lines this is the longest file of the folder, and one concern: each
//! `validate_*` function checks one key of [`RouteConfig`], in the order the struct lists them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::rule::{CountrySet, RouteRule, RuleId};
use super::strategy::{HedgeDelay, Optimize, StrategyPolicy};
use crate::catalog::ProviderCatalog;
use crate::config::ConfigError;
use crate::destination::has_numbering_plan;
use crate::domain::{Channel, Country, ProviderId, Purpose};
use crate::query::MAX_NUMBER_DIGITS;

/// One `[[routes]]` entry as written in the config file.
#[derive(Clone, Debug, PartialEq, Deserialize)]
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
    /// Providers this rule may use; each must be configured under `[providers]`. With
    /// `optimize = "priority"` they are tried in this order.
    pub providers: Vec<String>,
    /// Purposes (Okta's `requestType`, in core names: `enrollment`, `verification`,
    /// `account_unlock`, `password_reset`, `other`) this rule covers; defaults to all.
    #[serde(default, alias = "request_types")]
    pub purposes: Option<Vec<String>>,
    /// E.164 digit prefixes (country code first, `+` optional) this rule covers; defaults to
    /// every number of its countries.
    #[serde(default)]
    pub prefixes: Vec<String>,
    /// How dispatch uses the ranked providers: `cascade` (default), `hedge` or `race`.
    #[serde(default = "default_strategy")]
    pub strategy: StrategyName,
    /// `hedge` only: a fixed hedge delay in milliseconds; without it the delay is learned.
    #[serde(default)]
    pub hedge_delay_ms: Option<u64>,
    /// `hedge` only: `"auto"` (the default) learns the delay from the first provider's latency.
    #[serde(default)]
    pub hedge_delay: Option<HedgeDelayName>,
    /// `hedge` with a learned delay: the quantile of accept latency to wait for (default 0.9).
    #[serde(default)]
    pub hedge_quantile: Option<f64>,
    /// `hedge` with a learned delay: shortest delay, in milliseconds (default 100).
    #[serde(default)]
    pub hedge_delay_min_ms: Option<u64>,
    /// `hedge` with a learned delay: longest delay, in milliseconds (default 1000).
    #[serde(default)]
    pub hedge_delay_max_ms: Option<u64>,
    /// `race` only: how many providers to send to at once (default 2).
    #[serde(default)]
    pub race_width: Option<u32>,
    /// What ranking favours: `priority` (the configured order, the default), `reliability`,
    /// `latency` or `cost`.
    #[serde(default = "default_optimize")]
    pub optimize: Optimize,
    /// Operator preference per provider, multiplying its score (default 1 each); not with
    /// `priority`.
    #[serde(default)]
    pub weights: BTreeMap<String, f64>,
    /// Share of plans that try a provider other than the best first, so a recovered or new
    /// provider earns traffic back (default 0.02, at most 0.5); not with `priority`.
    #[serde(default)]
    pub exploration: Option<f64>,
}

fn default_route_channels() -> Vec<String> {
    Channel::ALL.iter().map(|channel| channel.as_str().to_owned()).collect()
}

fn default_strategy() -> StrategyName {
    StrategyName::Cascade
}

fn default_optimize() -> Optimize {
    Optimize::Priority
}

impl RouteConfig {
    /// A rule with only the required keys; every other key at its default.
    #[must_use]
    pub fn new(
        countries: Vec<String>,
        channels: Vec<String>,
        providers: Vec<String>,
    ) -> RouteConfig {
        RouteConfig {
            name: None,
            countries,
            channels,
            providers,
            purposes: None,
            prefixes: Vec::new(),
            strategy: default_strategy(),
            hedge_delay_ms: None,
            hedge_delay: None,
            hedge_quantile: None,
            hedge_delay_min_ms: None,
            hedge_delay_max_ms: None,
            race_width: None,
            optimize: default_optimize(),
            weights: BTreeMap::new(),
            exploration: None,
        }
    }
}

/// `strategy` as written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StrategyName {
    /// One provider at a time.
    Cascade,
    /// Start the next provider when the current one has not answered after the hedge delay.
    Hedge,
    /// Send to several providers at once.
    Race,
}

/// `hedge_delay` as written: only `"auto"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HedgeDelayName {
    /// Learn the delay from observed accept latency.
    Auto,
}

pub(super) fn validate_rule(
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
    let purposes = match &route.purposes {
        None => None,
        Some(purposes) => Some(validate_purposes(&key, purposes)?),
    };
    let prefixes = validate_prefixes(&key, &route.prefixes)?;
    let strategy = validate_strategy(&key, route, providers.len())?;
    let weights = validate_weights(&key, route, &providers)?;
    let exploration = match (route.exploration, route.optimize) {
        (Some(_), Optimize::Priority) => {
            return Err(ConfigError::invalid(
                format!("{key}.exploration"),
                "needs optimize = \"reliability\", \"latency\" or \"cost\"",
            ));
        }
        (None, Optimize::Priority) => 0.0,
        (None, _) => DEFAULT_EXPLORATION,
        (Some(rate), _) if (0.0..=MAX_EXPLORATION).contains(&rate) => rate,
        (Some(_), _) => {
            return Err(ConfigError::invalid(
                format!("{key}.exploration"),
                format!("must be between 0 and {MAX_EXPLORATION}"),
            ));
        }
    };
    Ok(RouteRule {
        id: RuleId { index, name },
        countries,
        channels,
        providers,
        purposes,
        prefixes,
        strategy,
        optimize: route.optimize,
        weights,
        exploration,
    })
}

/// Share of plans that explore when a scored rule does not say.
const DEFAULT_EXPLORATION: f64 = 0.02;

/// Most exploration a rule may ask for: beyond half, the ranking no longer decides.
const MAX_EXPLORATION: f64 = 0.5;

/// Longest hedge delay, floor or ceiling accepted: Okta waits 3 s for the whole answer.
const MAX_HEDGE_DELAY_MS: u64 = 3_000;

fn validate_purposes(key: &str, purposes: &[String]) -> Result<Vec<Purpose>, ConfigError> {
    if purposes.is_empty() {
        return Err(ConfigError::invalid(
            format!("{key}.purposes"),
            "must list at least one purpose, or be left out for all",
        ));
    }
    let mut parsed: Vec<Purpose> = Vec::with_capacity(purposes.len());
    for (position, text) in purposes.iter().enumerate() {
        let item_key = format!("{key}.purposes[{position}]");
        let purpose = Purpose::parse(text).ok_or_else(|| {
            let known: Vec<&str> = Purpose::ALL.iter().map(|purpose| purpose.as_str()).collect();
            ConfigError::invalid(
                &item_key,
                format!("unknown purpose {text:?} (expected one of {})", known.join(", ")),
            )
        })?;
        if parsed.contains(&purpose) {
            return Err(ConfigError::invalid(
                item_key,
                format!("{} is listed twice", purpose.as_str()),
            ));
        }
        parsed.push(purpose);
    }
    Ok(parsed)
}

fn validate_prefixes(key: &str, prefixes: &[String]) -> Result<Vec<String>, ConfigError> {
    let mut parsed: Vec<String> = Vec::with_capacity(prefixes.len());
    for (position, text) in prefixes.iter().enumerate() {
        let item_key = format!("{key}.prefixes[{position}]");
        let digits = text.strip_prefix('+').unwrap_or(text);
        if digits.is_empty()
            || digits.len() > MAX_NUMBER_DIGITS
            || !digits.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(ConfigError::invalid(
                item_key,
                format!("{text:?} is not an E.164 prefix (1 to 15 digits, country code first)"),
            ));
        }
        if parsed.iter().any(|earlier| earlier == digits) {
            return Err(ConfigError::invalid(item_key, format!("{digits} is listed twice")));
        }
        parsed.push(digits.to_owned());
    }
    Ok(parsed)
}

fn validate_strategy(
    key: &str,
    route: &RouteConfig,
    n_providers: usize,
) -> Result<StrategyPolicy, ConfigError> {
    let only_for = |field: &str, strategy: &str| {
        ConfigError::invalid(
            format!("{key}.{field}"),
            format!("only applies to strategy = \"{strategy}\""),
        )
    };
    if route.strategy != StrategyName::Hedge {
        let hedge_fields = [
            ("hedge_delay_ms", route.hedge_delay_ms.is_some()),
            ("hedge_delay", route.hedge_delay.is_some()),
            ("hedge_quantile", route.hedge_quantile.is_some()),
            ("hedge_delay_min_ms", route.hedge_delay_min_ms.is_some()),
            ("hedge_delay_max_ms", route.hedge_delay_max_ms.is_some()),
        ];
        if let Some((field, _)) = hedge_fields.iter().find(|(_, is_set)| *is_set) {
            return Err(only_for(field, "hedge"));
        }
    }
    if route.strategy != StrategyName::Race && route.race_width.is_some() {
        return Err(only_for("race_width", "race"));
    }
    let millis = |field: &str, value: u64| {
        if (1..=MAX_HEDGE_DELAY_MS).contains(&value) {
            Ok(Duration::from_millis(value))
        } else {
            Err(ConfigError::invalid(
                format!("{key}.{field}"),
                format!("must be between 1 and {MAX_HEDGE_DELAY_MS}"),
            ))
        }
    };
    match route.strategy {
        StrategyName::Cascade => Ok(StrategyPolicy::Cascade),
        StrategyName::Race => {
            let width = route.race_width.unwrap_or(2);
            let most = u32::try_from(n_providers).unwrap_or(u32::MAX);
            if width < 2 || width > most {
                return Err(ConfigError::invalid(
                    format!("{key}.race_width"),
                    format!("must be between 2 and the number of providers ({n_providers})"),
                ));
            }
            Ok(StrategyPolicy::Race { width })
        }
        StrategyName::Hedge => {
            if n_providers < 2 {
                return Err(ConfigError::invalid(
                    format!("{key}.strategy"),
                    "hedge needs at least two providers",
                ));
            }
            if let Some(fixed) = route.hedge_delay_ms {
                let learned_fields = [
                    ("hedge_delay", route.hedge_delay.is_some()),
                    ("hedge_quantile", route.hedge_quantile.is_some()),
                    ("hedge_delay_min_ms", route.hedge_delay_min_ms.is_some()),
                    ("hedge_delay_max_ms", route.hedge_delay_max_ms.is_some()),
                ];
                if let Some((field, _)) = learned_fields.iter().find(|(_, is_set)| *is_set) {
                    return Err(ConfigError::invalid(
                        format!("{key}.{field}"),
                        "applies to a learned delay, and hedge_delay_ms fixes it",
                    ));
                }
                return Ok(StrategyPolicy::Hedge(HedgeDelay::Fixed(millis(
                    "hedge_delay_ms",
                    fixed,
                )?)));
            }
            let quantile = route.hedge_quantile.unwrap_or(0.9);
            if !(quantile > 0.0 && quantile < 1.0) {
                return Err(ConfigError::invalid(
                    format!("{key}.hedge_quantile"),
                    "must be between 0 and 1, exclusive",
                ));
            }
            let floor = millis("hedge_delay_min_ms", route.hedge_delay_min_ms.unwrap_or(100))?;
            let ceiling = millis("hedge_delay_max_ms", route.hedge_delay_max_ms.unwrap_or(1_000))?;
            if ceiling < floor {
                return Err(ConfigError::invalid(
                    format!("{key}.hedge_delay_max_ms"),
                    format!("must be at least hedge_delay_min_ms ({})", floor.as_millis()),
                ));
            }
            Ok(StrategyPolicy::Hedge(HedgeDelay::Learned { quantile, floor, ceiling }))
        }
    }
}

fn validate_weights(
    key: &str,
    route: &RouteConfig,
    providers: &[ProviderId],
) -> Result<Vec<f64>, ConfigError> {
    let mut weights = vec![1.0; providers.len()];
    if !route.weights.is_empty() && !route.optimize.is_scored() {
        return Err(ConfigError::invalid(
            format!("{key}.weights"),
            "needs optimize = \"reliability\", \"latency\" or \"cost\" (priority follows the provider order)",
        ));
    }
    for (name, weight) in &route.weights {
        let item_key = format!("{key}.weights.{name}");
        let position =
            providers.iter().position(|provider| provider.as_str() == name).ok_or_else(|| {
                ConfigError::invalid(
                    &item_key,
                    format!("`{name}` is not one of this rule's providers"),
                )
            })?;
        if !(weight.is_finite() && *weight > 0.0 && *weight <= 1_000.0) {
            return Err(ConfigError::invalid(
                item_key,
                "must be a number above 0 and at most 1000",
            ));
        }
        weights[position] = *weight;
    }
    Ok(weights)
}

pub(super) fn validate_countries(
    key: &str,
    countries: &[String],
) -> Result<CountrySet, ConfigError> {
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
/// never be the first match: almost always an ordering mistake (a `"*"` rule placed first). Only
/// earlier rules that cover all of this rule's purposes and numbers count as covering.
pub(super) fn is_shadowed(rule: &RouteRule, earlier_rules: &[RouteRule]) -> bool {
    let wider: Vec<&RouteRule> = earlier_rules
        .iter()
        .filter(|earlier| covers_purposes(earlier, rule) && covers_prefixes(earlier, rule))
        .collect();
    rule.channels.iter().all(|channel| {
        let covering = wider.iter().copied().filter(|earlier| earlier.channels.contains(channel));
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

fn covers_purposes(earlier: &RouteRule, rule: &RouteRule) -> bool {
    match (&earlier.purposes, &rule.purposes) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(wide), Some(narrow)) => narrow.iter().all(|purpose| wide.contains(purpose)),
    }
}

fn covers_prefixes(earlier: &RouteRule, rule: &RouteRule) -> bool {
    if earlier.prefixes.is_empty() {
        return true;
    }
    !rule.prefixes.is_empty()
        && rule
            .prefixes
            .iter()
            .all(|narrow| earlier.prefixes.iter().any(|wide| narrow.starts_with(wide.as_str())))
}
