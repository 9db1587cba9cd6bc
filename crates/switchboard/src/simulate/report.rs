//! Accounting: from the journal of acceptances to the figures the simulator prints.
//!
//! Every figure is computed from what the emulated providers accepted, never from what the
//! router believed: an OTP counts as delivered within the deadline when some provider accepted
//! it no later than `okta.deadline_ms` after the request, however the router saw it; a late
//! acceptance after a timeout is a real second message, so it counts as a duplicate and is paid.

use std::fmt::Write as _;
use std::time::Duration;

use super::emulated::OtpRecord;
use super::scenario::{Scenario, TargetsConfig};
use super::traffic::Arrival;

/// Figures for one policy on one scenario.
#[derive(Clone, Debug, PartialEq)]
pub struct PolicyReport {
    /// `switchboard`, `priority` or `round-robin`.
    pub policy: &'static str,
    /// OTPs requested.
    pub otps: u64,
    /// OTPs accepted by some provider within the deadline.
    pub within_deadline: u64,
    /// OTPs accepted at some point (within the deadline or by background delivery).
    pub delivered: u64,
    /// OTPs never accepted.
    pub undelivered: u64,
    /// Time from request to first acceptance, 50th percentile; `None` if more than half were
    /// never accepted.
    pub p50_to_acceptance: Option<Duration>,
    /// The same, 99th percentile.
    pub p99_to_acceptance: Option<Duration>,
    /// OTPs accepted more than once (a user who got two or more codes).
    pub duplicated: u64,
    /// Sends made, accepted or not.
    pub sends: u64,
    /// Sum of the prices of every accepted send, duplicates included.
    pub total_cost: f64,
    /// Acceptances per provider, in the scenario's provider order.
    pub accepted_by_provider: Vec<u64>,
    /// Hook answers later than the deadline (switchboard only; always 0 for the baselines,
    /// which answer nobody).
    pub late_answers: u64,
    /// Sends each provider took beyond its `max_per_second` (queued or refused), in the
    /// scenario's provider order; 0 for providers without a cap.
    pub over_capacity_by_provider: Vec<u64>,
    /// The longest any message waited in a provider's queue for its turn.
    pub longest_queue_wait: Duration,
    /// Wall-clock time the run took.
    pub wall: Duration,
}

impl PolicyReport {
    /// Builds the figures from the journal.
    pub(crate) fn from_journal(
        policy: &'static str,
        arrivals: &[Arrival],
        journal: &[OtpRecord],
        deadline: Duration,
        n_providers: usize,
    ) -> PolicyReport {
        let mut to_acceptance: Vec<Duration> = Vec::with_capacity(arrivals.len());
        let mut report = PolicyReport {
            policy,
            otps: arrivals.len() as u64,
            within_deadline: 0,
            delivered: 0,
            undelivered: 0,
            p50_to_acceptance: None,
            p99_to_acceptance: None,
            duplicated: 0,
            sends: 0,
            total_cost: 0.0,
            accepted_by_provider: vec![0; n_providers],
            late_answers: 0,
            over_capacity_by_provider: vec![0; n_providers],
            longest_queue_wait: Duration::ZERO,
            wall: Duration::ZERO,
        };
        for (arrival, record) in arrivals.iter().zip(journal) {
            report.sends += u64::from(record.sends);
            let first = record.acceptances.iter().map(|(_, at, _)| *at).min();
            match first {
                Some(first) => {
                    report.delivered += 1;
                    let waited = first.saturating_sub(arrival.at);
                    if waited <= deadline {
                        report.within_deadline += 1;
                    }
                    to_acceptance.push(waited);
                }
                None => report.undelivered += 1,
            }
            if record.acceptances.len() > 1 {
                report.duplicated += 1;
            }
            for (provider, _, price) in &record.acceptances {
                report.accepted_by_provider[*provider] += 1;
                report.total_cost += price;
            }
        }
        to_acceptance.sort_unstable();
        // Never-accepted OTPs rank above every accepted one, so this is not the demo's and the
        // chaos harness's `harness::percentile` over the samples there are.
        let quantile = |q: f64| {
            let rank = ((report.otps as f64 * q).ceil() as usize).max(1) - 1;
            to_acceptance.get(rank).copied()
        };
        report.p50_to_acceptance = quantile(0.50);
        report.p99_to_acceptance = quantile(0.99);
        report
    }

    /// Share of OTPs accepted within the deadline, in percent.
    #[must_use]
    pub fn within_deadline_pct(&self) -> f64 {
        percent(self.within_deadline, self.otps)
    }

    /// Share of OTPs accepted at all, in percent.
    #[must_use]
    pub fn delivered_pct(&self) -> f64 {
        percent(self.delivered, self.otps)
    }

    /// OTPs accepted more than once, per 1,000 OTPs.
    #[must_use]
    pub fn duplicates_per_1000(&self) -> f64 {
        if self.otps == 0 { 0.0 } else { self.duplicated as f64 * 1000.0 / self.otps as f64 }
    }

