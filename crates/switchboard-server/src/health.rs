//! The provider health store: one [`HealthBook`] for the server, carried over by provider id
//! when the configuration is reloaded.
//!
//! Every attempt's outcome, every receipt, every conversion and every abandoned attempt goes in
//! through a method that takes `now` and values. Planning is the exception: `plan` and `explain`
//! read the whole book (every key of the matched rule's providers and their estimates) in one
//! consistent view, so they run inside [`HealthStore::read`] rather than copying the book
//! out; a shared backend would serve that view from a snapshot. A std mutex: sections are a few
//! map operations and never span an `.await`.
//!
//! In Redis mode ([`HealthStore::share`]) the store also says what must hold fleet-wide: each
//! change of a key's ejection, of a provider's `Retry-After`, and each recovery goes out as a
//! [`HealthChange`] to `fleet/health.rs`, which writes and publishes it off the request path;
//! what other replicas saw comes back in through the `apply_*` methods; and a probation trial
//! runs only once this replica holds the fleet's lease for it ([`HealthStore::may_run_trial`]).
//! Without [`HealthStore::share`] (memory mode) none of that exists and nothing changes.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use switchboard_core::health::{
    DeliveryEvidence, EjectionCause, EjectionNotice, Evidence, HealthBook, HealthKey, HealthPolicy,
    HealthStatus,
};
use switchboard_core::switch::OperatorSwitches;
use switchboard_core::{AttemptOutcome, Conversion, Delivery, ProviderId};
use tokio::sync::mpsc;

/// Provider health, per (provider, country, channel).
#[derive(Debug)]
pub(crate) struct HealthStore {
    book: Mutex<HealthBook>,
    /// Redis mode only: where changes go, and the fleet's trials.
    fleet: OnceLock<FleetLink>,
}

/// Something other replicas must know, or a question for the fleet (Redis mode).
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum HealthChange {
    /// This replica ejected `key` (or ejected it again, for longer).
    Ejected { key: HealthKey, notice: EjectionNotice },
    /// `provider` told this replica to wait until `until`.
    RateLimited { provider: ProviderId, until: Instant },
    /// `key`'s ejection ended here through a successful trial; `until_ms` is that ejection's
    /// end as the fleet had it (Redis's clock), if it had it.
    Recovered { key: HealthKey, until_ms: Option<i64> },
    /// `key`'s probation trial is due here: may this replica run it?
    TrialWanted { key: HealthKey },
}

/// The store's side of sharing (Redis mode). Locked after the book, never across an `.await`.
#[derive(Debug)]
struct FleetLink {
    changes: mpsc::UnboundedSender<HealthChange>,
    trials: Mutex<HashMap<HealthKey, TrialGate>>,
    /// What this replica knows of the fleet's ejections.
    ejections: Mutex<FleetEjections>,
}

/// The fleet's ejections as this replica knows them, by their ends on Redis's clock (ms): so
/// that a recovery ends that ejection everywhere and never a later one, and so that a read of
/// Redis begun before a recovery does not bring the ended ejection back.
#[derive(Debug, Default)]
struct FleetEjections {
    /// Ejections in force: their end, and when this replica learned it.
    live: HashMap<HealthKey, (i64, Instant)>,
    /// The end of the last ejection of each key that a trial ended.
    ended: HashMap<HealthKey, i64>,
}

/// Where this replica stands on a key's probation trial.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TrialGate {
    /// The lease was asked for at this instant; until an answer the key is skipped here.
    Asked(Instant),
    /// This replica may run the trial until then (it holds the lease, or Redis was unavailable
    /// and the trial is decided locally).
    Granted(Instant),
}

/// One provider's state for the admin API and the health gauges.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ProviderHealth {
    pub(crate) id: ProviderId,
    pub(crate) status: HealthStatus,
}

