//! Benchmarks live in `benches/`; run them with `cargo bench -p switchboard-benches`.
//!
//! [`load`] is the load harness behind `cargo run --release -p switchboard-benches --bin load`:
//! the release `switchboard serve` as a child process, the Twilio emulator, a bare forwarder of
//! our own, an open-loop client and HdrHistogram percentiles (BENCHMARKS.md, "Load harness").

pub mod load;
