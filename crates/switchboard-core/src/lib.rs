//! The pure routing core of switchboard: domain types, provider health, prices, the retry
//! budget, route matching, ranking and planning, and the records that explain a decision.
//!
//! # Reading order
//!
//! The files are layered: each imports only files of the layers before it (test modules
//! excepted), so the crate reads top-down.
//!
//! 1. Domain nouns and outcomes: `config.rs` (ConfigError), `domain.rs`, `outcome.rs`,
//!    `text.rs` (SMS text and segments), `speech.rs` (voice scripts).
//! 2. Destinations and queries: `destination.rs` (a number, parsed), `message.rs`
//!    (OutboundMessage), `query.rs` (RouteQuery, NumberDigits), `catalog.rs` (ProviderCatalog).
//! 3. Prices: `price.rs`.
//! 4. Route rules: `route/` (strategy, rule, config, table); the table holds the prices.
//! 5. The state dispatch asks before a send, each its own: `budget.rs` (retry budget),
//!    `switch.rs` (the operator's switches), then `health/` (config, estimators, key, book),
//!    whose `[health]` section embeds `[health.budget]` and whose snapshots report the switch.
//! 6. Decisions: `plan/` (exclusion, score, the planner), then `attempt.rs` (may this send go:
//!    switch, health, budget) and `explain.rs` (why a plan is what it is).
//!
//! `script.rs`, a test-only interpreter for one-line health and planning scenarios, sits on top.
//!
//! This crate must never do I/O, read a clock or draw randomness. Callers pass `now` (and, where
//! a decision is randomised, an RNG), so every routing decision can be replayed deterministically
//! in tests and in the simulator. Its manifest has no tokio, reqwest or axum.

pub mod attempt;
pub mod budget;
pub mod catalog;
pub mod config;
pub mod destination;
pub mod domain;
pub mod explain;
pub mod health;
pub mod message;
pub mod outcome;
pub mod plan;
pub mod price;
pub mod query;
pub mod route;
#[cfg(test)]
mod script;
pub mod speech;
pub mod spend;
pub mod switch;
pub mod text;

pub use attempt::{Admission, AttemptKind, begin_attempt};
pub use budget::{BudgetConfig, BudgetPolicy, BudgetSnapshot, RetryBudget};
pub use config::ConfigError;
pub use destination::Destination;
pub use destination::{DestinationError, NumberKind, Placement};
pub use domain::{Channel, Country, Locale, MessageText, Passcode, ProviderId, Purpose};
pub use explain::{DecisionRecord, Explanation, Live, RecordedCandidate, RuleCheck, explain};
pub use health::{
    EjectionCause, HealthBook, HealthConfig, HealthKey, HealthPolicy, HealthSnapshot, HealthStatus,
    KeyEstimate, ProviderSnapshot,
};
pub use message::OutboundMessage;
pub use outcome::{AttemptOutcome, Certainty, Conversion, Delivery, ErrorClass, Failure};
pub use plan::{
    Candidate, Exclusion, ExclusionReason, NumberDigits, Plan, RankNote, RouteQuery, Score,
    Strategy, plan,
};
pub use price::{PriceConfig, PriceTable};
pub use route::{
    CountrySet, Mismatch, Optimize, ProviderCatalog, RouteConfig, RouteRule, RouteTable, RuleId,
    RuleMatch,
};
pub use speech::{Speech, speak_passcode};
pub use spend::SpendBook;
pub use switch::{OperatorState, OperatorSwitches};
pub use text::{Encoding, Segments, Template, TemplateConfig, TemplateSet};
