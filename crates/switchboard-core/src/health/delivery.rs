//! Delivery evidence: whether a key's accepted messages reach phones, from delivery receipts
//! and from conversions (the user entered the code in Okta), judged against the key's peers.
//!
//! # A verdict on the number, or on the route?
//!
//! A single "filtered", "blocked" or "unknown subscriber" receipt is a verdict on that number:
//! dispatch does not fail over on it, and another provider would not do better. But the same
//! answer for many numbers of one country through one provider, while other providers deliver to
//! that country, is a verdict on the provider's route there: its sender registration, its carrier
//! connection, its content filter (Twilio's 30007 "message filtered", 30034 "unregistered A2P
//! sender"). So every final receipt counts here, of every class, per (provider, country, channel).
//!
//! # Peers, then a floor
//!
//! A country's numbers fail for reasons no provider controls (typos, ported numbers, users who
//! abandon a sign-in), so a key is compared with its **peers**: the other providers' keys for the
//! same country and channel. The bar is the best peer's share (the lower bound of its Wilson
//! interval, so a handful of lucky receipts is not a standard), less a margin
//! (`receipt_peer_margin_percent`, `conversion_peer_margin_percent`). A key with no peer that has
//! evidence of its own is held to an absolute floor instead (`receipt_min_delivery_percent`;
//! `conversion_min_percent`, off by default, since abandonment is not the provider's doing).
//!
//! A key is a **route problem** when the upper bound of its own share is below the bar: clearly
//! worse, not just unlucky. Its share is read twice: over its decayed tally (a route poor for a
//! long time) and over its latest evidence, about the minimum count's worth however old (a
//! route that turns poor after hours of good history, which a ten-minute half-life would take
//! hundreds of bad receipts to outweigh). With half the minimum count of evidence that demotes it: it ranks
//! after every provider that delivers, whatever the rule's `optimize` (an operator's order is a
//! preference among providers that deliver). With the minimum count it is ejected
//! ([`super::EjectionCause::Undelivered`], [`super::EjectionCause::Unconverted`]). Evidence is not
//! cleared by ejection or recovery, only faded by its half-life: the probation trial's acceptance
//! says nothing about delivery, and the next poor receipt ejects the key again at once.
//!
//! # Receipts that stop
//!
//! Some providers stop sending receipts while delivering fine (a webhook misconfigured, a
//! regional outage of their callback system). A message with no final receipt `receipt_grace_ms`
//! after acceptance is counted as *unknown*: it neither helps nor hurts the key, but when fewer
//! than `receipt_min_coverage_percent` of a key's messages get a receipt the key is flagged
//! ([`DeliveryEvidence::receipts_stopped`]) for the operator, rather than keeping a perfect
//! record it no longer earns. Conversions are what still show whether its messages arrive.

use super::estimators::wilson_interval;

/// What one kind of evidence says about a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Too little evidence, or nothing to compare it with.
    Unknown,
    /// No worse than the bar.
    Fine,
    /// Clearly worse than the bar: a route problem.
    Poor,
}

impl Verdict {
    /// Lower-case label for explain output and metrics.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Unknown => "unknown",
            Verdict::Fine => "fine",
            Verdict::Poor => "poor",
        }
    }
}

/// One kind of evidence about a key at one instant: receipts (delivered or not) or conversions
/// (entered or not), as decayed counts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Evidence {
    /// Delivered receipts, or codes entered.
    pub good: f64,
    /// Undelivered receipts of every class, or codes not entered (superseded by a resend, or
    /// never entered within the code's life).
    pub bad: f64,
    /// The good share of the latest evidence (about the minimum count's worth, however old).
    pub recent_share: Option<f64>,
    /// What ranking reads: the key's share with the minimum count's worth of observations at
    /// the share of every provider's evidence for the country and channel as its prior. A key
    /// with little evidence ranks like the country's average, not like a perfect one: what every
    /// provider loses there (typos, abandoned sign-ins) does not make the busiest provider look
    /// worse than an idle one.
    pub rate: f64,
    /// The share the bar was set by: the best peer's lower bound, when a peer has evidence.
    pub peer_share: Option<f64>,
    /// The share below which (by the upper bound of the key's own) the key is a route problem.
    pub bar: Option<f64>,
    /// What the evidence says.
    pub verdict: Verdict,
    /// Whether the poor verdict has enough evidence to eject (the minimum count, not half).
    pub is_sustained: bool,
}

impl Evidence {
    /// Nothing known.
    pub(super) const NONE: Evidence = Evidence {
        good: 0.0,
        bad: 0.0,
        recent_share: None,
        rate: 1.0,
        peer_share: None,
        bar: None,
        verdict: Verdict::Unknown,
        is_sustained: false,
    };

