//! The crate's integration tests, linked into one binary: one module per area, `support` for
//! the helpers they share. (One binary per file linked axum, reqwest and the emulators once per
//! file, which made the CI build slow.)

mod support;

mod aws;
mod aws_conformance;
mod example_config;
mod infobip;
mod infobip_conformance;
mod plivo;
mod sinch;
mod sinch_conformance;
mod spec_fixtures;
mod telesign;
mod twilio;
mod twilio_conformance;
mod vonage;
mod vonage_conformance;
mod webhook;
