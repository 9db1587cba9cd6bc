//! The two baselines switchboard is compared with. These are NOT switchboard: they are the
//! policies a team writes without it, kept here, in the simulator, as small as they are in life.
//!
//! - **Static priority failover**: the route's providers in configured order, every time, with
//!   no memory of what failed before (no ejection, no rate-limit wait, no ranking).
//! - **Round-robin**: the same, but each OTP starts one provider further along the list.
//!
//! Everything else is held equal so the comparison is about routing alone: the same emulated
//! providers with the same per-request timeouts, the same route rules, and the server's delivery
//! rules as `dispatch.rs` applies them (the answer deadline, `max_attempts`, background passes
//! with doubling backoff until the OTP expires when `report = "always_success"`, never a second
//! send to a provider that may already have the message, no failover on a number-level verdict,
//! no attempt with under 50 ms left).

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use switchboard_core::plan::RouteQuery;
use switchboard_core::{Certainty, ProviderId, Purpose};
use switchboard_server::Settings;
use switchboard_server::config::Report;
use tokio::time::Instant;

use super::emulated::EmulatedProvider;
use super::traffic::Arrival;

/// As in `dispatch.rs`: below this much time left, another attempt cannot finish.
const MIN_ATTEMPT_TIME: Duration = Duration::from_millis(50);
/// As in `dispatch.rs`: backoff between passes never grows past this.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Which baseline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Baseline {
    /// Configured order every time.
    Priority,
    /// Configured order, rotated one step per OTP.
    RoundRobin,
}

/// A baseline router over the emulated providers.
#[derive(Debug)]
pub(crate) struct BaselineRouter {
    baseline: Baseline,
    settings: Settings,
    /// Emulated providers, in scenario index order.
    providers: Vec<(ProviderId, Arc<EmulatedProvider>)>,
    next_start: AtomicUsize,
}

impl BaselineRouter {
    pub(crate) fn new(
        baseline: Baseline,
        settings: Settings,
        providers: Vec<(ProviderId, Arc<EmulatedProvider>)>,
    ) -> BaselineRouter {
        BaselineRouter { baseline, settings, providers, next_start: AtomicUsize::new(0) }
    }

    /// Delivers OTP `otp` as the baseline would, from now until it is accepted or given up.
    pub(crate) async fn deliver(&self, arrival: &Arrival, otp: usize) {
        let received = Instant::now();
        let settings = &self.settings;
        let delivery = &settings.delivery;
        let answer_deadline = received + settings.okta.deadline;
        let is_background = settings.okta.report == Report::AlwaysSuccess && delivery.background;
        let (attempt_deadline, max_passes) = if is_background {
            ((received + delivery.default_otp_lifetime).max(answer_deadline), u32::MAX)
        } else {
            (answer_deadline, 1)
        };
        // The rule the server would match (Okta's requestType is mfa-verification), read for
        // its configured order only: the baselines know nothing of ranking or strategies.
        let query = RouteQuery::for_destination(&arrival.destination, arrival.channel)
            .with_purpose(Purpose::Verification);
        let Some(rule) = settings.routes.find(&query) else { return };
        let mut order: Vec<&Arc<EmulatedProvider>> = rule
            .rule
            .providers()
            .iter()
            .filter_map(|id| self.providers.iter().find(|(p, _)| p == id).map(|(_, p)| p))
            .collect();
        if order.is_empty() {
            return;
        }
        if self.baseline == Baseline::RoundRobin {
            let start = self.next_start.fetch_add(1, Ordering::Relaxed) % order.len();
            order.rotate_left(start);
        }

        let mut possibly_accepted: HashSet<usize> = HashSet::new();
        let mut n_attempts = 0;
        let mut backoff = delivery.retry_backoff;
        for pass in 0..max_passes {
            let mut n_tried_this_pass = 0;
            for (position, provider) in order.iter().enumerate() {
                if possibly_accepted.contains(&position) {
                    continue;
                }
                let remaining = attempt_deadline.saturating_duration_since(Instant::now());
                if n_attempts >= delivery.max_attempts || remaining < MIN_ATTEMPT_TIME {
                    return;
                }
                n_attempts += 1;
                n_tried_this_pass += 1;
                match tokio::time::timeout(remaining, provider.deliver(arrival, otp)).await {
                    Ok(Ok(_)) => return,
                    Ok(Err(error)) if !error.class.is_failover_allowed() => return,
                    Ok(Err(error)) if error.certainty == Certainty::PossiblyAccepted => {
                        possibly_accepted.insert(position);
                    }
                    Ok(Err(_)) => {}
                    Err(_elapsed) => {
                        possibly_accepted.insert(position);
                    }
                }
            }
            let next_pass = Instant::now() + backoff;
            if pass + 1 >= max_passes
                || n_tried_this_pass == 0
                || n_attempts >= delivery.max_attempts
                || next_pass + MIN_ATTEMPT_TIME > attempt_deadline
            {
                return;
            }
            tokio::time::sleep_until(next_pass).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}
