//! End-to-end test crate (tests live in `it/`).
