//! The circuit breaker in front of Redis: after `failures` calls in a row fail or time out, calls
//! fail at once for `open_for`, then one call at a time is let through until one succeeds. A
//! slow Redis is worse than a down one: without the breaker every hook request would spend its
//! whole timeout on it.

use std::time::Duration;

use tokio::time::Instant;

/// Where the breaker is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Position {
    /// Calls go through.
    Closed,
    /// Calls fail at once until the instant; then one probe goes through.
    Open { until: Instant },
    /// One probe is out; other calls fail at once until it returns.
    Probing,
}

/// A change worth one log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Transition {
    Opened,
    Closed,
}

#[derive(Debug)]
pub(crate) struct Breaker {
    failures: u32,
    open_for: Duration,
    consecutive: u32,
    position: Position,
}

impl Breaker {
    pub(crate) fn new(failures: u32, open_for: Duration) -> Breaker {
        Breaker { failures: failures.max(1), open_for, consecutive: 0, position: Position::Closed }
    }

    /// Whether a call may go to Redis now.
    pub(crate) fn allow(&mut self, now: Instant) -> bool {
        match self.position {
            Position::Closed => true,
            Position::Open { until } if now >= until => {
                self.position = Position::Probing;
                true
            }
            Position::Open { .. } | Position::Probing => false,
        }
    }

    /// A call that was let through came back.
    pub(crate) fn record(&mut self, is_ok: bool, now: Instant) -> Option<Transition> {
        if is_ok {
            self.consecutive = 0;
            let was_open = self.position != Position::Closed;
            self.position = Position::Closed;
            return was_open.then_some(Transition::Closed);
        }
        self.consecutive = self.consecutive.saturating_add(1);
        match self.position {
            Position::Closed if self.consecutive >= self.failures => {
                self.position = Position::Open { until: now + self.open_for };
                Some(Transition::Opened)
            }
            Position::Closed => None,
            // A failed probe (or a call that was out when the breaker opened) keeps it open.
            Position::Probing | Position::Open { .. } => {
                self.position = Position::Open { until: now + self.open_for };
                None
            }
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.position == Position::Closed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_consecutive_failures_and_probes_one_call_at_a_time() {
        let start = Instant::now();
        let second = Duration::from_secs(1);
        let mut breaker = Breaker::new(3, second);
        assert!(breaker.allow(start));
        assert_eq!(breaker.record(false, start), None);
        assert_eq!(breaker.record(true, start), None, "a success resets the count");
        assert_eq!(breaker.record(false, start), None);
        assert_eq!(breaker.record(false, start), None);
        assert_eq!(breaker.record(false, start), Some(Transition::Opened));
        assert!(!breaker.allow(start + second / 2), "open: fail at once");
        assert!(breaker.allow(start + second), "the probe");
        assert!(!breaker.allow(start + second), "only one probe at a time");
        assert_eq!(breaker.record(false, start + second), None, "a failed probe reopens");
        assert!(!breaker.allow(start + second + second / 2));
        assert!(breaker.allow(start + 2 * second));
        assert_eq!(breaker.record(true, start + 2 * second), Some(Transition::Closed));
        assert!(breaker.is_closed());
        assert!(breaker.allow(start + 2 * second));
    }
}
