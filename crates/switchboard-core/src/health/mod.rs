//! Observed health per (provider, country, channel): ejection with growing cooldowns and a single
//! probation trial, windowed, recent and provider-wide success rates, Peak-EWMA accept latency
//! and delivery receipts, kept apart from the operator's switch (`switch.rs`). The retry budget
//! is not here either: it is its own state (`budget.rs`), and [`crate::attempt::begin_attempt`]
//! asks all three.
//!
//! # Why per (provider, country, channel)?
//!
//! A provider is rarely down everywhere: a carrier route in one country browns out, voice breaks
//! while SMS works, a sender id is refused in one market. Keying health by [`HealthKey`] keeps a
//! failure in one place from costing traffic everywhere else. Account-wide answers are the
//! exception: a rate limit (`Retry-After`) and the operator's switch apply to the provider as a
//! whole.
//!
//! # Reading order
//!
//! - `config.rs`: the `[health]` section ([`HealthConfig`]) and its validated form
//!   ([`HealthPolicy`]).
//! - `estimators.rs`: the estimators a key is judged by: the time-bucketed window, Peak-EWMA
//!   latency, fading rates (a key's recent rate, a provider's pool) and decayed tallies of
//!   receipts and conversions.
//! - `delivery.rs`: whether a key's messages reach phones, from receipts and conversions judged
//!   against its peers ([`DeliveryEvidence`]): route problems demote and eject, receipts that
//!   stop are flagged.
//! - `key.rs`: what health is kept per ([`HealthKey`]) and the per-key state machine: ejection,
//!   probation and its trial, early trials, and the estimate ranking reads ([`KeyEstimate`]).
//! - `book.rs`: the [`HealthBook`], every key plus provider-wide state (rate limits,
//!   exploration), what dispatch records into and the planner reads.
//! - `remote.rs`: what other replicas saw (ejections, rate limits, recoveries, who runs a
//!   trial), applied to the book; never shortening anything.
//!
//! # The operator's switch
//!
//! The operator's switch is not health: it is its own state (`switch.rs`), and health's
//! snapshots take it as an argument to report it beside each key. [`OperatorState`] is
//! re-exported here for the paths that name it `health::OperatorState`.

mod book;
mod config;
mod delivery;
mod estimators;
mod key;
mod remote;

pub use crate::switch::OperatorState;
pub use book::{
    EARLY_TRIAL_INTERVAL, HealthBook, HealthClaim, HealthRefusal, HealthSnapshot,
    MIN_QUANTILE_SAMPLES, ProviderSnapshot,
};
pub use config::{HealthConfig, HealthPolicy};
pub use delivery::{DeliveryEvidence, Evidence, Verdict};
pub use key::{EjectionCause, HealthKey, HealthStatus, KeyEstimate};
pub use remote::EjectionNotice;

#[cfg(test)]
mod tests;
