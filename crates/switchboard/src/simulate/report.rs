//! Accounting: from the journal of acceptances to the figures the simulator prints.
//!
//! Every figure is computed from what the emulated providers accepted and what reached the
//! phones, never from what the router believed: an OTP counts as delivered within the deadline
//! when some provider accepted it no later than `okta.deadline_ms` after the request, however
//! the router saw it; a late acceptance after a timeout is a real second message, so it counts
//! as a duplicate and is paid. A code is on the phone when its message reached the handset while
//! the code was good (`users.rs`), whatever the receipt said.
//!
//! With users, an OTP of the table is a *sign-in*: its first request and the resends its user
//! asked for. The acceptance columns (in time, delivered, p50, p99) are about the first request,
//! as Okta saw it; sends, duplicates and cost count every request, since a policy that loses
//! codes pays for the resends too.

use std::fmt::Write as _;
use std::time::Duration;

use super::journal::OtpRecord;
use super::phases;
use super::phases::{PhaseInfo, PhaseShares};
use super::scenario::{Scenario, TargetsConfig};
use super::traffic::Arrival;
use super::users::People;

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
    /// OTPs (sign-ins) with a request accepted more than once: a user who got the same code
    /// twice.
    pub duplicated: u64,
    /// Sign-ins with a code on the phone while it was good (within the OTP's life, before the
    /// user asked again), counting a resend's code.
    pub on_phone: u64,
    /// Sign-ins whose user asked again at least once.
    pub asked_again: u64,
    /// Resends asked for, in all.
    pub resends: u64,
    /// Sign-ins whose user entered a code (what Okta's event hook reports).
    pub entered: u64,
    /// Sends made, accepted or not, resends included.
    pub sends: u64,
    /// Sum of the prices of every accepted send, duplicates and resends included.
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
    /// The traffic around each handset phase, in the scenario's order.
    pub phases: Vec<PhaseShares>,
    /// Wall-clock time the run took.
    pub wall: Duration,
}

