//! The binary crate's integration tests, linked once: one module per command under test.
//!
//! `env!("CARGO_BIN_EXE_switchboard")` (used by `cli`) is set for every integration test target
//! of this package, so the merged binary still finds the built `switchboard` executable.

mod chaos;
mod cli;
mod demo;
mod simulate;
