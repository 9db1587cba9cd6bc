//! What other replicas saw, applied to this replica's book: the pure half of sharing health
//! through Redis (the server's `fleet/health.rs` is the other half).
//!
//! Only the decisions that must hold fleet-wide cross processes: a key's ejection (every replica
//! skips it), a provider's `Retry-After` (it asked the account, not one replica, to wait), a
//! recovery (the trial succeeded somewhere, so every replica may use the key again), and who
//! runs a probation trial (one replica; the others hold off). Each is applied here as a value
//! with an end time already converted to this process's clock: instants do not cross processes.
//!
//! Applying never shortens anything: an ejection or a rate limit only ever moves its end later
//! (LiteLLM's #40130 let a later, shorter cooldown cut an earlier, longer one short), and a
//! recovery is the caller's to match against the ejection it ends. Success windows, Peak-EWMA
//! latency and delivery evidence are never applied from elsewhere: see the server's
//! `fleet/health.rs` for why they stay per replica.

use std::time::Instant;

use super::HealthBook;
use super::key::{Ejection, EjectionCause, HealthKey};
use crate::domain::ProviderId;

/// A key's ejection as replicas exchange it: when it ends, why, and how many ejections set its
/// length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EjectionNotice {
    /// When probation starts, on this process's clock.
    pub until: Instant,
    /// Which test ejected the key.
    pub cause: EjectionCause,
    /// Ejections that set its length.
    pub times: u32,
}

impl HealthBook {
    /// `key`'s ejection, in force or awaiting its probation trial.
    #[must_use]
    pub fn ejection(&self, key: &HealthKey) -> Option<EjectionNotice> {
        let health = self.keys.get(key)?;
        let ejection = health.ejection?;
        Some(EjectionNotice {
            until: ejection.until,
            cause: ejection.cause,
            times: health.times_ejected,
        })
    }

    /// Another replica ejected `key`: eject it here too, until `notice.until`, unless it is
    /// already ejected at least as long. Returns whether anything changed.
    pub fn apply_ejection(&mut self, key: &HealthKey, notice: EjectionNotice) -> bool {
        let health = self.keys.entry(key.clone()).or_default();
        match &mut health.ejection {
            Some(ejection) if ejection.until >= notice.until => return false,
            Some(ejection) => {
                // A re-ejection (the trial failed elsewhere): any trial this replica holds is
                // moot, and its answer, arriving before the new end, changes nothing.
                ejection.until = notice.until;
                ejection.cause = notice.cause;
                ejection.trial_lease = None;
            }
            None => {
                health.ejection = Some(Ejection {
                    until: notice.until,
                    cause: notice.cause,
                    trial_lease: None,
                    early_trial: None,
                });
                health.recovered_at = None;
                health.clear_counts();
            }
        }
        health.times_ejected = health.times_ejected.max(notice.times);
        true
    }

    /// Another replica was told by `provider` to wait until `until`: wait here too, unless a
    /// later end is already known. Returns whether anything changed.
    pub fn apply_rate_limit(&mut self, provider: &ProviderId, until: Instant) -> bool {
        let state = self.providers.entry(provider.clone()).or_default();
        if state.rate_limited_until.is_some_and(|known| known >= until) {
            return false;
        }
        state.rate_limited_until = Some(until);
        true
    }

    /// A trial of `key` succeeded on another replica: the key is back here too, as if this
    /// replica's own trial had succeeded. Returns whether it was ejected.
    pub fn apply_recovery(&mut self, key: &HealthKey, now: Instant) -> bool {
        let Some(health) = self.keys.get_mut(key) else { return false };
        if health.ejection.is_none() {
            return false;
        }
        health.ejection = None;
        health.consecutive_failures = 0;
        health.recovered_at = Some(now);
        health.clear_counts();
        true
    }

