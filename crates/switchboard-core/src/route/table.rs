//! The validated route table ([`RouteTable`]): every rule in config order, with the catalog and
//! prices they were checked against, and the first-match lookup the planner and explain use.

use super::config::{RouteConfig, is_shadowed, validate_rule};
use super::rule::{RouteRule, RuleMatch};
use crate::catalog::ProviderCatalog;
use crate::config::ConfigError;
use crate::price::{PriceConfig, PriceTable};
use crate::query::RouteQuery;

/// Validated route rules, in config order, with the catalog and prices they were checked
/// against.
#[derive(Clone, Debug, PartialEq)]
pub struct RouteTable {
    rules: Vec<RouteRule>,
    catalog: ProviderCatalog,
    prices: PriceTable,
}

impl RouteTable {
    /// Validates `[[routes]]` and `[prices]` against the configured providers.
    pub fn try_new(
        routes: &[RouteConfig],
        prices: &PriceConfig,
        catalog: &ProviderCatalog,
    ) -> Result<RouteTable, ConfigError> {
        let prices = PriceTable::try_new(prices, catalog)?;
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
        Ok(RouteTable { rules, catalog: catalog.clone(), prices })
    }

    /// The first rule, in config order, that covers the query.
    #[must_use]
    pub fn find(&self, query: &RouteQuery) -> Option<RuleMatch<'_>> {
        self.rules
            .iter()
            .enumerate()
            .find(|(_, rule)| rule.is_match(query))
            .map(|(index, rule)| RuleMatch { index, rule })
    }

    /// The validated prices.
    #[must_use]
    pub fn prices(&self) -> &PriceTable {
        &self.prices
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
