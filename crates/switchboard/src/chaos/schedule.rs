//! The fault schedule: what each provider does, phase by phase, drawn from a seeded RNG.
//!
//! A schedule is a pure function of (mix, seed, number of providers, horizon), so two runs with
//! the same seed break the same providers the same way at the same offsets; only socket timing
//! differs. The harness records when each phase was actually applied, and the accounting reads
//! that record, not this plan.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// How one provider behaves during a phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Condition {
    /// Answers normally, in tens of milliseconds.
    Healthy,
    /// Answers normally, but later than the adapter's timeout: the send is accepted (the
    /// provider has the message) while switchboard sees a timeout.
    Slow,
    /// Reads the request and never answers; nothing is sent.
    Hang,
    /// Reads the request and resets the connection; nothing is sent.
    Reset,
    /// Answers 503.
    ServerError,
    /// Answers 429 with `Retry-After`.
    RateLimited,
    /// Answers 401: the credentials were refused.
    AuthFailure,
    /// Not listening: connections are refused.
    Refused,
}

impl Condition {
    /// Every fault, in the order the RNG picks from.
    pub const FAULTS: [Condition; 7] = [
        Condition::Slow,
        Condition::Hang,
        Condition::Reset,
        Condition::ServerError,
        Condition::RateLimited,
        Condition::AuthFailure,
        Condition::Refused,
    ];

    /// Whether a send received in this condition reaches the user.
    #[must_use]
    pub fn is_accepting(self) -> bool {
        matches!(self, Condition::Healthy | Condition::Slow)
    }

    /// A short name for the tables.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Condition::Healthy => "healthy",
            Condition::Slow => "slow",
            Condition::Hang => "hang",
            Condition::Reset => "reset",
            Condition::ServerError => "5xx",
            Condition::RateLimited => "429",
            Condition::AuthFailure => "401",
            Condition::Refused => "refused",
        }
    }
}

/// How much goes wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mix {
    /// Every provider healthy throughout: the calibration run.
    None,
    /// Mostly healthy; faults of one to three seconds, one provider at a time more often than not.
    Mild,
    /// Most providers broken most of the time, with short periods where all are.
    Harsh,
    /// The first provider slower than its timeout throughout, the others healthy: every send to
    /// it is a possible duplicate (a calibration run for the duplicate accounting).
    PrimarySlow,
    /// Every provider takes requests and never answers, throughout: with a high `--rate`, the
    /// overload run (every answer waits for the deadline, or is shed).
    AllHang,
}

/// A condition from an offset on, until the next phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Phase {
    /// Offset from the start of the run.
    pub start: Duration,
    /// What the provider does.
    pub condition: Condition,
}

/// Per provider, its phases in time order; the first starts at zero.
pub(super) type Timeline = Vec<Phase>;

/// The condition in force at `at`.
#[must_use]
pub(super) fn condition_at(timeline: &[Phase], at: Duration) -> Condition {
    timeline
        .iter()
        .take_while(|phase| phase.start <= at)
        .last()
        .map_or(Condition::Healthy, |phase| phase.condition)
}

/// The longest stretch of `condition` overlapping `from..to`.
#[must_use]
pub(super) fn longest_overlap(
    timeline: &[Phase],
    condition: Condition,
    from: Duration,
    to: Duration,
) -> Duration {
    let mut longest = Duration::ZERO;
    for (index, phase) in timeline.iter().enumerate() {
        if phase.condition != condition {
            continue;
        }
        let end = timeline.get(index + 1).map_or(Duration::MAX, |next| next.start);
        let start = phase.start.max(from);
        let end = end.min(to);
        longest = longest.max(end.saturating_sub(start));
    }
    longest
}

/// Draws every provider's timeline up to `horizon`.
#[must_use]
pub(super) fn build(mix: Mix, seed: u64, n_providers: usize, horizon: Duration) -> Vec<Timeline> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x6368_616f_735f_7363);
    let mut timelines: Vec<Timeline> = (0..n_providers)
        .map(|provider| match mix {
            Mix::None => vec![Phase { start: Duration::ZERO, condition: Condition::Healthy }],
            Mix::PrimarySlow => {
                let condition = if provider == 0 { Condition::Slow } else { Condition::Healthy };
                vec![Phase { start: Duration::ZERO, condition }]
            }
            Mix::AllHang => vec![Phase { start: Duration::ZERO, condition: Condition::Hang }],
            // Healthy 5-12 s, then a fault of 1-3 s.
            Mix::Mild => alternate(&mut rng, horizon, (5_000, 12_000), (1_000, 3_000)),
            // Healthy 1-3 s, then a fault of 3-8 s.
            Mix::Harsh => alternate(&mut rng, horizon, (1_000, 3_000), (3_000, 8_000)),
        })
        .collect();
    if mix == Mix::Harsh {
        // Every 10-18 s, 2-4 s when every provider is broken at once.
        let mut at = Duration::from_millis(rng.random_range(3_000..8_000));
        while at < horizon {
            let length = Duration::from_millis(rng.random_range(2_000..4_000));
            for timeline in &mut timelines {
                let fault = pick_fault(&mut rng);
                overlay(timeline, at, at + length, fault);
            }
            at += length + Duration::from_millis(rng.random_range(10_000..18_000));
        }
    }
    timelines
}

