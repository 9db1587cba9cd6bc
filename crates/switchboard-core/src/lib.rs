//! The pure routing core of switchboard: domain types, provider health, route matching and
//! planning.
//!
//! This crate must never do I/O, read a clock or draw randomness. Callers pass `now` (and, where
//! a decision is randomised, an RNG), so every routing decision can be replayed deterministically
//! in tests and in the simulator. Its manifest has no tokio, reqwest or axum.

pub mod config;
pub mod destination;
pub mod domain;
pub mod health;
pub mod outcome;
pub mod plan;
pub mod route;
#[cfg(test)]
mod script;
pub mod speech;
pub mod text;

pub use config::ConfigError;
pub use destination::{DestinationError, NumberKind};
pub use domain::{
    Channel, Country, Destination, Locale, MessageText, OutboundMessage, Passcode, ProviderId,
    Purpose,
};
pub use health::{
    HealthBook, HealthConfig, HealthKey, HealthPolicy, HealthSnapshot, HealthStatus, OperatorState,
};
pub use outcome::{AttemptOutcome, Certainty, ErrorClass, Failure};
pub use plan::{Candidate, Exclusion, ExclusionReason, Plan, RouteQuery, plan};
pub use route::{
    CountrySet, ProviderCatalog, RouteConfig, RouteRule, RouteTable, RuleId, RuleMatch,
};
pub use speech::{Speech, speak_passcode};
pub use text::{Encoding, Segments, Template, TemplateConfig, TemplateSet};
