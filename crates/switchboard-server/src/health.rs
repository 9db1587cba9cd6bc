//! The provider health store: one [`HealthBook`] for the server, carried over by provider id
//! when the configuration is reloaded.
//!
//! Every attempt's outcome, every receipt, every conversion and every abandoned attempt goes in
//! through a method that takes `now` and values. Planning is the exception: `plan` and `explain`
//! read the whole book (every key of the matched rule's providers and their estimates) in one
//! consistent view, so they run inside [`HealthStore::read`] rather than copying the book
//! out; a shared backend would serve that view from a snapshot. A std mutex: sections are a few
//! map operations and never span an `.await`.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use switchboard_core::health::{
    DeliveryEvidence, EjectionCause, Evidence, HealthBook, HealthKey, HealthPolicy, HealthStatus,
};
use switchboard_core::switch::OperatorSwitches;
use switchboard_core::{AttemptOutcome, Conversion, Delivery, ProviderId};

/// Provider health, per (provider, country, channel).
#[derive(Debug)]
pub(crate) struct HealthStore {
    book: Mutex<HealthBook>,
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
        HealthStore { book: Mutex::new(HealthBook::new(policy)) }
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
        self.lock().record(key, outcome, elapsed, now);
    }

    /// A delivery receipt's final state.
    pub(crate) fn record_receipt(&self, key: &HealthKey, delivery: Delivery, now: Instant) {
        self.lock().record_receipt(key, delivery, now);
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
        self.lock().record_conversion(key, conversion, now);
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
