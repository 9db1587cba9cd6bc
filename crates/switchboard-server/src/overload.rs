//! Admission control: when the server could not answer a hook request in time, it says so at
//! once instead of answering late.
//!
//! Okta waits 3 seconds, then sends through its own providers anyway; a late answer is the
//! worst of both worlds (our send *and* Okta's, or neither if ours then fails). Three things
//! mean a request would be late or would grow memory without bound, and each sheds it before
//! its body is read:
//!
//! - too many hook requests between arrival and answer (`server.max_in_flight`): each holds a
//!   task, a connection and a timer, and past some number the runtime cannot serve them all
//!   within the deadline;
//! - the request already waited more than half its deadline before its handler ran (the
//!   runtime is behind; whatever it does now will be late);
//! - too many deliveries running, answered or not (`server.max_deliveries`): background
//!   deliveries live for the OTP's lifetime, and this bounds their memory.
//!
//! A shed request gets `okta.shed_answer`: by default Okta's FAILED at once, so Okta's own
//! providers send the code (rate-limited, but a code), which serves the user better than
//! SUCCESSFUL with nothing sent (a lost code) or a late answer. `retry` answers 503 instead, so
//! that Okta's one retry may land on a less loaded replica.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// Counts of what is running, shared by every handler. Permits give their slot back on drop.
#[derive(Debug, Default)]
pub(crate) struct Load {
    in_flight: Arc<AtomicUsize>,
    deliveries: Arc<AtomicUsize>,
}

/// Why a request was shed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Shed {
    /// `server.max_in_flight` requests are waiting for their answers.
    InFlight,
    /// The request waited more than half its deadline before it was handled.
    Queued,
    /// `server.max_deliveries` deliveries are running.
    Deliveries,
}

impl Shed {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Shed::InFlight => "in_flight",
            Shed::Queued => "queued",
            Shed::Deliveries => "deliveries",
        }
    }
}

/// A slot in one of the counts, released on drop.
#[derive(Debug)]
pub(crate) struct Permit {
    count: Arc<AtomicUsize>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Load {
    /// Admits a request that arrived at `arrival` and must be answered `deadline` later, or
    /// says why it must be shed. The permit is held until the answer is written.
    pub(crate) fn admit(
        &self,
        arrival: Instant,
        deadline: Duration,
        max_in_flight: usize,
        max_deliveries: usize,
    ) -> Result<Permit, Shed> {
        if arrival.elapsed() > deadline / 2 {
            return Err(Shed::Queued);
        }
        if self.deliveries.load(Ordering::Acquire) >= max_deliveries {
            return Err(Shed::Deliveries);
        }
        take(&self.in_flight, max_in_flight).ok_or(Shed::InFlight)
    }

    /// A slot for one delivery, held by its task until it ends. `None` when `max` are running.
    pub(crate) fn start_delivery(&self, max: usize) -> Option<Permit> {
        take(&self.deliveries, max)
    }

    /// Hook requests waiting for their answers now.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Deliveries running now.
    pub(crate) fn deliveries(&self) -> usize {
        self.deliveries.load(Ordering::Acquire)
    }
}

fn take(count: &Arc<AtomicUsize>, max: usize) -> Option<Permit> {
    count
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1))
        .ok()
        .map(|_| Permit { count: Arc::clone(count) })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEADLINE: Duration = Duration::from_millis(2_500);

    #[tokio::test(start_paused = true)]
    async fn requests_past_the_in_flight_limit_are_shed_until_one_answers() {
        let load = Load::default();
        let first = load.admit(Instant::now(), DEADLINE, 2, 10).unwrap();
        let _second = load.admit(Instant::now(), DEADLINE, 2, 10).unwrap();
        assert_eq!(load.admit(Instant::now(), DEADLINE, 2, 10).unwrap_err(), Shed::InFlight);
        assert_eq!(load.in_flight(), 2);
        drop(first);
        assert!(load.admit(Instant::now(), DEADLINE, 2, 10).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_that_waited_half_its_deadline_is_shed() {
        let load = Load::default();
        let arrival = Instant::now();
        tokio::time::advance(Duration::from_millis(1_250)).await;
        assert!(load.admit(arrival, DEADLINE, 10, 10).is_ok(), "exactly half is still in time");
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(load.admit(arrival, DEADLINE, 10, 10).unwrap_err(), Shed::Queued);
    }

    #[tokio::test(start_paused = true)]
    async fn running_deliveries_bound_new_requests() {
        let load = Load::default();
        let delivery = load.start_delivery(1).unwrap();
        assert!(load.start_delivery(1).is_none());
        assert_eq!(load.admit(Instant::now(), DEADLINE, 10, 1).unwrap_err(), Shed::Deliveries);
        drop(delivery);
        assert_eq!(load.deliveries(), 0);
        assert!(load.admit(Instant::now(), DEADLINE, 10, 1).is_ok());
    }
}
