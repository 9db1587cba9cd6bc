//! Where a policy's traffic went around a handset phase: the phase's provider's share of its
//! countries' codes before the phase and in windows after it began, and how long it took to
//! move that traffic away.
//!
//! # What is counted, and what "moved away" means
//!
//! Only sign-ins' *first* requests count: a resend avoids the previous provider by rule, which
//! says nothing about whether the policy noticed the route. Each accepted message of a first
//! request to one of the phase's countries is one sample (at its acceptance); the share is the
//! phase's provider's part of them. The traffic has **moved away** at the first sample, from the
//! phase's start, after which at most [`DETECTION_MOST`] of the next [`DETECTION_SAMPLES`]
//! samples went to the provider, and at most [`STAYED_AWAY`] of all the phase's samples from
//! there on: a count of messages, not of seconds, so it reads the same at any traffic rate;
//! probation trials and explorations afterwards do not undo it, a lucky run of other providers
//! that the policy did not keep up does not make it.

use std::time::Duration;

use super::journal::OtpRecord;
use super::scenario::{HandsetPhase, Scenario};
use super::traffic::Arrival;

/// The reference share is taken over this long before the phase.
const BEFORE: Duration = Duration::from_secs(300);
/// Windows after the phase's start, in seconds: (from, until), `None` for the phase's end.
const WINDOWS: [(u64, Option<u64>); 3] = [(0, Some(60)), (60, Some(300)), (300, None)];
/// Moved away: at most this many of ...
const DETECTION_MOST: usize = 2;
/// ... this many consecutive samples went to the phase's provider ...
const DETECTION_SAMPLES: usize = 20;
/// ... and at most this share of the rest of the phase's.
const STAYED_AWAY: f64 = 0.1;

/// A handset phase, as the report names it.
#[derive(Clone, Debug, PartialEq)]
pub struct PhaseInfo {
    /// The phase's provider.
    pub provider: String,
    /// Its countries, or every one.
    pub countries: Option<Vec<String>>,
    /// When it starts.
    pub from: Duration,
    /// What becomes of the provider's messages meanwhile, in words.
    pub description: String,
}

/// One policy's traffic around one handset phase.
#[derive(Clone, Debug, PartialEq)]
pub struct PhaseShares {
    /// The provider's share of the phase's countries' first requests' accepted messages in the
    /// 300 s before the phase; `None` without any.
    pub before: Option<f64>,
    /// The same in each of [`PhaseShares::WINDOW_NAMES`].
    pub windows: Vec<Option<f64>>,
    /// The same over the whole phase.
    pub during: Option<f64>,
    /// How long after the phase's start the traffic moved away; `None` if it never did.
    pub moved_away_after: Option<Duration>,
}

impl PhaseShares {
    /// The windows' column names.
    pub const WINDOW_NAMES: [&'static str; 3] = ["0-60 s", "60-300 s", "300 s-end"];
}

impl PhaseInfo {
    pub(crate) fn new(scenario: &Scenario, phase: &HandsetPhase) -> PhaseInfo {
        let country = phase
            .countries
            .as_ref()
            .and_then(|list| list.first().copied())
            .or_else(|| scenario.countries.first().map(|(country, _)| *country))
            .expect("validated: at least one country");
        PhaseInfo {
            provider: scenario.providers[phase.provider].id.clone(),
            countries: phase
                .countries
                .as_ref()
                .map(|list| list.iter().map(|c| c.as_str().to_owned()).collect()),
            from: phase.from,
            description: scenario.handsets_at(phase.provider, phase.from, country).describe(),
        }
    }
}

/// The shares around `phase` in one run.
pub(crate) fn shares(
    phase: &HandsetPhase,
    arrivals: &[Arrival],
    journal: &[OtpRecord],
) -> PhaseShares {
    let mut samples: Vec<(Duration, bool)> = arrivals
        .iter()
        .zip(journal)
        .filter(|(arrival, _)| {
            phase.countries.as_ref().is_none_or(|list| list.contains(&arrival.country))
        })
        .flat_map(|(_, record)| record.acceptances.iter())
        .map(|acceptance| (acceptance.at, acceptance.provider == phase.provider))
        .collect();
    samples.sort_unstable();
    let share = |from: Duration, until: Duration| {
        let (mut total, mut to_provider) = (0_u64, 0_u64);
        for (_, is_provider) in samples.iter().filter(|(at, _)| (from..until).contains(at)) {
            total += 1;
            to_provider += u64::from(*is_provider);
        }
        (total > 0).then(|| to_provider as f64 / total as f64)
    };
    let windows = WINDOWS
        .iter()
        .map(|(from_s, until_s)| {
            let from = phase.from + Duration::from_secs(*from_s);
            let until = until_s
                .map_or(phase.until, |s| (phase.from + Duration::from_secs(s)).min(phase.until));
            if from >= until { None } else { share(from, until) }
        })
        .collect();
    let during: Vec<bool> = samples
        .iter()
        .filter(|(at, _)| (phase.from..phase.until).contains(at))
        .map(|(_, is_provider)| *is_provider)
        .collect();
    let starts: Vec<Duration> = samples
        .iter()
        .filter(|(at, _)| (phase.from..phase.until).contains(at))
        .map(|(at, _)| *at)
        .collect();
    // How many of the samples from each position on went to the provider.
    let mut from_here: Vec<usize> = vec![0; during.len() + 1];
    for position in (0..during.len()).rev() {
        from_here[position] = from_here[position + 1] + usize::from(during[position]);
    }
    let moved_away_after = during
        .windows(DETECTION_SAMPLES)
        .enumerate()
        .position(|(position, next)| {
            let rest = (during.len() - position) as f64;
            next.iter().filter(|is_provider| **is_provider).count() <= DETECTION_MOST
                && from_here[position] as f64 <= STAYED_AWAY * rest
        })
        .map(|position| starts[position] - phase.from);
    PhaseShares {
        before: share(phase.from.saturating_sub(BEFORE), phase.from),
        windows,
        during: share(phase.from, phase.until),
        moved_away_after,
    }
}

#[cfg(test)]
mod tests {
    use switchboard_core::{Channel, Country, Destination};