    /// All the evidence, good and bad.
    #[must_use]
    pub fn count(&self) -> f64 {
        self.good + self.bad
    }

    /// The good share, when there is any evidence.
    #[must_use]
    pub fn share(&self) -> Option<f64> {
        let count = self.count();
        (count > 0.0).then(|| self.good / count)
    }

    /// Whether the key should be ejected on this evidence.
    #[must_use]
    pub fn ejects(&self) -> bool {
        self.verdict == Verdict::Poor && self.is_sustained
    }
}

/// Everything known about whether a key's messages reach phones.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DeliveryEvidence {
    /// Final delivery receipts.
    pub receipts: Evidence,
    /// Messages with no final receipt after the grace period (decayed like receipts).
    pub receipts_missing: f64,
    /// Share of the messages past their grace that got a final receipt, when any did or should
    /// have.
    pub receipt_coverage: Option<f64>,
    /// Too few of the key's messages get a receipt: flagged, never ejected.
    pub receipts_stopped: bool,
    /// Conversions: codes entered in Okta, or not.
    pub conversions: Evidence,
}

impl DeliveryEvidence {
    /// Nothing known.
    pub(super) const NONE: DeliveryEvidence = DeliveryEvidence {
        receipts: Evidence::NONE,
        receipts_missing: 0.0,
        receipt_coverage: None,
        receipts_stopped: false,
        conversions: Evidence::NONE,
    };

    /// Whether either signal says the key's route is a problem: it ranks after every provider
    /// that delivers.
    #[must_use]
    pub fn is_route_problem(&self) -> bool {
        self.receipts.verdict == Verdict::Poor || self.conversions.verdict == Verdict::Poor
    }
}

/// How one kind of evidence is judged.
#[derive(Clone, Copy, Debug)]
pub(super) struct Judging {
    /// Evidence needed to eject; half of it demotes.
    pub(super) min_count: f64,
    /// The bar without a peer, as a share (0: no floor).
    pub(super) floor: f64,
    /// How far below the best peer the bar sits, as a share of the peer's share.
    pub(super) margin: f64,
}

