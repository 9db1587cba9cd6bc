//! Prometheus metrics.
//!
//! Each server owns its recorder instead of installing a global one, so several servers (tests,
//! the demo) can run in one process without mixing their counts. Labels come from bounded sets
//! only: provider ids from config, ISO countries, channels, outcome classes. Never a phone
//! number, user, event id or anything that grows with traffic.

use std::time::Duration;

use metrics::{Key, Label, Metadata, Recorder, Unit};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};
use switchboard_core::health::{HealthStatus, OperatorState, Verdict};
use switchboard_core::{AttemptOutcome, Channel, ProviderId, Purpose};

use crate::health::RouteEvidence;

const HOOK_REQUESTS: &str = "switchboard_hook_requests_total";
const HOOK_DURATION: &str = "switchboard_hook_duration_seconds";
const ATTEMPTS: &str = "switchboard_provider_attempts_total";
const ATTEMPT_DURATION: &str = "switchboard_provider_attempt_duration_seconds";
const POSSIBLE_DUPLICATES: &str = "switchboard_possible_duplicates_total";
const EXPLORATIONS: &str = "switchboard_explorations_total";
const PROVIDER_HEALTH: &str = "switchboard_provider_health";
const REFUSED: &str = "switchboard_hook_refused_total";
const REPEATED: &str = "switchboard_hook_repeated_total";
const DELIVERIES: &str = "switchboard_deliveries_total";
const GUARD_BLOCKED: &str = "switchboard_guard_blocked_total";
const GUARD_NEAR_MISSES: &str = "switchboard_guard_near_misses_total";
const RELOADS: &str = "switchboard_config_reloads_total";
const RECEIPTS: &str = "switchboard_receipts_total";
const CALLBACKS_REFUSED: &str = "switchboard_callbacks_refused_total";
const SPECULATION_DECLINED: &str = "switchboard_speculative_sends_declined_total";
const SHED: &str = "switchboard_hook_shed_total";
const AT_CAPACITY: &str = "switchboard_provider_at_capacity_total";
const RECEIPTS_MISSING: &str = "switchboard_receipts_missing_total";
const ROUTE_DELIVERED: &str = "switchboard_route_delivered_ratio";
const ROUTE_PROBLEM: &str = "switchboard_route_problem";
const RECEIPT_COVERAGE: &str = "switchboard_route_receipt_coverage_ratio";
const RECEIPTS_STOPPED: &str = "switchboard_route_receipts_stopped";
const OKTA_EVENTS: &str = "switchboard_okta_events_total";
const CONVERSIONS: &str = "switchboard_conversions_total";
const CONVERSION_MATCHES: &str = "switchboard_conversion_matches_total";
const CONVERSION_DROPPED: &str = "switchboard_conversion_sends_dropped_total";
const SYSTEM_LOG_POLLS: &str = "switchboard_system_log_polls_total";
const STATE_UP: &str = "switchboard_state_backend_up";
const STATE_CALLS: &str = "switchboard_state_calls_total";
const STATE_FALLBACKS: &str = "switchboard_state_fallbacks_total";
const STATE_BUS_LOST: &str = "switchboard_state_bus_messages_lost_total";
const STATE_HEALTH: &str = "switchboard_state_health_total";
const STATE_REPLICAS: &str = "switchboard_state_replicas";
const LEDGER_ELSEWHERE: &str = "switchboard_ledger_repeats_elsewhere_total";
const LEDGER_JUDGED: &str = "switchboard_ledger_unresent_judged_total";
const STATE_PEER_EVIDENCE: &str = "switchboard_state_peer_evidence_total";
const STATE_RECEIPT_MATCHES: &str = "switchboard_state_receipt_matches_total";

/// Seconds; the top buckets bracket Okta's 3 s timeout.
const LATENCY_BUCKETS: &[f64] =
    &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 5.0];

static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));

/// The server's metrics registry.
pub(crate) struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