    use super::super::journal::Acceptance;
    use super::*;

    #[test]
    fn the_traffic_moved_away_when_twenty_samples_in_a_row_mostly_avoid_the_provider() {
        let text = r#"
            name = "t"
            description = "t"
            duration_s = 1000
            [traffic]
            countries = { US = 1, GB = 1 }
            [providers.alpha]
            latency_ms = { median = 100, p99 = 300 }
            prices.default = { sms = 0.01, voice_minute = 0.02 }
            [providers.beta]
            latency_ms = { median = 100, p99 = 300 }
            prices.default = { sms = 0.01, voice_minute = 0.02 }
            [[handset_phases]]
            provider = "alpha"
            countries = ["GB"]
            from_s = 100
            handsets = { delivered_share = 0.1, undelivered_receipt = "filtered" }
            [switchboard.guard]
            mode = "monitor"
            [[switchboard.routes]]
            countries = ["*"]
            providers = ["alpha", "beta"]
        "#;
        let scenario = Scenario::parse(text).unwrap();
        let phase = &scenario.handset_phases[0];
        let info = PhaseInfo::new(&scenario, phase);
        assert_eq!(info.countries, Some(vec!["GB".to_owned()]));
        assert!(info.description.contains("10% reach the phone"), "{}", info.description);
        assert!(info.description.contains("\"filtered\""), "{}", info.description);

        // One GB sign-in a second; alpha carries all of them until 130 s, then every fifth.
        // A US sign-in a second always goes to alpha and must not count.
        let mut arrivals = Vec::new();
        let mut journal = Vec::new();
        for second in 0..400_u64 {
            for (country, phone) in [("GB", "+447400123456"), ("US", "+14155550100")] {
                let at = Duration::from_secs(second);
                let provider = usize::from(country == "GB" && second >= 130 && second % 5 != 0);
                arrivals.push(Arrival {
                    at,
                    country: Country::parse(country).unwrap(),
                    channel: Channel::Sms,
                    phone: phone.to_owned(),
                    destination: Destination::parse(phone, None).unwrap(),
                });
                let acceptance = Acceptance { provider, at, price: 0.01, is_on_phone: true };
                journal.push(OtpRecord { acceptances: vec![acceptance], ..OtpRecord::default() });
            }
        }
        let shares = shares(phase, &arrivals, &journal);
        assert_eq!(shares.before, Some(1.0));
        assert_eq!(shares.windows[0], Some(0.6), "30 + 6 of the first 60");
        assert_eq!(shares.windows[1], Some(0.2));
        // From 130 s every fifth sample is alpha's: 4 in 20, never moved away.
        assert_eq!(shares.moved_away_after, None);

        // With every twentieth (130 s, 150 s, ...), it moved away at 129 s: from there the next
        // twenty samples hold two of alpha's, 129 s and 130 s.
        for (arrival, record) in arrivals.iter().zip(&mut journal) {
            let second = arrival.at.as_secs();
            if arrival.country.as_str() == "GB" && second >= 130 {
                record.acceptances[0].provider = usize::from(second % 20 != 10);
            }
        }
        let shares = super::shares(phase, &arrivals, &journal);
        assert_eq!(shares.moved_away_after, Some(Duration::from_secs(29)));
    }
}
