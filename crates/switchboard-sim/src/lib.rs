//! Emulators of the providers' real HTTP APIs, with fault injection, for tests, benchmarks and
//! the demo.
//!
//! An emulator answers the same paths, auth, parameters and error bodies as the provider, so an
//! adapter pointed at it cannot tell the difference; faults (latency, error answers, rate limits,
//! hangs, connection resets) are set at runtime in-process or over `/__sim/*`. Each emulator
//! records what it received so tests can assert on exactly what the adapter sent.
//!
//! This crate must never be used by production routing: nothing outside tests, benches and the
//! demo depends on it, and it never talks to a real provider.
//!
//! Layout: [`Emulator`] (the wrapper every emulator is, generic over the provider's [`Api`]),
//! [`faults`] (what to do wrong), `server` (the accept loop that can reset a connection),
//! `journal` and `admin` (the request log and `/__sim/*` routes), shared by every provider;
//! [`callbacks`] (receipts, status callbacks and answer-URL fetches an emulator makes back to
//! its caller; each provider renders its own);
//! provider-specific code lives in its own module ([`twilio`], [`aws`], [`webhook`], [`vonage`],
//! [`sinch`], [`telesign`], [`infobip`], [`plivo`]).
//! [`oauth`] emulates the other side of the hook: the Okta authorization server whose tokens
//! the hook verifies.

mod admin;
pub mod aws;
pub mod callbacks;
mod country;
mod emulator;
pub mod faults;
pub mod infobip;
mod journal;
pub mod oauth;
pub mod plivo;
pub mod redis;
mod request;
mod server;
pub mod sinch;
pub mod telesign;
pub mod twilio;
pub mod vonage;
pub mod webhook;

pub use callbacks::{
    CallbackApi, CallbackKind, CountryDelivery, Handset, HandsetReceipt, ReceiptOutcome, Receipts,
    SentCallback,
};
pub use emulator::{AccountApi, Api, Emulator, Running};
pub use faults::{Fault, Faults};

/// Serialises a time as RFC 3339, for the journals' `received_at`.
pub(crate) fn serialize_rfc3339<S: serde::Serializer>(
    at: &std::time::SystemTime,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let text = time::OffsetDateTime::from(*at)
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(serde::ser::Error::custom)?;
    serializer.serialize_str(&text)
}