    /// Another replica runs `key`'s probation trial until `until` (its lease): attempts here
    /// are refused as if a trial of this replica's were in flight, and the key shows so.
    /// Returns whether the key is ejected (nothing is held otherwise).
    pub fn hold_trial(&mut self, key: &HealthKey, until: Instant) -> bool {
        let Some(ejection) = self.keys.get_mut(key).and_then(|health| health.ejection.as_mut())
        else {
            return false;
        };
        ejection.trial_lease = Some(ejection.trial_lease.map_or(until, |lease| lease.max(until)));
        true
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::domain::{Channel, Country};
    use crate::health::{HealthConfig, HealthPolicy, HealthRefusal, HealthStatus};
    use crate::outcome::{AttemptOutcome, Certainty, ErrorClass, Failure};

    fn book() -> HealthBook {
        let mut config = HealthConfig::defaults();
        config.consecutive_failures = 1;
        HealthBook::new(HealthPolicy::try_new(&config).unwrap())
    }

    fn key() -> HealthKey {
        HealthKey::new(
            ProviderId::parse("twilio").unwrap(),
            Country::parse("US").unwrap(),
            Channel::Sms,
        )
    }

    fn fault() -> AttemptOutcome {
        AttemptOutcome::Failed(Failure {
            class: ErrorClass::Transient,
            certainty: Certainty::NotSent,
            retry_after: None,
        })
    }

    fn notice(until: Instant, times: u32) -> EjectionNotice {
        EjectionNotice { until, cause: EjectionCause::ConsecutiveFailures, times }
    }

    #[test]
    fn a_remote_ejection_only_ever_moves_the_end_later() {
        let (mut book, now) = (book(), Instant::now());
        let long = now + Duration::from_secs(60);
        assert!(book.apply_ejection(&key(), notice(long, 2)));
        assert_eq!(book.status(&key(), now), HealthStatus::Ejected { until: long, times: 2 });
        // A later, shorter ejection does not cut it short.
        assert!(!book.apply_ejection(&key(), notice(now + Duration::from_secs(5), 1)));
        assert_eq!(book.ejection(&key()).map(|e| e.until), Some(long));
        let longer = now + Duration::from_secs(90);
        assert!(book.apply_ejection(&key(), notice(longer, 1)));
        assert_eq!(book.status(&key(), now), HealthStatus::Ejected { until: longer, times: 2 });
    }

    #[test]
    fn a_remote_rate_limit_only_ever_moves_the_end_later() {
        let (mut book, now) = (book(), Instant::now());
        let provider = key().provider().clone();
        let long = now + Duration::from_secs(30);
        assert!(book.apply_rate_limit(&provider, long));
        assert!(!book.apply_rate_limit(&provider, now + Duration::from_secs(1)));
        assert_eq!(book.status(&key(), now), HealthStatus::RateLimited { until: long });
    }

    #[test]
    fn a_remote_recovery_ends_a_local_ejection() {
        let (mut book, now) = (book(), Instant::now());
        book.record(&key(), &fault(), Duration::from_millis(10), now);
        assert!(matches!(book.status(&key(), now), HealthStatus::Ejected { .. }));
        assert!(book.apply_recovery(&key(), now));
        assert_eq!(book.status(&key(), now), HealthStatus::Healthy);
        assert!(!book.apply_recovery(&key(), now), "nothing left to end");
    }

    #[test]
    fn a_trial_held_elsewhere_refuses_the_trial_here_until_its_lease_ends() {
        let (mut book, now) = (book(), Instant::now());
        assert!(!book.hold_trial(&key(), now), "a healthy key has no trial");
        let until = now + Duration::from_secs(1);
        book.apply_ejection(&key(), notice(until, 1));
        let lease = until + Duration::from_secs(5);
        assert!(book.hold_trial(&key(), lease));
        assert_eq!(book.status(&key(), until), HealthStatus::Probation { trial_in_flight: true });
        assert_eq!(book.admit(&key(), false, false, until), Err(HealthRefusal::TrialInFlight));
        // The lease runs out unanswered: the trial is free again.
        let claim = book.admit(&key(), false, false, lease).unwrap();
        book.claim(claim, lease);
        assert_eq!(book.status(&key(), lease), HealthStatus::Probation { trial_in_flight: true });
    }
}