/// What became of one hook request, as a metric label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HookOutcome {
    /// A provider accepted the message.
    Delivered,
    /// Every attempt failed or time ran out.
    Undelivered,
    /// The number itself was refused (by us or a provider); no failover.
    Rejected,
    /// Answered while the delivery goes on in the background.
    Pending,
}

impl HookOutcome {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            HookOutcome::Delivered => "delivered",
            HookOutcome::Undelivered => "undelivered",
            HookOutcome::Rejected => "rejected",
            HookOutcome::Pending => "pending",
        }
    }
}

impl Metrics {
    pub(crate) fn new() -> Metrics {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
            .expect("bucket list is not empty")
            .build_recorder();
        let handle = recorder.handle();
        let describe = |name: &'static str, unit, text: &'static str| {
            recorder.describe_counter(name.into(), unit, text.into());
        };
        describe(
            HOOK_REQUESTS,
            None,
            "Okta hook requests answered, by outcome, Okta status, channel and request type.",
        );
        describe(
            ATTEMPTS,
            None,
            "Send attempts, by provider, channel and outcome (accepted or error class).",
        );
        describe(
            POSSIBLE_DUPLICATES,
            None,
            "Failovers after an attempt that may have been accepted: the user may get two messages.",
        );
        describe(
            EXPLORATIONS,
            None,
            "First attempts sent by exploration to a provider that did not rank first, by provider.",
        );
        describe(REFUSED, None, "Hook requests refused before dispatch, by reason.");
        describe(
            REPEATED,
            None,
            "Hook requests repeating an eventId, answered with the first answer and no send.",
        );
        describe(
            DELIVERIES,
            None,
            "Deliveries finished (after any background attempts), by final outcome, reason and channel.",
        );
        describe(
            AT_CAPACITY,
            None,
            "Sends that skipped a provider for the next one because it was at its max_per_second.",
        );
        describe(
            SPECULATION_DECLINED,
            None,
            "Hedges and race extras not sent because the retry or spend budget was empty.",
        );
        describe(
            SHED,
            None,
            "Hook requests answered at once, unsent, because the server was overloaded, by reason.",
        );
        describe(
            OKTA_EVENTS,
            None,
            "Okta events received, by source (event_hook, system_log) and result: accepted, duplicate (uuid seen before) or ignored (another event type or factor) per event; unauthenticated or malformed per refused delivery.",
        );
        describe(
            CONVERSIONS,
            None,
            "Accepted sends settled by what Okta said, by provider, channel and outcome: entered, superseded (a resend's code was entered), resent (a resend, without Okta's events), not_resent (no resend in the code's life, without them), not_entered, wrong_code (only wrong codes; counts against nobody).",
        );
        describe(
            CONVERSION_MATCHES,
            None,
            "Okta's code events by whether they found the send they were about (result matched or unmatched); alert when matched stops growing while unmatched does.",
        );
        describe(
            CONVERSION_DROPPED,
            None,
            "Accepted sends dropped unsettled from the conversion store to make room (full, or a user's list at its cap): they never count for or against their providers.",
        );
        describe(
            SYSTEM_LOG_POLLS,
            None,
            "Requests to Okta's System Log API, by result: ok, rate_limited or error.",
        );
        describe(
            STATE_CALLS,
            None,
            "Calls to the shared state (Redis), by store and result: ok, timeout, error or breaker_open.",
        );
        describe(
            STATE_FALLBACKS,
            None,
            "Times a store used its local fallback because Redis was unavailable, by store and why (timeout, error, breaker_open).",
        );
        describe(
            STATE_BUS_LOST,
            None,
            "Messages to other replicas not published because Redis was unavailable, by topic.",
        );
        describe(
            STATE_PEER_EVIDENCE,
            None,
            "Delivery evidence another replica saw and this one recorded in its health, by kind (receipt, receipt_missing, conversion).",
        );
        describe(
            STATE_RECEIPT_MATCHES,
            None,
            "Receipts taken in by this replica in Redis mode, by where their send was found: local, shared, shared_after_retry or none.",
        );
        describe(
            STATE_HEALTH,
            None,
            "Provider health learned from other replicas, by change (ejected, rate_limited, recovered) and via (bus, sync); and probation trial leases (trial_won, trial_held) via redis.",
        );
        recorder.describe_histogram(
            HOOK_DURATION.into(),
            Some(Unit::Seconds),
            "Time from the arrival of Okta's request (its first byte) to the answer.".into(),
        );
        recorder.describe_histogram(
            ATTEMPT_DURATION.into(),
            Some(Unit::Seconds),
            "Duration of one provider attempt.".into(),
        );
        recorder.describe_gauge(
            PROVIDER_HEALTH.into(),
            None,
            "1 for the provider's current health state, 0 for the others.".into(),
        );
        describe(
            RECEIPTS_MISSING,
            None,
            "Accepted messages with no final receipt within health.receipt_grace_ms, by provider.",
        );
        let describe_gauge = |name: &'static str, text: &'static str| {
            recorder.describe_gauge(name.into(), None, text.into());
        };
        describe_gauge(
            ROUTE_DELIVERED,
            "Share of a route's decayed evidence that says the code reached the phone, by provider, country, channel and signal (receipts: delivered; conversions: entered in Okta).",
        );
        describe_gauge(
            ROUTE_PROBLEM,
            "1 when a route's receipts or conversions are clearly worse than its peers' (or the floor): it ranks after every provider that delivers.",
        );
        describe_gauge(
            RECEIPT_COVERAGE,
            "Share of a route's accepted messages, past their grace, that got a final receipt.",
        );
        describe_gauge(
            RECEIPTS_STOPPED,
            "1 when too few of a route's messages get a receipt (health.receipt_min_coverage_percent): flagged, not ejected.",
        );
        describe_gauge(
            STATE_UP,
            "1 while the shared state (Redis) answers and its circuit breaker is closed; 0 while the stores fall back to local state.",
        );
        recorder.describe_counter(
            LEDGER_ELSEWHERE.into(),
            None,
            "Repeated eventIds whose first request ran on another replica, by answer: replayed (that replica's answer) or pending (none by this request's deadline; nothing sent).".into(),
        );
        recorder.describe_counter(
            LEDGER_JUDGED.into(),
            None,
            "Codes whose life ended with no resend on the replica that sent them, judged against the fleet's shared flag: resent (on another replica; not counted as arrived), unresent, or local (nothing shared to read; the local judgement stands).".into(),
        );
        describe_gauge(
            STATE_REPLICAS,
            "Replicas sharing the state, as last counted in Redis (limits fall back to a share of their quota by this count).",
        );
        Metrics { recorder, handle }
    }