    /// Cost per delivered OTP; `None` when nothing was delivered.
    #[must_use]
    pub fn cost_per_delivered(&self) -> Option<f64> {
        (self.delivered > 0).then(|| self.total_cost / self.delivered as f64)
    }
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 { 0.0 } else { part as f64 * 100.0 / whole as f64 }
}

/// Every policy's figures on one scenario, and the reference costs.
#[derive(Clone, Debug, PartialEq)]
pub struct ScenarioReport {
    /// Scenario name.
    pub scenario: String,
    /// One line on what happens.
    pub description: String,
    /// The seed.
    pub seed: u64,
    /// The answer deadline.
    pub deadline: Duration,
    /// Virtual duration of the arrivals.
    pub duration: Duration,
    /// Provider ids, in report order.
    pub providers: Vec<String>,
    /// Each emulated provider's `max_per_second`, if it has one.
    pub caps: Vec<Option<u32>>,
    /// What each provider alone would have cost per OTP for this traffic (the price in force at
    /// each OTP's arrival, one send each).
    pub single_provider_cost: Vec<f64>,
    /// The policies run, in order.
    pub policies: Vec<PolicyReport>,
    /// What switchboard should achieve.
    pub targets: TargetsConfig,
}

impl ScenarioReport {
    pub(crate) fn new(
        scenario: &Scenario,
        seed: u64,
        deadline: Duration,
        arrivals: &[Arrival],
    ) -> ScenarioReport {
        let mut single_provider_cost = vec![0.0; scenario.providers.len()];
        for arrival in arrivals {
            for (provider, prices) in scenario.prices_at(arrival.at).into_iter().enumerate() {
                single_provider_cost[provider] += prices.price(arrival.country, arrival.channel);
            }
        }
        let n = arrivals.len().max(1) as f64;
        single_provider_cost.iter_mut().for_each(|total| *total /= n);
        ScenarioReport {
            scenario: scenario.name.clone(),
            description: scenario.description.clone(),
            seed,
            deadline,
            duration: scenario.duration,
            providers: scenario.provider_ids().map(str::to_owned).collect(),
            caps: scenario.providers.iter().map(|p| p.capacity.map(|c| c.per_second)).collect(),
            single_provider_cost,
            policies: Vec::new(),
            targets: scenario.targets.clone(),
        }
    }

    fn policy(&self, name: &str) -> Option<&PolicyReport> {
        self.policies.iter().find(|p| p.policy == name)
    }

    /// The cheapest single provider and its cost per OTP.
    #[must_use]
    pub fn cheapest(&self) -> Option<(&str, f64)> {
        self.providers
            .iter()
            .zip(&self.single_provider_cost)
            .min_by(|a, b| a.1.total_cmp(b.1))
            .map(|(id, cost)| (id.as_str(), *cost))
    }

    /// The targets, each as (description, met?), for switchboard's figures.
    #[must_use]
    pub fn target_checks(&self) -> Vec<(String, bool)> {
        let Some(switchboard) = self.policy("switchboard") else { return Vec::new() };
        let mut checks = Vec::new();
        let targets = &self.targets;
        if let Some(least) = targets.within_deadline_pct {
            let got = switchboard.within_deadline_pct();
            checks.push((format!("within deadline {got:.2}% >= {least}%"), got >= least));
        }
        if let Some(most) = targets.duplicates_per_1000 {
            let got = switchboard.duplicates_per_1000();
            checks.push((format!("duplicates {got:.2}/1k <= {most}/1k"), got <= most));
        }
        if targets.beat_priority
            && let Some(priority) = self.policy("priority")
        {
            let (ours, theirs) =
                (switchboard.within_deadline_pct(), priority.within_deadline_pct());
            checks.push((
                format!("beats priority within deadline ({ours:.2}% vs {theirs:.2}%)"),
                ours > theirs,
            ));
        }
        if let (Some(most_pct), Some((cheapest, reference)), Some(cost)) =
            (targets.cost_within_pct_of_cheapest, self.cheapest(), switchboard.cost_per_delivered())
        {
            let over = (cost / reference - 1.0) * 100.0;
            checks.push((
                format!(
                    "cost {cost:.5}/OTP is {over:+.1}% vs cheapest ({cheapest} {reference:.5}), limit +{most_pct}%"
                ),
                over <= most_pct,
            ));
        }
        checks
    }

