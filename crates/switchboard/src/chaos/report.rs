//! The accounting of a chaos run: what Okta was told, set against what the emulators accepted.
//!
//! A send counts as accepted when the provider's condition at the moment it read the request
//! lets a message through (healthy, or slow: the provider has the message whether or not the
//! caller waited for the answer). The condition comes from the record of when each phase was
//! applied; a send read within microseconds of a switch may be classed by the neighbouring
//! phase, a rare and documented error.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::time::Duration;

use super::schedule::{Condition, Timeline, condition_at, longest_overlap};
use crate::harness::percentile;

/// Okta hangs up on the hook after this long, whatever `okta.deadline_ms` says.
pub const OKTA_TIMEOUT: Duration = Duration::from_secs(3);
/// A provider counts as able to take a code when it was healthy this long within the code's
/// life: enough for a send and its answer, with room to spare.
pub const ABLE_WINDOW: Duration = Duration::from_secs(1);

/// One code the harness sent.
#[derive(Clone, Debug)]
pub struct CodeRecord {
    /// The passcode (kept in memory for matching; never printed).
    pub code: String,
    /// When its first request was sent, from the start of the run.
    pub sent_at: Duration,
    /// When it expires (`otpExpires`), from the start of the run.
    pub expires_at: Duration,
    /// When its repeat (same `eventId`) was sent, if it was repeated.
    pub repeat_sent_at: Option<Duration>,
}

/// What Okta was answered, as Okta's client sees it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum AnswerOutcome {
    /// HTTP 200 with `status` (`SUCCESSFUL`, `FAILED`, or something malformed).
    Status(String),
    /// An HTTP status other than 200.
    Http(u16),
    /// No answer: connection error or the client's timeout.
    NoAnswer,
}

impl AnswerOutcome {
    fn label(&self) -> String {
        match self {
            AnswerOutcome::Status(status) => status.clone(),
            AnswerOutcome::Http(status) => format!("HTTP {status}"),
            AnswerOutcome::NoAnswer => "no answer".to_owned(),
        }
    }
}

/// One answer to one request (a first request or a repeat).
#[derive(Clone, Debug)]
pub struct Answer {
    /// Index of the code in the run.
    pub code_index: usize,
    /// Whether this request repeated an `eventId` already sent.
    pub is_repeat: bool,
    /// From the first byte sent to the whole answer read (or the failure).
    pub latency: Duration,
    /// What came back.
    pub outcome: AnswerOutcome,
    /// The `outcome=` of its `transactionMetadata` (`delivered`, `pending`, `retrying`, …).
    pub detail: Option<String>,
}

/// One send an emulator read, placed in the run's time and the provider's condition.
#[derive(Clone, Debug)]
pub(super) struct Send {
    /// Index into the providers.
    pub provider: usize,
    /// Index of the code it carried, when it carried one of the run's codes.
    pub code_index: Option<usize>,
    /// When it was read, from the start of the run.
    pub at: Duration,
    /// The provider's condition then.
    pub condition: Condition,
}

impl Send {
    fn is_accepted(&self) -> bool {
        self.condition.is_accepting()
    }
}

/// One provider's figures.
#[derive(Clone, Debug, Default)]
pub struct ProviderFigures {
    /// Provider id.
    pub id: String,
    /// Sends it read.
    pub received: u64,
    /// Of those, accepted.
    pub accepted: u64,
    /// Distinct codes among the accepted sends.
    pub distinct_codes_accepted: u64,
    /// Share of the run's horizon spent in each condition.
    pub time_share: BTreeMap<Condition, f64>,
}