    pub(crate) fn state_backend_up(&self, is_up: bool) {
        self.recorder.register_gauge(&Key::from_name(STATE_UP), &METADATA).set(if is_up {
            1.0
        } else {
            0.0
        });
    }

    pub(crate) fn state_replicas(&self, count: u32) {
        self.recorder
            .register_gauge(&Key::from_name(STATE_REPLICAS), &METADATA)
            .set(f64::from(count));
    }

    pub(crate) fn state_call(&self, store: &'static str, result: &'static str) {
        let labels = vec![Label::new("store", store), Label::new("result", result)];
        self.counter(STATE_CALLS, labels).increment(1);
    }

    pub(crate) fn state_fallback(&self, store: &'static str, why: &'static str) {
        let labels = vec![Label::new("store", store), Label::new("why", why)];
        self.counter(STATE_FALLBACKS, labels).increment(1);
    }

    /// Health that reached this replica from another (`via` the bus or the sync loop), and
    /// the probation trial leases it won or lost.
    pub(crate) fn state_health(&self, change: &'static str, via: &'static str) {
        let labels = vec![Label::new("change", change), Label::new("via", via)];
        self.counter(STATE_HEALTH, labels).increment(1);
    }

    pub(crate) fn state_bus_lost(&self, topic: &'static str) {
        self.counter(STATE_BUS_LOST, vec![Label::new("topic", topic)]).increment(1);
    }