impl PolicyReport {
    /// Builds the figures from the journal: request `k` of sign-in `u` is entry
    /// `k × arrivals + u`.
    pub(crate) fn from_journal(
        policy: &'static str,
        arrivals: &[Arrival],
        journal: &[OtpRecord],
        deadline: Duration,
        scenario: &Scenario,
        people: &People,
    ) -> PolicyReport {
        let n_providers = scenario.providers.len();
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
            on_phone: 0,
            asked_again: 0,
            resends: 0,
            entered: 0,
            sends: 0,
            total_cost: 0.0,
            accepted_by_provider: vec![0; n_providers],
            late_answers: 0,
            over_capacity_by_provider: vec![0; n_providers],
            longest_queue_wait: Duration::ZERO,
            phases: scenario
                .handset_phases
                .iter()
                .map(|phase| phases::shares(phase, arrivals, journal))
                .collect(),
            wall: Duration::ZERO,
        };
        let n_sign_ins = arrivals.len();
        for (user, (arrival, record)) in arrivals.iter().zip(journal).enumerate() {
            let requests: Vec<(usize, &OtpRecord)> = (0..people.requests_per_sign_in())
                .map(|k| (k, &journal[k * n_sign_ins + user]))
                .filter(|(k, request)| *k == 0 || request.requested_at.is_some())
                .collect();
            let n_resends = requests.len() as u64 - 1;
            report.resends += n_resends;
            report.asked_again += u64::from(n_resends > 0);
            let has = |on_phone: &dyn Fn(usize, &OtpRecord) -> bool| {
                requests.iter().any(|(k, request)| on_phone(*k, request))
            };
            report.on_phone += u64::from(has(&|k, request| {
                people.on_phone(arrival.at, user, k, &request.acceptances).is_some()
            }));
            report.entered += u64::from(has(&|k, request| {
                people.entry(arrival.at, user, k, &request.acceptances).is_some()
            }));
            report.duplicated += u64::from(has(&|_, request| request.acceptances.len() > 1));
            for (_, request) in &requests {
                report.sends += u64::from(request.sends);
                for acceptance in &request.acceptances {
                    report.accepted_by_provider[acceptance.provider] += 1;
                    report.total_cost += acceptance.price;
                }
            }
            let first = record.acceptances.iter().map(|acceptance| acceptance.at).min();
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

    /// Share of sign-ins with a code on the phone while it was good, in percent.
    #[must_use]
    pub fn on_phone_pct(&self) -> f64 {
        percent(self.on_phone, self.otps)
    }

    /// Share of sign-ins whose user asked again, in percent.
    #[must_use]
    pub fn asked_again_pct(&self) -> f64 {
        percent(self.asked_again, self.otps)
    }

    /// Share of sign-ins whose user entered a code, in percent.
    #[must_use]
    pub fn entered_pct(&self) -> f64 {
        percent(self.entered, self.otps)
    }

    /// Cost per code on a phone: what a code that worked cost, lost messages and resends
    /// included; `None` when none did.
    #[must_use]
    pub fn cost_per_code(&self) -> Option<f64> {
        (self.on_phone > 0).then(|| self.total_cost / self.on_phone as f64)
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
    /// The handset phases, in the scenario's order.
    pub phases: Vec<PhaseInfo>,
    /// Whether the scenario has users (who ask again and enter codes).
    pub has_users: bool,
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
            phases: scenario
                .handset_phases
                .iter()
                .map(|phase| PhaseInfo::new(scenario, phase))
                .collect(),
            has_users: scenario.users.is_some(),
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
        if let Some(least) = targets.on_phone_pct {
            let got = switchboard.on_phone_pct();
            checks.push((format!("codes on phones {got:.2}% >= {least}%"), got >= least));
        }
        if targets.beat_priority_on_phone
            && let Some(priority) = self.policy("priority")
        {
            let (ours, theirs) = (switchboard.on_phone_pct(), priority.on_phone_pct());
            checks.push((
                format!("beats priority on phones ({ours:.2}% vs {theirs:.2}%)"),
                ours > theirs,
            ));
        }
        let first_phase = self.phases.first().zip(switchboard.phases.first());
        if let (Some(most_s), Some((phase, shares))) = (targets.moved_away_within_s, first_phase) {
            let check = match shares.moved_away_after {
                Some(after) => (
                    format!(
                        "moved {}'s traffic away {:.1} s into the phase, limit {most_s} s",
                        phase.provider,
                        after.as_secs_f64()
                    ),
                    after.as_secs_f64() <= most_s,
                ),
                None => (format!("never moved {}'s traffic away", phase.provider), false),
            };
            checks.push(check);
        }
        if let (Some(least_pct), Some((phase, shares))) = (targets.share_kept_pct, first_phase) {
            let kept = shares
                .before
                .zip(shares.during)
                .map(|(before, during)| if before > 0.0 { during / before * 100.0 } else { 100.0 });
            let kept = kept.unwrap_or(0.0);
            checks.push((
                format!(
                    "{} kept {kept:.1}% of its share during the phase, at least {least_pct}%",
                    phase.provider
                ),
                kept >= least_pct,
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
            "  {:<12} {:>9} {:>9} {:>9} {:>7} {:>7} {:>7} {:>7} {:>7} {:>9} {:>9} {:>9} {:>7} {:>9}",
            "policy",
            "in time",
            "delivered",
            "on phone",
            "asked",
            "entered",
            "p50 ms",
            "p99 ms",
            "dup/1k",
            "sends/OTP",
            "cost/OTP",
            "cost/code",
            "wall s",
            "OTPs/s"
        );
        for policy in &self.policies {
            let ms =
                |d: Option<Duration>| d.map_or("never".to_owned(), |d| d.as_millis().to_string());
            let money = |c: Option<f64>| c.map_or("-".to_owned(), |c| format!("{c:.5}"));
            let users = |pct: f64| {
                if self.has_users { format!("{pct:.2}%") } else { "-".to_owned() }
            };
            let _ = writeln!(
                out,
                "  {:<12} {:>8.2}% {:>8.2}% {:>8.2}% {:>7} {:>7} {:>7} {:>7} {:>7.2} {:>9.3} {:>9} {:>9} {:>7.2} {:>9.0}",
                policy.policy,
                policy.within_deadline_pct(),
                policy.delivered_pct(),
                policy.on_phone_pct(),
                users(policy.asked_again_pct()),
                users(policy.entered_pct()),
                ms(policy.p50_to_acceptance),
                ms(policy.p99_to_acceptance),
                policy.duplicates_per_1000(),
                policy.sends as f64 / policy.otps.max(1) as f64,
                money(policy.cost_per_delivered()),
                money(policy.cost_per_code()),
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
        self.render_phases(&mut out);
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

impl ScenarioReport {
    /// Per handset phase: where each policy sent the phase's countries' codes, before and
    /// after it began, and when the traffic moved away.
    fn render_phases(&self, out: &mut String) {
        for (index, phase) in self.phases.iter().enumerate() {
            let countries = phase.countries.as_ref().map_or("all".to_owned(), |c| c.join(", "));
            let _ = writeln!(
                out,
                "  handset phase {}: {} to {countries} from {} s: {}",
                index + 1,
                phase.provider,
                phase.from.as_secs(),
                phase.description
            );
            let _ = writeln!(
                out,
                "    {:<20} {:>8} {:>8} {:>8} {:>9} {:>8}  moved away after",
                format!("{}'s share", phase.provider),
                "before",
                PhaseShares::WINDOW_NAMES[0],
                PhaseShares::WINDOW_NAMES[1],
                PhaseShares::WINDOW_NAMES[2],
                "phase",
            );
            for policy in &self.policies {
                let Some(shares) = policy.phases.get(index) else { continue };
                let pct = |share: Option<f64>| {
                    share.map_or("-".to_owned(), |s| format!("{:.1}%", s * 100.0))
                };
                let windows: Vec<String> = shares.windows.iter().map(|s| pct(*s)).collect();
                // A provider that carried under half the traffic before has little to move.
                let moved = match (shares.moved_away_after, shares.before) {
                    (_, None) => "-".to_owned(),
                    (_, Some(before)) if before < 0.5 => "- (under half before)".to_owned(),
                    (Some(after), _) => format!("{:.1} s", after.as_secs_f64()),
                    (None, _) => "never".to_owned(),
                };
                let _ = writeln!(
                    out,
                    "    {:<20} {:>8} {:>8} {:>8} {:>9} {:>8}  {moved}",
                    policy.policy,
                    pct(shares.before),
                    windows[0],
                    windows[1],
                    windows[2],
                    pct(shares.during),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use switchboard_core::{Channel, Country};

    use super::super::journal::Acceptance;
    use super::*;

    /// Two providers; with `users`, a `[users]` section whose patience is exactly 40 s.
    fn scenario(users: bool) -> Scenario {
        let users = if users {
            "[users]\nentered_share = 1.0\nentry_delay_s = { median = 5, p99 = 5 }\n\
             patience_s = { median = 40, p99 = 40 }\nmax_resends = 1"
        } else {
            ""
        };
        let text = format!(
            r#"
            name = "t"
            description = "t"
            duration_s = 100
            [traffic]
            countries = {{ US = 1 }}
            {users}
            [providers.alpha]
            latency_ms = {{ median = 100, p99 = 300 }}
            prices.default = {{ sms = 0.01, voice_minute = 0.02 }}
            [providers.beta]
            latency_ms = {{ median = 100, p99 = 300 }}
            prices.default = {{ sms = 0.02, voice_minute = 0.02 }}
            [switchboard.guard]
            mode = "monitor"
            [[switchboard.routes]]
            countries = ["*"]
            providers = ["alpha", "beta"]
            "#
        );
        Scenario::parse(&text).unwrap()
    }

    fn arrival(at_ms: u64) -> Arrival {
        Arrival {
            at: Duration::from_millis(at_ms),
            country: Country::parse("US").unwrap(),
            channel: Channel::Sms,
            phone: "+14155550100".into(),
            destination: switchboard_core::Destination::parse("+14155550100", None).unwrap(),
        }
    }

    /// (provider, acceptance ms, price, reached the phone)
    fn record(sends: u32, acceptances: &[(usize, u64, f64, bool)]) -> OtpRecord {
        OtpRecord {
            sends,
            acceptances: acceptances
                .iter()
                .map(|(provider, at, price, is_on_phone)| Acceptance {
                    provider: *provider,
                    at: Duration::from_millis(*at),
                    price: *price,
                    is_on_phone: *is_on_phone,
                })
                .collect(),
            ..OtpRecord::default()
        }
    }

    const LIFE: Duration = Duration::from_secs(300);

    #[test]
    fn a_late_acceptance_after_a_failover_is_a_paid_duplicate() {
        let scenario = scenario(false);
        let arrivals = [arrival(0), arrival(1_000), arrival(2_000), arrival(3_000)];
        let journal = [
            // Accepted at once.
            record(1, &[(0, 100, 0.01, true)]),
            // The first provider timed out but took it at 2.8 s; the failover took it at 2.2 s.
            record(2, &[(0, 3_800, 0.01, true), (1, 3_200, 0.02, true)]),
            // Only background delivery got it through, after the deadline, and it was lost.
            record(3, &[(1, 9_000, 0.02, false)]),
            // Never.
            record(4, &[]),
        ];
        let report = PolicyReport::from_journal(
            "test",
            &arrivals,
            &journal,
            Duration::from_millis(2_500),
            &scenario,
            &People::new(1, None, LIFE),
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
        assert_eq!(report.on_phone, 2, "accepted is not on the phone");
        assert!((report.cost_per_code().unwrap() - 0.03).abs() < 1e-12);
        assert_eq!((report.asked_again, report.resends, report.entered), (0, 0, 0));
    }

    #[test]
    fn a_resend_that_arrives_puts_the_code_on_the_phone_and_is_paid() {
        let scenario = scenario(true);
        let people = People::new(1, scenario.users, LIFE);
        let arrivals = [arrival(0), arrival(1_000)];
        let mut resent = record(1, &[(1, 40_200, 0.02, true)]);
        resent.requested_at = Some(Duration::from_secs(40));
        let journal = [
            // Filtered; the user asked again at 40 s and beta's code arrived.
            record(1, &[(0, 100, 0.01, false)]),
            // Arrived at once.
            record(1, &[(0, 1_100, 0.01, true)]),
            resent,
            // The second sign-in never asked again.
            record(0, &[]),
        ];
        let report = PolicyReport::from_journal(
            "test",
            &arrivals,
            &journal,
            Duration::from_millis(2_500),
            &scenario,
            &people,
        );
        assert_eq!((report.on_phone, report.entered), (2, 2));
        assert_eq!((report.asked_again, report.resends), (1, 1));
        assert_eq!((report.sends, report.duplicated), (3, 0));
        assert_eq!(report.accepted_by_provider, [2, 1]);
        assert!((report.total_cost - 0.04).abs() < 1e-12);
        assert_eq!(report.within_deadline, 2, "the first requests were accepted at once");
    }
}
