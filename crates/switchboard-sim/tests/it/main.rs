//! The crate's integration tests, linked into one binary: one module per area, `support` for
//! the helpers they share. (One binary per file linked axum, reqwest and the emulators once per
//! file, which made the CI build slow.)

mod support;

mod aws;
mod delivery;
mod infobip;
mod oauth;
mod plivo;
mod sinch;
mod telesign;
mod twilio;
mod vonage;
mod webhook;