/// Every figure of a run.
#[derive(Clone, Debug, Default)]
pub struct ChaosReport {
    /// Codes sent (distinct `eventId`s).
    pub codes: u64,
    /// Requests sent, repeats included.
    pub requests: u64,
    /// Repeated requests (same `eventId` again).
    pub repeats: u64,
    /// Answers by outcome (`SUCCESSFUL`, `FAILED`, `HTTP 409`, `no answer`).
    pub answers: BTreeMap<String, u64>,
    /// Answers by the `outcome=` switchboard wrote in `transactionMetadata`.
    pub answer_details: BTreeMap<String, u64>,
    /// Lost codes (both kinds) by the `outcome=` of their first answer.
    pub lost_by_answer: BTreeMap<String, u64>,
    /// Lost codes (both kinds) by how many sends of theirs the emulators read before expiry
    /// (`delivery.max_attempts` bounds it).
    pub lost_by_sends: BTreeMap<usize, u64>,
    /// Answer latency percentiles and maximum, over every request.
    pub latency_p50: Duration,
    /// See `latency_p50`.
    pub latency_p99: Duration,
    /// See `latency_p50`.
    pub latency_max: Duration,
    /// Answers later than the configured deadline (no answer counts as late).
    pub late_deadline: u64,
    /// Answers later than Okta's 3 s (no answer counts as late).
    pub late_okta: u64,
    /// Codes with an accepted send within the deadline of their first request.
    pub accepted_within_deadline: u64,
    /// Codes with an accepted send before they expired.
    pub accepted_before_expiry: u64,
    /// Answered SUCCESSFUL, not accepted before expiry, while some provider was healthy for at
    /// least [`ABLE_WINDOW`] of the code's life: the target is zero.
    pub lost_while_able: u64,
    /// Answered SUCCESSFUL, not accepted before expiry, with no provider able to take it.
    pub lost_while_unable: u64,
    /// Of the lost codes (both kinds), those accepted only after they expired.
    pub accepted_only_after_expiry: u64,
    /// Lost codes (both kinds) by what their last send before expiry met: a condition label,
    /// or `never sent`.
    pub lost_by_last_send: BTreeMap<&'static str, u64>,
    /// Codes accepted by more than one send.
    pub duplicates: u64,
    /// Duplicates by what their first acceptance was: `slow` (switchboard saw a timeout),
    /// `healthy` (switchboard should have seen the acceptance) or `healthy, cut off` (the
    /// provider's condition changed within a second, so its answer may never have come).
    pub duplicates_by_first: BTreeMap<&'static str, u64>,
    /// Duplicates among the codes whose `eventId` was repeated.
    pub duplicates_repeated: u64,
    /// Repeated codes sent again after a clean acceptance: the first acceptance was by a
    /// provider that stayed healthy for [`ABLE_WINDOW`] after it (so switchboard had its
    /// answer), and a later acceptance came after the repeat was sent. A heuristic: the
    /// journals cannot say which request caused a send.
    pub second_sends_from_repeats: u64,
    /// Every send the emulators read, failed ones included.
    pub sends: u64,
    /// Of those, accepted.
    pub sends_accepted: u64,
    /// Sends carrying no code of this run: a harness error when not zero.
    pub sends_unmatched: u64,
    /// Per provider, in route order.
    pub providers: Vec<ProviderFigures>,
    /// The configured deadline.
    pub deadline: Duration,
}

/// Everything the accounting reads.
pub(super) struct RunRecord<'a> {
    /// The codes, by index.
    pub codes: &'a [CodeRecord],
    /// Every answer.
    pub answers: &'a [Answer],
    /// Every send the emulators read.
    pub sends: &'a [Send],
    /// Provider ids, in route order.
    pub provider_ids: &'a [String],
    /// When each provider's phases were applied.
    pub applied: &'a [Timeline],
    /// The end of the run, from its start.
    pub horizon: Duration,
    /// `okta.deadline_ms`.
    pub deadline: Duration,
}

