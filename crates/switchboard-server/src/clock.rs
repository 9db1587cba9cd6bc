//! The server's clocks, injected so that paused tokio time (tests, the simulator) drives every
//! piece of state that counts time.
//!
//! - [`TokioClock`]: the guard's rate limits (`governor`) on `tokio::time::Instant`, the clock the
//!   rest of the request path already reads. In production it is the monotonic clock.
//! - [`WallClock`]: the UTC day the daily spend caps are kept by. The system's clock in
//!   production; a clock that follows tokio's from a fixed start when replaying traffic.

use std::ops::Add;

use governor::clock::{Clock, Reference};
use governor::nanos::Nanos;

/// A `governor` clock that reads tokio's time, so `tokio::time::pause` and `advance` refill the
/// guard's limits as they do every other timer in the server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct TokioClock;

/// A reading of [`TokioClock`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct TokioInstant(tokio::time::Instant);

impl Add<Nanos> for TokioInstant {
    type Output = TokioInstant;

    fn add(self, other: Nanos) -> TokioInstant {
        TokioInstant(self.0 + std::time::Duration::from(other))
    }
}

impl Reference for TokioInstant {
    fn duration_since(&self, earlier: TokioInstant) -> Nanos {
        self.0.saturating_duration_since(earlier.0).into()
    }

    fn saturating_sub(&self, duration: Nanos) -> TokioInstant {
        self.0.checked_sub(duration.into()).map_or(*self, TokioInstant)
    }
}

impl Clock for TokioClock {
    type Instant = TokioInstant;

    fn now(&self) -> TokioInstant {
        TokioInstant(tokio::time::Instant::now())
    }
}

/// Where the UTC date comes from.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) enum WallClock {
    /// The system's clock.
    #[default]
    System,
    /// `start_unix` seconds at `start`, moving with tokio's clock (paused or not): for replays.
    #[cfg(test)]
    FollowingTokio { start_unix: i64, start: tokio::time::Instant },
}

impl WallClock {
    /// Seconds since the Unix epoch.
    pub(crate) fn unix_seconds(self) -> i64 {
        match self {
            WallClock::System => time::OffsetDateTime::now_utc().unix_timestamp(),
            #[cfg(test)]
            WallClock::FollowingTokio { start_unix, start } => {
                let elapsed = tokio::time::Instant::now().saturating_duration_since(start);
                start_unix.saturating_add(i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX))
            }
        }
    }

    /// Days since the Unix epoch, UTC.
    pub(crate) fn today(self) -> i64 {
        switchboard_core::spend::utc_day(self.unix_seconds())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn paused_time_drives_the_guard_clock_and_the_day() {
        let wall = WallClock::FollowingTokio {
            start_unix: 86_400 * 10 - 1,
            start: tokio::time::Instant::now(),
        };
        let before = TokioClock.now();
        assert_eq!(wall.today(), 9);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(wall.today(), 10, "midnight UTC");
        assert_eq!(TokioClock.now().duration_since(before), Duration::from_secs(1).into());
    }
}
