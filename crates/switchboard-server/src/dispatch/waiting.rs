//! Waiting between passes of a background delivery: a growing backoff after a pass that sent
//! and failed, a short look again after a pass that found nobody to send to, and one last pass
//! before the code expires.

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::Progress;

/// The last pass of a background delivery starts at least this long before the code expires,
/// whatever the backoff says, so a provider has time to answer it.
pub(super) const LAST_PASS_LEAD: Duration = Duration::from_secs(1);

/// Backoff between passes never grows past this: an OTP lives minutes, and a provider that
/// recovers should get the waiting codes within seconds. Failing providers are shielded by
/// ejection, not by the backoff.
pub(super) const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// How often a background delivery with no provider it may send to looks again. Planning is
/// cheap and sends nothing, so this only bounds how late a recovered provider is noticed.
pub(super) const WAIT_FOR_PROVIDER: Duration = Duration::from_millis(500);

/// The pause before the next pass, doubling after each pass that sent.
#[derive(Debug, Clone, Copy)]
pub(super) struct Backoff {
    next: Duration,
}

impl Backoff {
    /// Starts at `first` (`delivery.retry_backoff`).
    pub(super) fn new(first: Duration) -> Backoff {
        Backoff { next: first }
    }

    /// The wait after a pass that tried `n_tried` attempts. A pass that sent and failed backs
    /// off; a pass that found nobody to send to looks again soon, so a provider whose ejection
    /// ends is used at once.
    pub(super) fn after(&mut self, n_tried: u32) -> Duration {
        if n_tried == 0 {
            return WAIT_FOR_PROVIDER.min(self.next);
        }
        let wait = self.next;
        self.next = (self.next * 2).min(MAX_BACKOFF);
        wait
    }
}

/// When the next pass starts, `wait` after `now`: a wait that would outlast the code is cut
/// short for one last pass, with time left for a provider to answer. `None` when no pass can
/// start any more.
pub(super) fn next_pass_at(
    now: Instant,
    wait: Duration,
    attempt_deadline: Instant,
) -> Option<Instant> {
    let last_chance = attempt_deadline.checked_sub(LAST_PASS_LEAD);
    let next_pass = last_chance.map_or(now, |last| (now + wait).min(last));
    (next_pass > now).then_some(next_pass)
}

/// Sleeps until the next pass after one that tried `n_tried` attempts, saying so in the
/// progress (the handler answers Okta then). `false` when the code expires first.
pub(super) async fn until_next_pass(
    backoff: &mut Backoff,
    n_tried: u32,
    attempt_deadline: Instant,
    progress: &watch::Sender<Progress>,
) -> bool {
    let wait = backoff.after(n_tried);
    let Some(next_pass) = next_pass_at(Instant::now(), wait, attempt_deadline) else {
        return false;
    };
    progress.send_modify(|p| p.is_waiting = true);
    tokio::time::sleep_until(next_pass).await;
    progress.send_modify(|p| p.is_waiting = false);
    true
}