/// Sets the answers against the journals.
#[must_use]
pub(super) fn account(run: &RunRecord<'_>) -> ChaosReport {
    let mut report = ChaosReport {
        codes: run.codes.len() as u64,
        requests: run.answers.len() as u64,
        repeats: run.answers.iter().filter(|answer| answer.is_repeat).count() as u64,
        deadline: run.deadline,
        ..ChaosReport::default()
    };

    let mut latencies: Vec<Duration> = Vec::with_capacity(run.answers.len());
    let mut is_successful = vec![false; run.codes.len()];
    let mut first_detail: Vec<Option<&str>> = vec![None; run.codes.len()];
    for answer in run.answers {
        *report.answers.entry(answer.outcome.label()).or_default() += 1;
        let detail = answer.detail.as_deref().unwrap_or("none");
        *report.answer_details.entry(detail.to_owned()).or_default() += 1;
        if !answer.is_repeat {
            first_detail[answer.code_index] = Some(detail);
        }
        let is_unanswered = answer.outcome == AnswerOutcome::NoAnswer;
        if is_unanswered || answer.latency > run.deadline {
            report.late_deadline += 1;
        }
        if is_unanswered || answer.latency > OKTA_TIMEOUT {
            report.late_okta += 1;
        }
        latencies.push(answer.latency);
        if answer.outcome == AnswerOutcome::Status("SUCCESSFUL".to_owned()) {
            is_successful[answer.code_index] = true;
        }
    }
    latencies.sort_unstable();
    report.latency_p50 = percentile(&latencies, 0.5);
    report.latency_p99 = percentile(&latencies, 0.99);
    report.latency_max = latencies.last().copied().unwrap_or_default();

    // Accepted sends per code, in time order.
    let mut accepted: HashMap<usize, Vec<&Send>> = HashMap::new();
    report.providers = run
        .provider_ids
        .iter()
        .enumerate()
        .map(|(index, id)| ProviderFigures {
            id: id.clone(),
            time_share: time_share(&run.applied[index], run.horizon),
            ..ProviderFigures::default()
        })
        .collect();
    let mut last_send: HashMap<usize, &Send> = HashMap::new();
    let mut sends_in_time: HashMap<usize, usize> = HashMap::new();
    for send in run.sends {
        report.sends += 1;
        report.providers[send.provider].received += 1;
        let Some(code_index) = send.code_index else {
            report.sends_unmatched += 1;
            continue;
        };
        if send.at <= run.codes[code_index].expires_at {
            *sends_in_time.entry(code_index).or_default() += 1;
            if last_send.get(&code_index).is_none_or(|last| last.at <= send.at) {
                last_send.insert(code_index, send);
            }
        }
        if send.is_accepted() {
            report.sends_accepted += 1;
            report.providers[send.provider].accepted += 1;
            accepted.entry(code_index).or_default().push(send);
        }
    }
    for sends in accepted.values_mut() {
        sends.sort_by_key(|send| send.at);
        let mut providers: Vec<usize> = sends.iter().map(|send| send.provider).collect();
        providers.sort_unstable();
        providers.dedup();
        for provider in providers {
            report.providers[provider].distinct_codes_accepted += 1;
        }
    }

    for (index, code) in run.codes.iter().enumerate() {
        let sends = accepted.get(&index).map_or(&[][..], Vec::as_slice);
        let first = sends.first().map(|send| send.at);
        if first.is_some_and(|at| at <= code.sent_at + run.deadline) {
            report.accepted_within_deadline += 1;
        }
        let is_in_time = first.is_some_and(|at| at <= code.expires_at);
        if is_in_time {
            report.accepted_before_expiry += 1;
        } else if is_successful[index] {
            if first.is_some() {
                report.accepted_only_after_expiry += 1;
            }
            let met = last_send.get(&index).map_or("never sent", |send| send.condition.label());
            *report.lost_by_last_send.entry(met).or_default() += 1;
            let said = first_detail[index].unwrap_or("none").to_owned();
            *report.lost_by_answer.entry(said).or_default() += 1;
            let tried = sends_in_time.get(&index).copied().unwrap_or(0);
            *report.lost_by_sends.entry(tried).or_default() += 1;
            let is_able = run.applied.iter().any(|timeline| {
                longest_overlap(timeline, Condition::Healthy, code.sent_at, code.expires_at)
                    >= ABLE_WINDOW
            });
            if is_able {
                report.lost_while_able += 1;
            } else {
                report.lost_while_unable += 1;
            }
        }
        if sends.len() > 1 {
            report.duplicates += 1;
            // Healthy for a second after reading it: the answer reached switchboard, and no
            // phase switch (a refused connection, say) cut it off.
            let first = sends[0];
            let is_clean_first = longest_overlap(
                &run.applied[first.provider],
                Condition::Healthy,
                first.at,
                first.at + ABLE_WINDOW,
            ) >= ABLE_WINDOW;
            let kind = match first.condition {
                Condition::Healthy if is_clean_first => "healthy",
                Condition::Healthy => "healthy, cut off",
                other => other.label(),
            };
            *report.duplicates_by_first.entry(kind).or_default() += 1;
            if let Some(repeat_at) = code.repeat_sent_at {
                report.duplicates_repeated += 1;
                if is_clean_first && sends[1..].iter().any(|send| send.at >= repeat_at) {
                    report.second_sends_from_repeats += 1;
                }
            }
        }
    }
    report
}