/// Healthy and faulty phases in turn, from a random point in the first healthy phase.
fn alternate(
    rng: &mut StdRng,
    horizon: Duration,
    healthy_ms: (u64, u64),
    fault_ms: (u64, u64),
) -> Timeline {
    let mut timeline = vec![Phase { start: Duration::ZERO, condition: Condition::Healthy }];
    // Providers start at different points of their cycle, so faults do not all line up.
    let mut at = Duration::from_millis(rng.random_range(0..healthy_ms.1));
    while at < horizon {
        timeline.push(Phase { start: at, condition: pick_fault(rng) });
        at += Duration::from_millis(rng.random_range(fault_ms.0..=fault_ms.1));
        timeline.push(Phase { start: at, condition: Condition::Healthy });
        at += Duration::from_millis(rng.random_range(healthy_ms.0..=healthy_ms.1));
    }
    timeline
}

fn pick_fault(rng: &mut StdRng) -> Condition {
    Condition::FAULTS[rng.random_range(0..Condition::FAULTS.len())]
}

/// Puts `condition` in force over `from..to`, and what was in force before at `to`.
fn overlay(timeline: &mut Timeline, from: Duration, to: Duration, condition: Condition) {
    let after = condition_at(timeline, to);
    timeline.retain(|phase| phase.start < from || phase.start >= to);
    let index = timeline.partition_point(|phase| phase.start < from);
    timeline.insert(index, Phase { start: from, condition });
    if timeline.get(index + 1).is_none_or(|next| next.start != to) {
        timeline.insert(index + 1, Phase { start: to, condition: after });
    }
    timeline.dedup_by(|later, earlier| later.condition == earlier.condition);
}

#[cfg(test)]
mod tests {
    use super::*;

    const HORIZON: Duration = Duration::from_secs(120);

    fn share(timeline: &[Phase], condition: Condition) -> f64 {
        let mut total = Duration::ZERO;
        for (index, phase) in timeline.iter().enumerate() {
            if phase.condition == condition {
                let end = timeline.get(index + 1).map_or(HORIZON, |next| next.start.min(HORIZON));
                total += end.saturating_sub(phase.start);
            }
        }
        total.as_secs_f64() / HORIZON.as_secs_f64()
    }

    #[test]
    fn a_seed_gives_one_schedule() {
        for mix in [Mix::Mild, Mix::Harsh] {
            assert_eq!(build(mix, 3, 3, HORIZON), build(mix, 3, 3, HORIZON));
            assert_ne!(build(mix, 3, 3, HORIZON), build(mix, 4, 3, HORIZON));
        }
    }

    #[test]
    fn timelines_are_ordered_and_start_healthy_at_zero() {
        for mix in [Mix::None, Mix::Mild, Mix::Harsh, Mix::PrimarySlow, Mix::AllHang] {
            for seed in 0..20 {
                for timeline in build(mix, seed, 3, HORIZON) {
                    assert_eq!(timeline[0].start, Duration::ZERO);
                    assert!(timeline.windows(2).all(|pair| pair[0].start < pair[1].start));
                    assert!(timeline.windows(2).all(|pair| pair[0].condition != pair[1].condition));
                }
            }
        }
    }

    #[test]
    fn mild_is_mostly_healthy_and_harsh_mostly_broken() {
        for seed in 0..10 {
            for timeline in build(Mix::Mild, seed, 3, HORIZON) {
                assert!(share(&timeline, Condition::Healthy) > 0.6, "seed {seed}");
            }
            for timeline in build(Mix::Harsh, seed, 3, HORIZON) {
                assert!(share(&timeline, Condition::Healthy) < 0.45, "seed {seed}");
            }
        }
    }

    #[test]
    fn harsh_has_periods_when_every_provider_is_broken() {
        let timelines = build(Mix::Harsh, 1, 3, HORIZON);
        let all_broken = (0..1_200)
            .map(|tenth| Duration::from_millis(tenth * 100))
            .any(|at| timelines.iter().all(|timeline| !condition_at(timeline, at).is_accepting()));
        assert!(all_broken);
    }

    #[test]
    fn overlap_and_lookup_read_the_phases() {
        let timeline = vec![
            Phase { start: Duration::ZERO, condition: Condition::Healthy },
            Phase { start: Duration::from_secs(2), condition: Condition::Hang },
            Phase { start: Duration::from_secs(5), condition: Condition::Healthy },
        ];
        assert_eq!(condition_at(&timeline, Duration::from_secs(3)), Condition::Hang);
        assert_eq!(condition_at(&timeline, Duration::from_secs(5)), Condition::Healthy);
        let overlap = |from, to| {
            longest_overlap(
                &timeline,
                Condition::Healthy,
                Duration::from_secs(from),
                Duration::from_secs(to),
            )
        };
        assert_eq!(overlap(1, 4), Duration::from_secs(1));
        assert_eq!(overlap(3, 9), Duration::from_secs(4));
        assert_eq!(overlap(2, 5), Duration::ZERO);
    }

    #[test]
    fn overlay_restores_what_was_in_force() {
        let mut timeline = vec![
            Phase { start: Duration::ZERO, condition: Condition::Healthy },
            Phase { start: Duration::from_secs(4), condition: Condition::Reset },
        ];
        overlay(&mut timeline, Duration::from_secs(2), Duration::from_secs(6), Condition::Refused);
        let conditions: Vec<(u64, Condition)> =
            timeline.iter().map(|phase| (phase.start.as_secs(), phase.condition)).collect();
        assert_eq!(
            conditions,
            vec![(0, Condition::Healthy), (2, Condition::Refused), (6, Condition::Reset)]
        );
    }
}
