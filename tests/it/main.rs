//! End-to-end tests: the real server, real adapters and provider emulators, over loopback
//! sockets. One test binary (faster to link than one per file).

mod admin;
mod delivery_truth;
mod events;
mod failover;
mod fleet;
mod fleet_health;
mod fleet_ledger;
mod fleet_limits;
mod fleet_receipts;
mod guard;
mod helpers;
mod hook;
mod hostile;
mod idempotency;
mod layering;
mod oauth;
mod observability;
mod receipts;