fn time_share(timeline: &[super::schedule::Phase], horizon: Duration) -> BTreeMap<Condition, f64> {
    let mut share = BTreeMap::new();
    if horizon.is_zero() {
        return share;
    }
    for (index, phase) in timeline.iter().enumerate() {
        let start = phase.start.min(horizon);
        let end = timeline.get(index + 1).map_or(horizon, |next| next.start.min(horizon));
        *share.entry(phase.condition).or_insert(0.0) +=
            end.saturating_sub(start).as_secs_f64() / horizon.as_secs_f64();
    }
    share
}

/// The condition a provider was in at `at`, from the applied phases.
#[must_use]
pub(super) fn condition_of(applied: &[Timeline], provider: usize, at: Duration) -> Condition {
    condition_at(&applied[provider], at)
}

impl ChaosReport {
    /// Duplicates per 1,000 codes.
    #[must_use]
    pub fn duplicates_per_1k(&self) -> f64 {
        per_1k(self.duplicates, self.codes)
    }

    /// Writes the figures and the target lines.
    pub fn write(&self, out: &mut impl Write) -> std::io::Result<()> {
        let deadline_ms = self.deadline.as_millis();
        let share =
            |n: u64| if self.codes == 0 { 0.0 } else { 100.0 * n as f64 / self.codes as f64 };
        writeln!(out, "  time per condition over the run:")?;
        for provider in &self.providers {
            let shares: Vec<String> = provider
                .time_share
                .iter()
                .map(|(condition, share)| format!("{} {:.0}%", condition.label(), share * 100.0))
                .collect();
            writeln!(out, "    {:<10} {}", provider.id, shares.join("  "))?;
        }
        writeln!(out, "answers")?;
        writeln!(
            out,
            "  requests                       {:>7}  ({} codes + {} repeats)",
            self.requests, self.codes, self.repeats
        )?;
        for (outcome, count) in &self.answers {
            writeln!(out, "  {:<30} {count:>7}", format!("answered {outcome}"))?;
        }
        let details: Vec<String> =
            self.answer_details.iter().map(|(detail, n)| format!("{detail} {n}")).collect();
        writeln!(out, "  transactionMetadata outcome    {}", details.join(", "))?;
        writeln!(
            out,
            "  latency p50 / p99 / max        {} / {} / {} ms",
            self.latency_p50.as_millis(),
            self.latency_p99.as_millis(),
            self.latency_max.as_millis()
        )?;
        writeln!(
            out,
            "  {:<30} {:>7}",
            format!("later than {deadline_ms} ms"),
            self.late_deadline
        )?;
        writeln!(out, "  {:<30} {:>7}", "later than 3000 ms (Okta)", self.late_okta)?;
        writeln!(out, "delivery (the emulators' journals)")?;
        writeln!(
            out,
            "  accepted within {deadline_ms} ms        {:>7}  {:.2}%",
            self.accepted_within_deadline,
            share(self.accepted_within_deadline)
        )?;
        writeln!(
            out,
            "  accepted before expiry         {:>7}  {:.2}%",
            self.accepted_before_expiry,
            share(self.accepted_before_expiry)
        )?;
        writeln!(out, "  lost, a provider could take it {:>7}", self.lost_while_able)?;
        writeln!(out, "  lost, no provider could        {:>7}", self.lost_while_unable)?;
        writeln!(out, "    of lost: accepted after expiry {:>5}", self.accepted_only_after_expiry)?;
        if !self.lost_by_last_send.is_empty() {
            let met: Vec<String> =
                self.lost_by_last_send.iter().map(|(met, n)| format!("{met} {n}")).collect();
            writeln!(out, "    of lost, last send met:      {}", met.join(", "))?;
            let said: Vec<String> =
                self.lost_by_answer.iter().map(|(said, n)| format!("{said} {n}")).collect();
            writeln!(out, "    of lost, first answer said:  {}", said.join(", "))?;
            let tried: Vec<String> =
                self.lost_by_sends.iter().map(|(sends, n)| format!("{sends} sends {n}")).collect();
            writeln!(out, "    of lost, sends read in time: {}", tried.join(", "))?;
        }
        writeln!(
            out,
            "  duplicates                     {:>7}  {:.2} per 1,000 codes",
            self.duplicates,
            self.duplicates_per_1k()
        )?;
        if !self.duplicates_by_first.is_empty() {
            let first: Vec<String> =
                self.duplicates_by_first.iter().map(|(kind, n)| format!("{kind} {n}")).collect();
            writeln!(out, "    by first acceptance:         {}", first.join(", "))?;
        }
        writeln!(out, "    of repeated eventIds         {:>7}", self.duplicates_repeated)?;
        writeln!(out, "  second sends from repeats      {:>7}", self.second_sends_from_repeats)?;
        let per_code = |n: u64| if self.codes == 0 { 0.0 } else { n as f64 / self.codes as f64 };
        writeln!(
            out,
            "  sends per code                 {:>7.3}  (accepted {:.3})",
            per_code(self.sends),
            per_code(self.sends_accepted)
        )?;
        for provider in &self.providers {
            writeln!(
                out,
                "    {:<10} received {:>6}  accepted {:>6}",
                provider.id, provider.received, provider.accepted
            )?;
        }
        writeln!(out, "targets")?;
        let verdict = |is_met: bool| if is_met { "met   " } else { "missed" };
        writeln!(
            out,
            "  {} 0 lost whenever some provider could take the code ({})",
            verdict(self.lost_while_able == 0),
            self.lost_while_able
        )?;
        writeln!(
            out,
            "  {} 0 late answers ({} later than {deadline_ms} ms, {} later than 3000 ms)",
            verdict(self.late_deadline == 0 && self.late_okta == 0),
            self.late_deadline,
            self.late_okta
        )?;
        writeln!(
            out,
            "  {} 0 second sends from repeats ({})",
            verdict(self.second_sends_from_repeats == 0),
            self.second_sends_from_repeats
        )?;
        writeln!(out, "  measured duplicates {:.2} per 1,000 codes", self.duplicates_per_1k())?;
        Ok(())
    }
}

