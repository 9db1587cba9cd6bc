//! The binary crate's integration tests, linked once: one module per command under test.
//!
//! `env!("CARGO_BIN_EXE_switchboard")` (used by `cli`) is set for every integration test target
//! of this package, so the merged binary still finds the built `switchboard` executable.

mod chaos;
mod cli;
mod demo;
mod simulate;

/// Held by every test that runs the real server on the wall clock (demo, chaos, `serve`): linked
/// into one binary they would otherwise run at once and share the machine's cores, and their
/// deadlines are real. The simulations run on paused time and need no turn.
static WALL_CLOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