/// One route's delivery evidence, for the admin API and the gauges.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct RouteEvidence {
    pub(crate) key: HealthKey,
    pub(crate) status: HealthStatus,
    pub(crate) ejection_cause: Option<EjectionCause>,
    pub(crate) evidence: DeliveryEvidence,
}

/// A route's delivery evidence as JSON (admin API, explain): receipts and conversions with the
/// bar they were judged against, receipt coverage, and the flags.
pub(crate) fn delivery_json(delivery: &DeliveryEvidence) -> serde_json::Value {
    let evidence = |evidence: &Evidence| {
        serde_json::json!({
            "good": round(evidence.good),
            "bad": round(evidence.bad),
            "share": evidence.share().map(round),
            "recent_share": evidence.recent_share.map(round),
            "peer_share": evidence.peer_share.map(round),
            "bar": evidence.bar.map(round),
            "verdict": evidence.verdict.as_str(),
        })
    };
    serde_json::json!({
        "route_problem": delivery.is_route_problem(),
        "receipts": evidence(&delivery.receipts),
        "receipts_missing": round(delivery.receipts_missing),
        "receipt_coverage": delivery.receipt_coverage.map(round),
        "receipts_stopped": delivery.receipts_stopped,
        "conversions": evidence(&delivery.conversions),
    })
}