fn per_1k(n: u64, of: u64) -> f64 {
    if of == 0 { 0.0 } else { 1000.0 * n as f64 / of as f64 }
}

#[cfg(test)]
mod tests {
    use super::super::schedule::Phase;
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    fn code(sent_at: f64, life: f64, repeat_sent_at: Option<f64>) -> CodeRecord {
        CodeRecord {
            code: String::new(),
            sent_at: secs(sent_at),
            expires_at: secs(sent_at + life),
            repeat_sent_at: repeat_sent_at.map(secs),
        }
    }

    fn answer(code_index: usize, latency_ms: u64, outcome: AnswerOutcome) -> Answer {
        let latency = Duration::from_millis(latency_ms);
        Answer { code_index, is_repeat: false, latency, outcome, detail: None }
    }

    fn send(applied: &[Timeline], provider: usize, code_index: usize, at: f64) -> Send {
        Send {
            provider,
            code_index: Some(code_index),
            at: secs(at),
            condition: condition_of(applied, provider, secs(at)),
        }
    }

    #[test]
    fn sets_answers_against_sends_and_the_schedule() {
        let phase = |start: f64, condition| Phase { start: secs(start), condition };
        let applied = vec![
            vec![phase(0.0, Condition::Healthy), phase(10.0, Condition::Hang)],
            vec![phase(0.0, Condition::Hang), phase(25.0, Condition::Healthy)],
        ];
        let codes = vec![
            code(0.5, 5.0, None),         // accepted by the healthy provider 0
            code(1.0, 5.0, None),         // never sent while provider 0 was healthy: lost
            code(12.0, 8.0, None),        // everything broken over its life: lost, not a target
            code(26.0, 10.0, Some(26.8)), // accepted, repeated, accepted again after the repeat
            code(26.0, 10.0, None),       // refused by the hanging provider, then accepted
        ];
        let successful = || AnswerOutcome::Status("SUCCESSFUL".to_owned());
        let answers = vec![
            answer(0, 100, successful()),
            answer(1, 2_600, successful()),
            answer(2, 3_100, successful()),
            answer(3, 200, successful()),
            Answer { is_repeat: true, ..answer(3, 150, successful()) },
            answer(4, 900, AnswerOutcome::NoAnswer),
        ];
        let sends = vec![
            send(&applied, 0, 0, 0.6),
            send(&applied, 1, 3, 26.1),
            send(&applied, 1, 3, 27.0),
            send(&applied, 0, 4, 26.1),
            send(&applied, 1, 4, 27.0),
        ];
        let ids = vec!["a".to_owned(), "b".to_owned()];
        let report = account(&RunRecord {
            codes: &codes,
            answers: &answers,
            sends: &sends,
            provider_ids: &ids,
            applied: &applied,
            horizon: secs(40.0),
            deadline: Duration::from_millis(2_500),
        });

        assert_eq!((report.codes, report.requests, report.repeats), (5, 6, 1));
        assert_eq!(report.answers.get("SUCCESSFUL"), Some(&5));
        assert_eq!(report.answers.get("no answer"), Some(&1));
        assert_eq!((report.late_deadline, report.late_okta), (3, 2));
        assert_eq!(report.latency_max, Duration::from_millis(3_100));
        assert_eq!((report.sends, report.sends_accepted), (5, 4));
        assert_eq!(report.accepted_before_expiry, 3);
        assert_eq!(report.accepted_within_deadline, 3);
        // Code 4 was never answered SUCCESSFUL, and was accepted anyway: not lost either way.
        assert_eq!((report.lost_while_able, report.lost_while_unable), (1, 1));
        assert_eq!(report.accepted_only_after_expiry, 0);
        assert_eq!(report.lost_by_last_send.get("never sent"), Some(&2));
        assert_eq!(report.duplicates, 1);
        assert_eq!(report.duplicates_repeated, 1);
        assert_eq!(report.second_sends_from_repeats, 1);
        assert_eq!(report.duplicates_by_first.get("healthy"), Some(&1));
        assert_eq!(report.providers[1].distinct_codes_accepted, 2);
        assert_eq!(report.providers[0].received, 2);
        assert_eq!(report.providers[0].accepted, 1);
        assert!((report.providers[0].time_share[&Condition::Healthy] - 0.25).abs() < 1e-9);
    }
}
