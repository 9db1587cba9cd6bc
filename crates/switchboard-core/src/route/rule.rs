//! One validated route rule ([`RouteRule`]) and matching: whether it covers a [`RouteQuery`]
//! and, for explain, why not ([`Mismatch`], checked country, channel, purpose, prefix).

use std::fmt;
use std::sync::Arc;

use super::strategy::{Optimize, StrategyPolicy};
use crate::domain::{Channel, Country, ProviderId, Purpose};
use crate::query::{NumberDigits, RouteQuery};

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
#[derive(Clone, Debug, PartialEq)]
pub struct RouteRule {
    pub(super) id: RuleId,
    pub(super) countries: CountrySet,
    pub(super) channels: Vec<Channel>,
    pub(super) providers: Vec<ProviderId>,
    /// `None`: every purpose.
    pub(super) purposes: Option<Vec<Purpose>>,
    /// E.164 digits; empty: every number.
    pub(super) prefixes: Vec<String>,
    pub(super) strategy: StrategyPolicy,
    pub(super) optimize: Optimize,
    /// One per provider, in provider order.
    pub(super) weights: Vec<f64>,
    pub(super) exploration: f64,
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

    /// The purposes it covers; `None` for every purpose.
    #[must_use]
    pub fn purposes(&self) -> Option<&[Purpose]> {
        self.purposes.as_deref()
    }

    /// The E.164 digit prefixes it covers; empty for every number.
    #[must_use]
    pub fn prefixes(&self) -> &[String] {
        &self.prefixes
    }

    /// How dispatch uses the ranked providers.
    #[must_use]
    pub fn strategy(&self) -> StrategyPolicy {
        self.strategy
    }

    /// What ranking favours.
    #[must_use]
    pub fn optimize(&self) -> Optimize {
        self.optimize
    }

    /// The operator's weight for the provider at `position` in [`RouteRule::providers`].
    #[must_use]
    pub fn weight(&self, position: usize) -> f64 {
        self.weights.get(position).copied().unwrap_or(1.0)
    }

    /// Share of plans that explore (always 0 with `priority`).
    #[must_use]
    pub fn exploration(&self) -> f64 {
        self.exploration
    }

    /// Why this rule does not cover the query, or `None` when it does.
    #[must_use]
    pub fn mismatch(&self, query: &RouteQuery) -> Option<Mismatch> {
        if !self.countries.contains(query.country) {
            Some(Mismatch::Country)
        } else if !self.channels.contains(&query.channel) {
            Some(Mismatch::Channel)
        } else if !self.is_purpose_match(query.purpose) {
            Some(Mismatch::Purpose)
        } else if !self.is_prefix_match(query.number.as_ref()) {
            Some(Mismatch::Prefix)
        } else {
            None
        }
    }

    /// Whether this rule covers the query.
    #[must_use]
    pub fn is_match(&self, query: &RouteQuery) -> bool {
        self.mismatch(query).is_none()
    }

    fn is_purpose_match(&self, purpose: Option<Purpose>) -> bool {
        match (&self.purposes, purpose) {
            (None, _) => true,
            (Some(purposes), Some(purpose)) => purposes.contains(&purpose),
            // A query that does not say why cannot match a rule that asks.
            (Some(_), None) => false,
        }
    }

    fn is_prefix_match(&self, number: Option<&NumberDigits>) -> bool {
        if self.prefixes.is_empty() {
            return true;
        }
        number.is_some_and(|number| {
            self.prefixes.iter().any(|prefix| number.as_str().starts_with(prefix.as_str()))
        })
    }
}

/// Why a rule does not cover a query, checked in this order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mismatch {
    /// The destination's country is not listed.
    Country,
    /// The channel is not listed.
    Channel,
    /// The purpose is not listed (or the query has none).
    Purpose,
    /// No prefix matches the number (or the query has none).
    Prefix,
}

impl Mismatch {
    /// Lower-case label for explain output.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Mismatch::Country => "country",
            Mismatch::Channel => "channel",
            Mismatch::Purpose => "purpose",
            Mismatch::Prefix => "prefix",
        }
    }
}

/// The rule that matched a lookup.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RuleMatch<'t> {
    /// Position of the rule in the table.
    pub index: usize,
    /// The rule itself.
    pub rule: &'t RouteRule,
}