    /// A repeated `eventId` whose first request ran on another replica: `replayed` its answer,
    /// or answered `pending` at its own deadline with no answer from there.
    pub(crate) fn ledger_repeat_elsewhere(&self, answer: &'static str) {
        self.counter(LEDGER_ELSEWHERE, vec![Label::new("answer", answer)]).increment(1);
    }

    /// A code whose life ended with no resend on this replica, judged against the fleet's flag:
    /// `resent` (on another replica), `unresent`, or `local` (nothing shared to read).
    pub(crate) fn ledger_unresent_judged(&self, verdict: &'static str) {
        self.counter(LEDGER_JUDGED, vec![Label::new("verdict", verdict)]).increment(1);
    }

    pub(crate) fn state_peer_evidence(&self, kind: &'static str) {
        self.counter(STATE_PEER_EVIDENCE, vec![Label::new("kind", kind)]).increment(1);
    }

    pub(crate) fn receipt_match(&self, found: &'static str) {
        self.counter(STATE_RECEIPT_MATCHES, vec![Label::new("found", found)]).increment(1);
    }

    /// The Prometheus text exposition.
    pub(crate) fn render(&self) -> String {
        self.handle.render()
    }

    /// Drains histogram buffers; call periodically when nobody scrapes.
    pub(crate) fn upkeep(&self) {
        self.handle.run_upkeep();
    }

    pub(crate) fn hook_answered(
        &self,
        outcome: HookOutcome,
        okta_status: &'static str,
        channel: Channel,
        purpose: Purpose,
    ) {
        let labels = [
            Label::new("outcome", outcome.as_str()),
            Label::new("okta_status", okta_status),
            Label::new("channel", channel.as_str()),
            Label::new("request_type", purpose.as_str()),
        ];
        self.counter(HOOK_REQUESTS, labels.to_vec()).increment(1);
    }

    /// Time from a hook request's arrival to its answer, for every answer the handler gives
    /// (sent, refused or shed), so that a late answer shows whatever caused it.
    pub(crate) fn hook_duration(&self, elapsed: Duration) {
        self.histogram(HOOK_DURATION, Vec::new()).record(elapsed.as_secs_f64());
    }

    pub(crate) fn receipt(&self, provider: &ProviderId, state: &'static str, is_matched: bool) {
        let labels = vec![
            Label::new("provider", provider.as_str().to_owned()),
            Label::new("state", state),
            Label::new("matched", if is_matched { "true" } else { "false" }),
        ];
        self.counter(RECEIPTS, labels).increment(1);
    }

    pub(crate) fn callback_refused(&self, provider: &ProviderId, reason: &'static str) {
        let labels = vec![
            Label::new("provider", provider.as_str().to_owned()),
            Label::new("reason", reason),
        ];
        self.counter(CALLBACKS_REFUSED, labels).increment(1);
    }

