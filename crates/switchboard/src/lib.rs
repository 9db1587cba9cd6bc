//! The `switchboard` binary's subcommands that are more than a few lines: the demo, the chaos
//! benchmark, the standalone emulator and the simulator. Kept in a library so tests can drive them.

pub mod chaos;
pub mod demo;
pub mod emulate;
mod harness;
pub mod simulate;
