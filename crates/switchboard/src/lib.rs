//! The `switchboard` binary's subcommands that are more than a few lines: the demo and the
//! standalone emulator. Kept in a library so tests can drive them.

pub mod demo;
pub mod emulate;
