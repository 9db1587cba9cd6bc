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
//! Layout: [`faults`] (what to do wrong), `server` (the accept loop that can reset a connection),
//! `journal` and `admin` (the request log and `/__sim/*` routes), shared by every provider;
//! provider-specific code lives in its own module ([`twilio`], [`aws`], [`webhook`]).

mod admin;
pub mod aws;
pub mod faults;
mod journal;
mod server;
pub mod twilio;
pub mod webhook;

pub use faults::{Fault, Faults};