/// Judges a key against its peers (every other provider's key for the same country and
/// channel): its decayed tally `own` and its `recent` evidence (the latest `min_count` or so,
/// however old), each as `(good, bad)`. Either being clearly below the bar makes a route
/// problem: the tally shows a route that is poor for a long time, the recent evidence one that
/// turned poor after a long good history (which the tally would take a half-life to forget).
pub(super) fn judge(
    own: (f64, f64),
    recent: (f64, f64),
    peers: impl IntoIterator<Item = (f64, f64), IntoIter: Clone>,
    judging: Judging,
) -> Evidence {
    let demotes_at = judging.min_count / 2.0;
    // Read twice (the country's share, the best peer), without collecting on the planning path.
    let peers = peers.into_iter();
    let (pooled_good, pooled_count) = peers
        .clone()
        .chain([own])
        .fold((0.0, 0.0), |(good, count), (g, b)| (good + g, count + g + b));
    let prior = if pooled_count > 0.0 { pooled_good / pooled_count } else { 1.0 };
    let rate = (own.0 + judging.min_count * prior) / (own.0 + own.1 + judging.min_count);
    let peer_share = peers
        .filter(|(good, bad)| good + bad >= demotes_at)
        .map(|(good, bad)| wilson_interval(good / (good + bad), good + bad).0)
        .fold(None, |best: Option<f64>, share| Some(best.map_or(share, |b| b.max(share))));
    let bar = match peer_share {
        Some(share) => Some(share * (1.0 - judging.margin)),
        None => (judging.floor > 0.0).then_some(judging.floor),
    };
    // (verdict, whether it has the minimum count) of one sample against the bar.
    let verdict_of = |(good, bad): (f64, f64)| {
        let count = good + bad;
        // Decayed counts never land on a whole number: within one percent is enough.
        let has = |needed: f64| count >= needed * 0.99;
        match bar {
            Some(bar) if has(demotes_at) && count > 0.0 => {
                let (_, upper) = wilson_interval(good / count, count);
                let verdict = if upper < bar { Verdict::Poor } else { Verdict::Fine };
                (verdict, has(judging.min_count))
            }
            _ => (Verdict::Unknown, false),
        }
    };
    let (long, long_sustained) = verdict_of(own);
    let (latest, latest_sustained) = verdict_of(recent);
    let (verdict, is_sustained) = match (long, latest) {
        (Verdict::Poor, Verdict::Poor) => (Verdict::Poor, long_sustained || latest_sustained),
        (Verdict::Poor, _) => (Verdict::Poor, long_sustained),
        (_, Verdict::Poor) => (Verdict::Poor, latest_sustained),
        (Verdict::Fine, _) | (_, Verdict::Fine) => (Verdict::Fine, false),
        _ => (Verdict::Unknown, false),
    };
    let (recent_good, recent_bad) = recent;
    let recent_count = recent_good + recent_bad;
    Evidence {
        good: own.0,
        bad: own.1,
        recent_share: (recent_count > 0.0).then(|| recent_good / recent_count),
        rate,
        peer_share,
        bar,
        verdict,
        is_sustained,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RECEIPTS: Judging = Judging { min_count: 10.0, floor: 0.5, margin: 0.25 };

    #[test]
    fn a_key_alone_is_held_to_the_floor() {
        assert_eq!(
            judge((0.0, 4.0), (0.0, 4.0), [], RECEIPTS).verdict,
            Verdict::Unknown,
            "too few"
        );
        let five = judge((0.0, 5.0), (0.0, 5.0), [], RECEIPTS);
        assert_eq!((five.verdict, five.is_sustained), (Verdict::Poor, false), "demoted at half");
        assert!(judge((1.0, 9.0), (1.0, 9.0), [], RECEIPTS).ejects());
        assert_eq!(judge((6.0, 4.0), (6.0, 4.0), [], RECEIPTS).verdict, Verdict::Fine);
        let off = Judging { floor: 0.0, ..RECEIPTS };
        assert_eq!(
            judge((0.0, 30.0), (0.0, 30.0), [], off).verdict,
            Verdict::Unknown,
            "no floor, no peer"
        );
    }

    #[test]
    fn peers_set_the_bar_so_a_bad_country_punishes_nobody() {
        // Every provider loses 60 % in this country (bad numbers): nobody is a route problem.
        let country_wide =
            judge((40.0, 60.0), (40.0, 60.0), [(38.0, 62.0), (41.0, 59.0)], RECEIPTS);
        assert_eq!(country_wide.verdict, Verdict::Fine);
        assert!(!country_wide.ejects());
        // One provider filters while its peer delivers 98 %: a route problem.
        let filtered = judge((2.0, 18.0), (2.0, 18.0), [(98.0, 2.0)], RECEIPTS);
        assert_eq!(filtered.verdict, Verdict::Poor);
        assert!(filtered.ejects());
        assert!(filtered.bar.unwrap() > 0.7 && filtered.bar.unwrap() < 0.75);
        // Slightly worse than the peer is not "clearly worse".
        assert_eq!(
            judge((90.0, 10.0), (90.0, 10.0), [(98.0, 2.0)], RECEIPTS).verdict,
            Verdict::Fine
        );
        // A peer with too little evidence sets no bar: the floor does.
        let thin = judge((2.0, 18.0), (2.0, 18.0), [(3.0, 0.0)], RECEIPTS);
        assert_eq!((thin.peer_share, thin.bar), (None, Some(0.5)));
    }

    #[test]
    fn a_route_that_turns_poor_is_seen_in_its_latest_evidence() {
        // Hours of good receipts, then the latest ten mostly undelivered.
        let turned = judge((900.0, 12.0), (1.0, 9.0), [], RECEIPTS);
        assert_eq!((turned.verdict, turned.is_sustained), (Verdict::Poor, true));
        assert_eq!(turned.recent_share, Some(0.1));
        // A long poor record is poor however good the latest few look.
        let long_poor = judge((10.0, 90.0), (4.0, 1.0), [], RECEIPTS);
        assert_eq!(long_poor.verdict, Verdict::Poor);
        assert!(judge((900.0, 12.0), (9.0, 1.0), [], RECEIPTS).verdict == Verdict::Fine);
    }

    #[test]
    fn ranking_reads_a_share_whose_prior_is_the_countrys() {
        // Every provider loses a tenth here: the busy one and the idle one rank alike.
        let busy = judge((900.0, 100.0), (9.0, 1.0), [], RECEIPTS);
        let idle = judge((0.0, 0.0), (0.0, 0.0), [(900.0, 100.0)], RECEIPTS);
        assert!((busy.rate - 0.9).abs() < 1e-9 && (idle.rate - 0.9).abs() < 1e-9);
        // With nothing known anywhere, no news is good news.
        assert_eq!(judge((0.0, 0.0), (0.0, 0.0), [], RECEIPTS).rate, 1.0);
        // A route losing most of its messages ranks below its peers.
        let bad = judge((10.0, 90.0), (1.0, 9.0), [(95.0, 5.0)], RECEIPTS);
        assert!(bad.rate < 0.2, "{}", bad.rate);
    }
}