    /// The guard's verdict: the rule that blocked (or would have, in monitor mode) and the
    /// limits close to tripping, by their labels.
    pub(crate) fn guard(
        &self,
        blocked_by: Option<&'static str>,
        near_misses: &[&'static str],
        channel: Channel,
        mode: &'static str,
    ) {
        if let Some(rule) = blocked_by {
            let labels = vec![
                Label::new("rule", rule),
                Label::new("channel", channel.as_str()),
                Label::new("mode", mode),
            ];
            self.counter(GUARD_BLOCKED, labels).increment(1);
        }
        for rule in near_misses {
            let labels = vec![Label::new("rule", *rule), Label::new("channel", channel.as_str())];
            self.counter(GUARD_NEAR_MISSES, labels).increment(1);
        }
    }

    pub(crate) fn config_reload(&self, is_ok: bool) {
        let labels = vec![Label::new("result", if is_ok { "ok" } else { "refused" })];
        self.counter(RELOADS, labels).increment(1);
    }

    pub(crate) fn hook_repeated(&self) {
        self.counter(REPEATED, Vec::new()).increment(1);
    }

    /// A delivery ended: `outcome` is `delivered`, `rejected` or `undelivered`, and `reason`
    /// the error class of a rejection or why nothing was delivered (`-` for a delivery).
    pub(crate) fn delivery_finished(
        &self,
        outcome: &'static str,
        reason: &'static str,
        channel: Channel,
    ) {
        let labels = vec![
            Label::new("outcome", outcome),
            Label::new("reason", reason),
            Label::new("channel", channel.as_str()),
        ];
        self.counter(DELIVERIES, labels).increment(1);
    }

    /// A hedge or race extra the retry budget declined (`refusal`: `retry_budget` or
    /// `spend_budget`).
    pub(crate) fn speculation_declined(&self, kind: &'static str, refusal: &'static str) {
        let labels = vec![Label::new("kind", kind), Label::new("refusal", refusal)];
        self.counter(SPECULATION_DECLINED, labels).increment(1);
    }

    /// A hook request answered at once because the server could not have answered it in time
    /// (`reason`: `in_flight`, `queued`, `deliveries`).
    pub(crate) fn shed(&self, reason: &'static str) {
        self.counter(SHED, vec![Label::new("reason", reason)]).increment(1);
    }

    pub(crate) fn hook_refused(&self, reason: &'static str) {
        self.counter(REFUSED, vec![Label::new("reason", reason)]).increment(1);
    }

    /// Okta events (or refused deliveries of them) from `source`, by `result`.
    pub(crate) fn okta_events(&self, source: &'static str, result: &'static str, n: u64) {
        let labels = vec![Label::new("source", source), Label::new("result", result)];
        self.counter(OKTA_EVENTS, labels).increment(n);
    }

    /// A send settled by what Okta said: `outcome` is `entered`, `superseded`, `resent`,
    /// `not_entered` or `wrong_code`.
    pub(crate) fn conversion(
        &self,
        provider: &ProviderId,
        channel: Channel,
        outcome: &'static str,
    ) {
        let labels = vec![
            Label::new("provider", provider.as_str().to_owned()),
            Label::new("channel", channel.as_str()),
            Label::new("outcome", outcome),
        ];
        self.counter(CONVERSIONS, labels).increment(1);
    }

    /// An event about a code found its send, or did not.
    pub(crate) fn conversion_match(&self, channel: Channel, is_matched: bool) {
        let labels = vec![
            Label::new("channel", channel.as_str()),
            Label::new("result", if is_matched { "matched" } else { "unmatched" }),
        ];
        self.counter(CONVERSION_MATCHES, labels).increment(1);
    }

    /// Sends dropped unsettled from the conversion store to make room.
    pub(crate) fn conversion_sends_dropped(&self, count: usize) {
        self.counter(CONVERSION_DROPPED, Vec::new()).increment(count as u64);
    }

    /// One request to Okta's System Log API: `ok`, `rate_limited` or `error`.
    pub(crate) fn system_log_poll(&self, result: &'static str) {
        self.counter(SYSTEM_LOG_POLLS, vec![Label::new("result", result)]).increment(1);
    }

    pub(crate) fn attempt(
        &self,
        provider: &ProviderId,
        channel: Channel,
        outcome: &AttemptOutcome,
        elapsed: Duration,
    ) {
        let provider_label = Label::new("provider", provider.as_str().to_owned());
        let labels = vec![
            provider_label.clone(),
            Label::new("channel", channel.as_str()),
            Label::new("outcome", outcome.label()),
        ];
        self.counter(ATTEMPTS, labels).increment(1);
        self.histogram(ATTEMPT_DURATION, vec![provider_label]).record(elapsed.as_secs_f64());
    }

    /// A send made to learn whether a lower-ranked provider recovered or improved: the share of
    /// traffic that exploration costs.
    /// A send that skipped `provider` because it was at its throughput cap.
    pub(crate) fn at_capacity(&self, provider: &ProviderId) {
        let labels = vec![Label::new("provider", provider.as_str().to_owned())];
        self.counter(AT_CAPACITY, labels).increment(1);
    }

    pub(crate) fn exploration(&self, provider: &ProviderId) {
        let labels = vec![Label::new("provider", provider.as_str().to_owned())];
        self.counter(EXPLORATIONS, labels).increment(1);
    }

    pub(crate) fn possible_duplicate(&self, provider: &ProviderId) {
        let labels = vec![Label::new("provider", provider.as_str().to_owned())];
        self.counter(POSSIBLE_DUPLICATES, labels).increment(1);
    }

    /// A message whose final receipt did not come within `health.receipt_grace_ms`.
    pub(crate) fn receipt_missing(&self, provider: &ProviderId) {
        self.counter(RECEIPTS_MISSING, vec![Label::new("provider", provider.as_str().to_owned())])
            .increment(1);
    }

    /// Sets the delivery-evidence gauges of every route with evidence (called at scrape time).
    /// Labels: provider (config), country (ISO), channel, and `signal` (`receipts` or
    /// `conversions`): bounded by configuration, not by traffic.
    pub(crate) fn routes(&self, routes: &[RouteEvidence]) {
        for route in routes {
            let labels = |extra: Option<&'static str>| {
                let mut labels = vec![
                    Label::new("provider", route.key.provider().as_str().to_owned()),
                    Label::new("country", route.key.country().as_str().to_owned()),
                    Label::new("channel", route.key.channel().as_str()),
                ];
                if let Some(signal) = extra {
                    labels.push(Label::new("signal", signal));
                }
                labels
            };
            let gauge = |name: &'static str, labels: Vec<Label>, value: f64| {
                self.recorder.register_gauge(&Key::from_parts(name, labels), &METADATA).set(value);
            };
            let evidence = &route.evidence;
            for (signal, evidence) in
                [("receipts", &evidence.receipts), ("conversions", &evidence.conversions)]
            {
                if let Some(share) = evidence.share() {
                    gauge(ROUTE_DELIVERED, labels(Some(signal)), share);
                }
                let is_problem = evidence.verdict == Verdict::Poor;
                gauge(ROUTE_PROBLEM, labels(Some(signal)), if is_problem { 1.0 } else { 0.0 });
            }
            if let Some(coverage) = evidence.receipt_coverage {
                gauge(RECEIPT_COVERAGE, labels(None), coverage);
            }
            gauge(
                RECEIPTS_STOPPED,
                labels(None),
                if evidence.receipts_stopped { 1.0 } else { 0.0 },
            );
        }
    }

    /// Sets the health gauges from a snapshot (called at scrape time, so no background loop).
    pub(crate) fn provider_health(&self, snapshot: &[(ProviderId, HealthStatus, OperatorState)]) {
        for (provider, status, operator) in snapshot {
            // The operator's switch wins: a disabled provider is not "healthy" to a dashboard.
            let current = match operator {
                OperatorState::Enabled => health_label(status),
                OperatorState::Draining => "draining",
                OperatorState::Disabled => "disabled",
            };
            for state in ["healthy", "ejected", "probation", "rate_limited", "draining", "disabled"]
            {
                let labels = vec![
                    Label::new("provider", provider.as_str().to_owned()),
                    Label::new("state", state),
                ];
                let value = if state == current { 1.0 } else { 0.0 };
                self.recorder
                    .register_gauge(&Key::from_parts(PROVIDER_HEALTH, labels), &METADATA)
                    .set(value);
            }
        }
    }

    fn counter(&self, name: &'static str, labels: Vec<Label>) -> metrics::Counter {
        self.recorder.register_counter(&Key::from_parts(name, labels), &METADATA)
    }

    fn histogram(&self, name: &'static str, labels: Vec<Label>) -> metrics::Histogram {
        self.recorder.register_histogram(&Key::from_parts(name, labels), &METADATA)
    }
}

fn health_label(status: &HealthStatus) -> &'static str {
    match status {
        HealthStatus::Healthy => "healthy",
        HealthStatus::Ejected { .. } => "ejected",
        HealthStatus::Probation { .. } => "probation",
        HealthStatus::RateLimited { .. } => "rate_limited",
    }
}