    /// The side-by-side table, as printed.
    #[must_use]
    pub fn render(&self) -> String {
        let mut out = String::new();
        let otps = self.policies.first().map_or(0, |p| p.otps);
        let _ = writeln!(out, "scenario {}: {}", self.scenario, self.description);
        let _ = writeln!(
            out,
            "  {otps} OTPs over {} s of virtual time ({:.1}/s), seed {}, deadline {} ms, providers {}",
            self.duration.as_secs(),
            otps as f64 / self.duration.as_secs_f64(),
            self.seed,
            self.deadline.as_millis(),
            self.providers.join(", ")
        );
        let _ = writeln!(
            out,
            "  {:<12} {:>9} {:>9} {:>7} {:>7} {:>7} {:>9} {:>9} {:>7} {:>9}",
            "policy",
            "in time",
            "delivered",
            "p50 ms",
            "p99 ms",
            "dup/1k",
            "sends/OTP",
            "cost/OTP",
            "wall s",
            "OTPs/s"
        );
        for policy in &self.policies {
            let ms =
                |d: Option<Duration>| d.map_or("never".to_owned(), |d| d.as_millis().to_string());
            let cost = policy.cost_per_delivered().map_or("-".to_owned(), |c| format!("{c:.5}"));
            let _ = writeln!(
                out,
                "  {:<12} {:>8.2}% {:>8.2}% {:>7} {:>7} {:>7.2} {:>9.3} {:>9} {:>7.2} {:>9.0}",
                policy.policy,
                policy.within_deadline_pct(),
                policy.delivered_pct(),
                ms(policy.p50_to_acceptance),
                ms(policy.p99_to_acceptance),
                policy.duplicates_per_1000(),
                policy.sends as f64 / policy.otps.max(1) as f64,
                cost,
                policy.wall.as_secs_f64(),
                policy.otps as f64 / policy.wall.as_secs_f64().max(1e-9),
            );
        }
        for policy in &self.policies {
            let total: u64 = policy.accepted_by_provider.iter().sum::<u64>().max(1);
            let shares: Vec<String> = self
                .providers
                .iter()
                .zip(&policy.accepted_by_provider)
                .map(|(id, n)| format!("{id} {:.1}%", *n as f64 * 100.0 / total as f64))
                .collect();
            let late = if policy.late_answers > 0 {
                format!("; {} hook answers after the deadline", policy.late_answers)
            } else {
                String::new()
            };
            let _ =
                writeln!(out, "  accepted by {:<12} {}{late}", policy.policy, shares.join("  "));
        }
        if self.caps.iter().any(Option::is_some) {
            for policy in &self.policies {
                let over: Vec<String> = self
                    .providers
                    .iter()
                    .zip(&self.caps)
                    .zip(&policy.over_capacity_by_provider)
                    .filter_map(|((id, cap), n)| cap.map(|cap| format!("{id} {n} (cap {cap}/s)")))
                    .collect();
                let _ = writeln!(
                    out,
                    "  over capacity {:<12} {}; longest queue wait {} ms",
                    policy.policy,
                    over.join("  "),
                    policy.longest_queue_wait.as_millis()
                );
            }
        }
        let singles: Vec<String> = self
            .providers
            .iter()
            .zip(&self.single_provider_cost)
            .map(|(id, cost)| format!("{id} {cost:.5}"))
            .collect();
        let _ = writeln!(out, "  one provider alone, per OTP: {}", singles.join("  "));
        let checks = self.target_checks();
        if !checks.is_empty() {
            let _ = writeln!(out, "  targets (switchboard):");
            for (check, is_met) in checks {
                let _ = writeln!(out, "    {} {check}", if is_met { "met   " } else { "MISSED" });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use switchboard_core::{Channel, Country};

    use super::*;

    fn arrival(at_ms: u64) -> Arrival {
        Arrival {
            at: Duration::from_millis(at_ms),
            country: Country::parse("US").unwrap(),
            channel: Channel::Sms,
            phone: "+14155550100".into(),
            destination: switchboard_core::Destination::parse("+14155550100", None).unwrap(),
        }
    }

    fn record(sends: u32, acceptances: &[(usize, u64, f64)]) -> OtpRecord {
        OtpRecord {
            sends,
            acceptances: acceptances
                .iter()
                .map(|(p, at, price)| (*p, Duration::from_millis(*at), *price))
                .collect(),
            ..OtpRecord::default()
        }
    }

    #[test]
    fn a_late_acceptance_after_a_failover_is_a_paid_duplicate() {
        let arrivals = [arrival(0), arrival(1_000), arrival(2_000), arrival(3_000)];
        let journal = [
            // Accepted at once.
            record(1, &[(0, 100, 0.01)]),
            // The first provider timed out but took it at 2.8 s; the failover took it at 2.2 s.
            record(2, &[(0, 3_800, 0.01), (1, 3_200, 0.02)]),
            // Only background delivery got it through, after the deadline.
            record(3, &[(1, 9_000, 0.02)]),
            // Never.
            record(4, &[]),
        ];
        let report = PolicyReport::from_journal(
            "test",
            &arrivals,
            &journal,
            Duration::from_millis(2_500),
            2,
        );
        assert_eq!((report.otps, report.delivered, report.undelivered), (4, 3, 1));
        assert_eq!(report.delivered + report.undelivered, report.otps);
        assert_eq!(report.within_deadline, 2);
        assert_eq!(report.duplicated, 1);
        assert_eq!(report.sends, 10);
        assert_eq!(report.accepted_by_provider, [2, 2]);
        assert!((report.total_cost - 0.06).abs() < 1e-12);
        assert!((report.cost_per_delivered().unwrap() - 0.02).abs() < 1e-12);
        assert_eq!(report.p50_to_acceptance, Some(Duration::from_millis(2_200)));
        assert_eq!(report.p99_to_acceptance, None, "the undelivered OTP is the slowest");
    }
}
