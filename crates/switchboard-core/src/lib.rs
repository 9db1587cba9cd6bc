//! The pure routing core of switchboard: domain types, provider health, prices, the retry
//! budget, route matching, ranking and planning, and the records that explain a decision.
//!
//! This crate must never do I/O, read a clock or draw randomness. Callers pass `now` (and, where
//! a decision is randomised, an RNG), so every routing decision can be replayed deterministically
//! in tests and in the simulator. Its manifest has no tokio, reqwest or axum.

pub mod attempt;
pub mod budget;
pub mod config;
pub mod destination;
pub mod domain;
pub mod explain;
pub mod health;
pub mod outcome;
pub mod plan;
pub mod price;
pub mod route;
#[cfg(test)]
mod script;
pub mod speech;
pub mod spend;
pub mod text;

pub use attempt::{Admission, AttemptKind, begin_attempt};
pub use budget::{BudgetConfig, BudgetPolicy, BudgetSnapshot, RetryBudget};
pub use config::ConfigError;
pub use destination::{DestinationError, NumberKind, Placement};
pub use domain::{
    Channel, Country, Destination, Locale, MessageText, OutboundMessage, Passcode, ProviderId,
    Purpose,
};
pub use explain::{DecisionRecord, Explanation, RecordedCandidate, RuleCheck, explain};
pub use health::{
    EjectionCause, HealthBook, HealthConfig, HealthKey, HealthPolicy, HealthSnapshot, HealthStatus,
    KeyEstimate, OperatorState, ProviderSnapshot,
};
pub use outcome::{AttemptOutcome, Certainty, Delivery, ErrorClass, Failure};
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
pub use text::{Encoding, Segments, Template, TemplateConfig, TemplateSet};
