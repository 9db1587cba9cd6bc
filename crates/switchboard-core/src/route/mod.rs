//! Route rules: which providers may carry a destination, and how dispatch should use them.
//!
//! Operators ask for per-country provider choice (RestComm-Connect#41, Cal-ID#1313 and others in
//! the research notes), so a rule names countries, channels, optionally purposes (Okta's
//! `requestType`) and E.164 number prefixes, and a provider list; the first rule that matches
//! wins, as in a firewall: the file reads top to bottom the way it is applied. The raw
//! [`RouteConfig`] is what serde reads from `[[routes]]`; [`RouteTable::try_new`] validates every
//! rule in one step, naming the offending key, so a typo is refused at load time instead of
//! silently never matching.
//!
//! A rule also says how its providers are ranked (`optimize`, see `plan.rs`) and used
//! (`strategy`: cascade, hedge or race; dispatch carries it out). The default, `priority` with
//! `cascade`, is the configured order tried one at a time, which is what a file written before
//! ranking existed meant. Keys that only make sense for another strategy or for a scored rule
//! are refused rather than ignored, so an operator is never misled about what the rule does.
//!
//! # Reading order
//!
//! - `strategy.rs`: what a rule asks of ranking and dispatch: the emphasis ([`Optimize`]) and
//!   the validated strategy ([`StrategyPolicy`], [`HedgeDelay`]).
//! - `rule.rs`: one validated rule ([`RouteRule`]) and how it matches a
//!   [`RouteQuery`](crate::query::RouteQuery), or why not ([`Mismatch`]).
//! - `config.rs`: `[[routes]]` as written ([`RouteConfig`]) and its validation into rules, each
//!   error naming the offending key, including the check that a rule can ever match.
//! - `table.rs`: the validated table ([`RouteTable`]): every rule in config order with the
//!   catalog and prices they were checked against, and the first-match lookup.

mod config;
mod rule;
mod strategy;
mod table;

pub use config::{HedgeDelayName, RouteConfig, StrategyName};
pub use rule::{CountrySet, Mismatch, RouteRule, RuleId, RuleMatch};
pub use strategy::{HedgeDelay, Optimize, StrategyPolicy};
pub use table::RouteTable;

pub use crate::catalog::ProviderCatalog;

#[cfg(test)]
mod tests;