/// One line of a route's delivery evidence for explain's text, or `None` when there is none.
pub(crate) fn delivery_text(delivery: &DeliveryEvidence) -> Option<String> {
    let mut parts = Vec::new();
    let describe = |evidence: &Evidence, good: &str, of: &str| {
        let share = evidence.share()?;
        let bar = match (evidence.bar, evidence.peer_share) {
            (Some(bar), Some(_)) => format!(", bar {:.0}% from its best peer", bar * 100.0),
            (Some(bar), None) => format!(", floor {:.0}% (no peer)", bar * 100.0),
            (None, _) => String::new(),
        };
        let latest = evidence
            .recent_share
            .map_or(String::new(), |recent| format!(", latest {:.0}%", recent * 100.0));
        Some(format!(
            "{of} {:.0}% {good} ({:.1} of {:.1}{latest}{bar}): {}",
            share * 100.0,
            evidence.good,
            evidence.count(),
            evidence.verdict.as_str()
        ))
    };
    parts.extend(describe(&delivery.receipts, "delivered", "receipts"));
    if let Some(coverage) = delivery.receipt_coverage {
        parts.push(format!(
            "receipt coverage {:.0}%{}",
            coverage * 100.0,
            if delivery.receipts_stopped { " (receipts stopped: flagged)" } else { "" }
        ));
    }
    parts.extend(describe(&delivery.conversions, "entered", "conversions"));
    if delivery.is_route_problem() {
        parts.push("route problem: ranked after every provider that delivers".into());
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// Decayed counts and shares, to three decimals: more says nothing to an operator.
fn round(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

impl HealthStore {
    pub(crate) fn new(policy: HealthPolicy) -> HealthStore {
        HealthStore { book: Mutex::new(HealthBook::new(policy)), fleet: OnceLock::new() }
    }

    /// Redis mode: from now on, changes other replicas must know come out of the returned
    /// receiver, and probation trials wait for the fleet's lease. `None` if already shared.
    pub(crate) fn share(&self) -> Option<mpsc::UnboundedReceiver<HealthChange>> {
        let (changes, receiver) = mpsc::unbounded_channel();
        let link = FleetLink { changes, trials: Mutex::default(), ejections: Mutex::default() };
        self.fleet.set(link).ok()?;
        Some(receiver)
    }

    /// Runs `f` on the book and, in Redis mode, sends out what it changed on `key` that the
    /// fleet must know: a new or longer ejection, a recovery, a later `Retry-After`.
    fn changing<R>(&self, key: &HealthKey, f: impl FnOnce(&mut HealthBook) -> R) -> R {
        let mut book = self.lock();
        let Some(link) = self.fleet.get() else { return f(&mut book) };
        let provider = key.provider();
        let before = (book.ejection(key), book.rate_limited_until(provider));
        let result = f(&mut book);
        let after = (book.ejection(key), book.rate_limited_until(provider));
        drop(book);
        let send = |change| {
            // The receiver lives as long as the server; a send after it is gone is moot.
            let _ = link.changes.send(change);
        };
        let ejection_changed = match (before.0, after.0) {
            (_, Some(notice)) if before.0.is_none_or(|known| known.until != notice.until) => {
                send(HealthChange::Ejected { key: key.clone(), notice });
                true
            }
            (Some(_), None) => {
                let until_ms = self.end_shared_ejection(key, None);
                send(HealthChange::Recovered { key: key.clone(), until_ms });
                true
            }
            _ => false,
        };
        if ejection_changed {
            // A lease won for the trial that just ended is spent: the next probation asks again.
            lock(&link.trials).remove(key);
        }
        if let Some(until) = after.1
            && before.1.is_none_or(|known| known < until)
        {
            send(HealthChange::RateLimited { provider: provider.clone(), until });
        }
        result
    }

    /// Whether `key` may go now as far as the fleet is concerned: always in memory mode, and
    /// for anything but a probation trial. A trial runs on one replica only, the one holding
    /// the fleet's lease: the first time a trial is due here the lease is asked for (off the
    /// request path) and the key is skipped, as it is on every replica that loses. A fail-open
    /// candidate is never held back: the planner offered it because nothing else is left.
    pub(crate) fn may_run_trial(&self, key: &HealthKey, is_fail_open: bool, now: Instant) -> bool {
        let Some(link) = self.fleet.get() else { return true };
        if is_fail_open {
            return true;
        }
        let (status, trial_timeout) = {
            let book = self.lock();
            (book.status(key, now), book.policy().trial_timeout())
        };
        if status != (HealthStatus::Probation { trial_in_flight: false }) {
            return true;
        }
        let mut trials = lock(&link.trials);
        match trials.get(key) {
            Some(TrialGate::Granted(until)) if now < *until => true,
            // Unanswered for a whole lease (it cannot be, short of a lost task): ask again.
            Some(TrialGate::Asked(at)) if now.saturating_duration_since(*at) < trial_timeout => {
                false
            }
            _ => {
                trials.insert(key.clone(), TrialGate::Asked(now));
                let _ = link.changes.send(HealthChange::TrialWanted { key: key.clone() });
                false
            }
        }
    }

    /// This replica may run `key`'s trial until `until`: it holds the lease, or the fleet could
    /// not be asked and the trial is decided locally.
    pub(crate) fn grant_trial(&self, key: &HealthKey, until: Instant) {
        if let Some(link) = self.fleet.get() {
            lock(&link.trials).insert(key.clone(), TrialGate::Granted(until));
        }
    }

    /// Another replica holds `key`'s trial lease until `until`: the key stays out here.
    pub(crate) fn hold_trial(&self, key: &HealthKey, until: Instant) {
        self.lock().hold_trial(key, until);
        if let Some(link) = self.fleet.get() {
            lock(&link.trials).remove(key);
        }
    }

    /// Another replica ejected `key`: see `HealthBook::apply_ejection`. Returns whether it
    /// changed anything here.
    pub(crate) fn apply_ejection(&self, key: &HealthKey, notice: EjectionNotice) -> bool {
        let changed = self.lock().apply_ejection(key, notice);
        if changed && let Some(link) = self.fleet.get() {
            lock(&link.trials).remove(key);
        }
        changed
    }

    /// Another replica was told by `provider` to wait until `until`.
    pub(crate) fn apply_rate_limit(&self, provider: &ProviderId, until: Instant) -> bool {
        self.lock().apply_rate_limit(provider, until)
    }

    /// Until when `provider` asked to wait, as this replica knows it (may be past).
    pub(crate) fn rate_limited_until(&self, provider: &ProviderId) -> Option<Instant> {
        self.lock().rate_limited_until(provider)
    }

    /// A trial of `key` succeeded on another replica.
    pub(crate) fn apply_recovery(&self, key: &HealthKey, now: Instant) -> bool {
        let changed = self.lock().apply_recovery(key, now);
        if let Some(link) = self.fleet.get() {
            lock(&link.trials).remove(key);
        }
        changed
    }

    /// The end of `key`'s ejection in force as the fleet has it (Redis's clock, ms), if known.
    pub(crate) fn shared_until(&self, key: &HealthKey) -> Option<i64> {
        lock(&self.fleet.get()?.ejections).live.get(key).map(|(until, _)| *until)
    }

    /// Notes the end of an ejection of `key` as the fleet has it, learned at `now`, keeping the
    /// later one. Returns false, noting nothing, for an ejection a trial has already ended
    /// (read from Redis before the recovery removed it): it must not be applied again.
    pub(crate) fn note_shared_ejection(
        &self,
        key: &HealthKey,
        until_ms: i64,
        now: Instant,
    ) -> bool {
        let Some(link) = self.fleet.get() else { return true };
        let mut ejections = lock(&link.ejections);
        if ejections.ended.get(key).is_some_and(|ended| *ended >= until_ms) {
            return false;
        }
        let entry = ejections.live.entry(key.clone()).or_insert((until_ms, now));
        *entry = (entry.0.max(until_ms), now);
        true
    }

    /// A trial ended `key`'s ejection (here, or elsewhere with `until_ms` as its end): it is
    /// no longer in force, and no read may bring it back. Returns the end this replica knew.
    pub(crate) fn end_shared_ejection(
        &self,
        key: &HealthKey,
        until_ms: Option<i64>,
    ) -> Option<i64> {
        let link = self.fleet.get()?;
        let mut ejections = lock(&link.ejections);
        let known = ejections.live.remove(key).map(|(until, _)| until);
        if let Some(ended) = known.max(until_ms) {
            let entry = ejections.ended.entry(key.clone()).or_insert(ended);
            *entry = (*entry).max(ended);
        }
        known
    }

    /// Forgets `key`'s ejection in force: it ended by itself.
    pub(crate) fn forget_shared_ejection(&self, key: &HealthKey) {
        if let Some(link) = self.fleet.get() {
            lock(&link.ejections).live.remove(key);
        }
    }

    /// Every ejection in force this replica knows: the key, its end, and when it learned it.
    pub(crate) fn shared_ejections(&self) -> Vec<(HealthKey, i64, Instant)> {
        self.fleet.get().map_or_else(Vec::new, |link| {
            let ejections = lock(&link.ejections);
            ejections.live.iter().map(|(key, (until, at))| (key.clone(), *until, *at)).collect()
        })
    }

    /// How long a probation trial's lease lasts.
    pub(crate) fn trial_timeout(&self) -> Duration {
        self.lock().policy().trial_timeout()
    }

    /// Reads the whole book in one consistent view (planning, explain). Keep `f` short: every
    /// attempt's outcome waits for it.
    pub(crate) fn read<R>(&self, f: impl FnOnce(&HealthBook) -> R) -> R {
        f(&self.lock())
    }

    /// Changes the book in a step that needs other state with it (admitting an attempt together
    /// with the retry budget and the spend meter).
    pub(crate) fn update<R>(&self, f: impl FnOnce(&mut HealthBook) -> R) -> R {
        f(&mut self.lock())
    }

    /// Claims an early trial (see `HealthBook::claim_early_trial`) for the first of `options`
    /// that may have one, in the order of their rank (`R`), then of the oldest early trial, all
    /// in one step. Returns the key claimed.
    pub(crate) fn claim_early_trial<R: Ord>(
        &self,
        mut options: Vec<(R, HealthKey)>,
        now: Instant,
    ) -> Option<HealthKey> {
        let mut book = self.lock();
        options.sort_by(|(rank_a, a), (rank_b, b)| {
            rank_a.cmp(rank_b).then_with(|| book.early_trial_at(a).cmp(&book.early_trial_at(b)))
        });
        options.into_iter().map(|(_, key)| key).find(|key| book.claim_early_trial(key, now))
    }

    /// An attempt's outcome.
    pub(crate) fn record(
        &self,
        key: &HealthKey,
        outcome: &AttemptOutcome,
        elapsed: Duration,
        now: Instant,
    ) {
        self.changing(key, |book| book.record(key, outcome, elapsed, now));
    }

    /// A delivery receipt's final state.
    pub(crate) fn record_receipt(&self, key: &HealthKey, delivery: Delivery, now: Instant) {
        self.changing(key, |book| book.record_receipt(key, delivery, now));
    }

    /// A message whose final receipt did not come within the grace.
    pub(crate) fn record_receipt_missing(&self, key: &HealthKey, now: Instant) {
        self.lock().record_receipt_missing(key, now);
    }

    /// How long after acceptance a message without a final receipt counts as missing.
    pub(crate) fn receipt_grace(&self) -> Duration {
        self.lock().policy().receipt_grace()
    }

    /// Every key with delivery evidence (receipts, missing receipts or conversions) at `now`,
    /// in key order, for the admin API and the gauges.
    pub(crate) fn routes(&self, now: Instant) -> Vec<RouteEvidence> {
        // The operator's switch is per provider and shown there, not per route.
        let switches = OperatorSwitches::new();
        self.lock()
            .snapshot(&switches, now)
            .into_iter()
            .filter_map(|row| {
                let evidence = row.estimate.delivery;
                let has_evidence = evidence.receipts.count() > 0.0
                    || evidence.receipts_missing > 0.0
                    || evidence.conversions.count() > 0.0;
                has_evidence.then_some(RouteEvidence {
                    key: row.key,
                    status: row.status,
                    ejection_cause: row.ejection_cause,
                    evidence,
                })
            })
            .collect()
    }

    /// What Okta said (or did not say) about a code sent on `key`: entered, superseded by a
    /// resend, or never entered.
    pub(crate) fn record_conversion(&self, key: &HealthKey, conversion: Conversion, now: Instant) {
        self.changing(key, |book| book.record_conversion(key, conversion, now));
    }

    /// The conversion evidence on `key` at `now`: (entered, not entered), decayed.
    #[cfg(test)]
    pub(crate) fn conversions(&self, key: &HealthKey, now: Instant) -> (f64, f64) {
        let evidence = self.lock().evidence(key, now).conversions;
        (evidence.good, evidence.bad)
    }

    /// Attempts dropped unfinished (a hedge or race lost, time ran out): they say nothing
    /// about their providers.
    pub(crate) fn abandon<'k>(&self, keys: impl IntoIterator<Item = &'k HealthKey>, now: Instant) {
        let mut book = self.lock();
        for key in keys {
            book.abandon(key, now);
        }
    }

    /// Each provider's status at `now`, sorted by id.
    pub(crate) fn providers<'p>(
        &self,
        ids: impl IntoIterator<Item = &'p ProviderId>,
        now: Instant,
    ) -> Vec<ProviderHealth> {
        let book = self.lock();
        let mut rows: Vec<ProviderHealth> = ids
            .into_iter()
            .map(|id| ProviderHealth { id: id.clone(), status: book.provider_status(id, now) })
            .collect();
        rows.sort_by(|a, b| a.id.cmp(&b.id));
        rows
    }

    /// A reload: the new policy, keeping what is known of the providers still configured.
    pub(crate) fn carry_over<'p>(
        &self,
        policy: HealthPolicy,
        providers: impl IntoIterator<Item = &'p ProviderId>,
    ) {
        let mut book = self.lock();
        *book = book.carry_over(policy, providers);
    }

    /// A panic while holding the lock cannot leave the book half updated in a way that matters
    /// more than losing it, so poisoning is ignored.
    fn lock(&self) -> MutexGuard<'_, HealthBook> {
        self.book.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The link's maps are caches of what the fleet said: poisoning loses nothing that matters.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use switchboard_core::health::HealthConfig;
    use switchboard_core::{Certainty, Channel, Country, ErrorClass, Failure};

    use super::*;

    fn store() -> HealthStore {
        let mut config = HealthConfig::defaults();
        config.consecutive_failures = 1;
        HealthStore::new(HealthPolicy::try_new(&config).unwrap())
    }

    fn key() -> HealthKey {
        let provider = ProviderId::parse("twilio").unwrap();
        HealthKey::new(provider, Country::parse("US").unwrap(), Channel::Sms)
    }

    fn fault() -> AttemptOutcome {
        let failure = Failure {
            class: ErrorClass::Transient,
            certainty: Certainty::NotSent,
            retry_after: None,
        };
        AttemptOutcome::Failed(failure)
    }

    #[test]
    fn unshared_the_store_asks_nobody() {
        let (store, now) = (store(), Instant::now());
        store.record(&key(), &fault(), Duration::from_millis(5), now);
        let probation = now + Duration::from_secs(31);
        assert!(store.may_run_trial(&key(), false, probation), "memory mode: the trial goes");
    }

    #[test]
    fn shared_the_store_sends_out_its_ejections_and_waits_for_the_trial_lease() {
        let (store, now) = (store(), Instant::now());
        let mut changes = store.share().unwrap();
        store.record(&key(), &fault(), Duration::from_millis(5), now);
        let Ok(HealthChange::Ejected { key: ejected, notice }) = changes.try_recv() else {
            panic!("the ejection goes out")
        };
        assert_eq!((ejected, notice.cause), (key(), EjectionCause::ConsecutiveFailures));
        // Ejected, not a trial: nothing to ask.
        assert!(store.may_run_trial(&key(), false, now));
        let probation = notice.until;
        assert!(!store.may_run_trial(&key(), false, probation), "skipped while it asks");
        assert_eq!(changes.try_recv(), Ok(HealthChange::TrialWanted { key: key() }));
        assert!(!store.may_run_trial(&key(), false, probation), "asked once");
        assert!(changes.try_recv().is_err());
        assert!(store.may_run_trial(&key(), true, probation), "fail-open is never held back");
        store.grant_trial(&key(), probation + Duration::from_secs(5));
        assert!(store.may_run_trial(&key(), false, probation), "the lease is this replica's");
        // The trial fails: out again, and that goes out too.
        store.record(&key(), &fault(), Duration::from_millis(5), probation);
        let Ok(HealthChange::Ejected { notice: again, .. }) = changes.try_recv() else {
            panic!("the re-ejection goes out")
        };
        assert_eq!((again.cause, again.times), (EjectionCause::TrialFailed, 2));
    }

    #[test]
    fn a_trial_held_elsewhere_keeps_the_key_out_here() {
        let (store, now) = (store(), Instant::now());
        let _changes = store.share().unwrap();
        let until = now + Duration::from_secs(1);
        let notice = EjectionNotice { until, cause: EjectionCause::Undelivered, times: 1 };
        assert!(store.apply_ejection(&key(), notice));
        assert!(!store.apply_ejection(&key(), notice), "the same end changes nothing");
        store.hold_trial(&key(), until + Duration::from_secs(5));
        let status = store.read(|book| book.status(&key(), until));
        assert_eq!(status, HealthStatus::Probation { trial_in_flight: true });
        assert!(store.apply_recovery(&key(), until));
        assert_eq!(store.read(|book| book.status(&key(), until)), HealthStatus::Healthy);
    }
}
