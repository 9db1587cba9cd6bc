//! Scoring the candidates a plan may use, each one's [`Score`] with the weighted terms and the
//! inputs behind them, and exploration. [`super::plan`] sorts by score and demotes a resend's
//! previous provider; the rules for both are described here, with the score.
//!
//! # Ranking
//!
//! With `optimize = "priority"` candidates keep the rule's configured order: static priority
//! with health-based exclusion and failover, what every rule meant before ranking existed, and the
//! baseline the simulator compares against. Otherwise each candidate gets a score, the sum of
//! weighted log terms (so each term reads as "how many times better than the best candidate"):
//!
//! ```text
//! score = a_h·ln(success · delivery_rate) − a_l·ln(latency / best_latency)
//!       − a_c·ln(price / cheapest_price) + ln(weight)
//! ```
//!
//! where `success` is the pessimistic success rate of [`KeyEstimate::success_lower`] (the
//! lower of the window's Wilson bound and the recent rate; see `health/estimators.rs`).
//!
//! `optimize` picks the emphasis `(a_h, a_l, a_c)`: reliability (8, 0.5, 0.25), latency
//! (4, 2, 0.25), cost (2, 0.1, 1). With cost emphasis and `a_h` over `a_c`, a provider must be
//! clearly cheaper to outweigh a worse success or delivery rate (the research's "expected cost per
//! delivered OTP", with failures also costing the user time), and latency only breaks near-ties:
//! a three times faster provider is worth about 11 % in price. An unpriced candidate counts as
//! the dearest priced one, never as free. Ties keep the configured order.
//!
//! A candidate whose delivery evidence makes it a route problem (receipts or conversions
//! clearly worse than its peers', `health/delivery.rs`) goes after every other, in every mode,
//! `priority` included, marked [`RankNote::RouteProblem`].
//!
//! Conversions act only through that verdict, not through the score: their evidence is biased
//! by who asks again. A resend goes to another provider (see below) and comes from a user who is
//! there to enter it, so a backup that mostly carries resends converts better than the primary
//! that carries everyone's first code, abandoned sign-ins included. Scored, that small edge
//! would pull first codes onto the dearer backup until its own share fell (the simulator showed
//! the cheapest provider's traffic halved with no fault at all); judged against a margin, it
//! is noise, and a route that loses most codes still stands out.
//!
//! A resend (the caller says which provider carried the previous attempt, [`RouteQuery::avoid`])
//! moves that provider to the end, without excluding it: a different provider is the best bet
//! when the user never got the code, but the old one is still better than nothing.
//!
//! # Exploration
//!
//! A provider that ranks second never gets the samples that would show it recovered or improved
//! (and a new one starts from priors). So with probability `exploration` (default 2 %) a scored
//! plan moves one other candidate, chosen uniformly, to the front, marked
//! [`Candidate::is_exploration`]. Exploring spends a real user's send on a worse bet, and on a
//! provider that is slow rather than down that send can time out, fail over and then arrive as a
//! second code. So exploration is optimistic but not blind:
//!
//! - only a candidate whose *optimistic* score ([`Score::optimistic`]: the success rate's upper
//!   bound, and its latency treated as the best if no sample is left in the window) reaches the
//!   leader's score is explored. A provider that just failed a third of its sends is left alone
//!   until that evidence fades, instead of being re-tested every few seconds;
//! - each provider is explored at most once per window bucket (10 s by default,
//!   [`HealthBook::may_explore`]), so exploring costs a bounded number of sends however high
//!   the traffic;
//! - a probation trial is always eligible: the trial is how an ejected provider comes back, and
//!   it ranks low on the provider's pooled failures. With `exploration = 0` a trial runs only
//!   when a failover reaches it.
//!
//! The draw comes from the caller's RNG so a plan is reproducible, and a resend never explores
//! onto the provider it avoids, nor any plan onto a route problem (its evidence has to fade
//! first: exploring it would send a real user's code into a route known to lose it).
//!

use std::time::Instant;

use rand_core::RngCore;

use crate::domain::ProviderId;
use crate::health::{HealthBook, HealthKey, KeyEstimate};
use crate::query::RouteQuery;
use crate::route::{Optimize, RouteRule, RouteTable};

/// A note on why a candidate scored or sits where it does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RankNote {
    /// No latency sample yet: the pessimistic prior stands in.
    LatencyPrior,
    /// No price configured: counted as the dearest priced candidate.
    Unpriced,
    /// The previous attempt to this number went here: moved to the end.
    Avoided,
    /// Moved to the front by exploration.
    Explored,
    /// Its receipts or conversions are clearly worse than its peers': moved after every
    /// provider that delivers.
    RouteProblem,
}

impl RankNote {
    /// Lower-case label for explain output and logs.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            RankNote::LatencyPrior => "latency_prior",
            RankNote::Unpriced => "unpriced",
            RankNote::Avoided => "avoided",
            RankNote::Explored => "explored",
            RankNote::RouteProblem => "route_problem",
        }
    }
}

/// How a candidate scored: the inputs and each weighted term.
#[derive(Clone, Debug, PartialEq)]
pub struct Score {
    /// The sum of the terms; higher is better. Comparable within one plan only.
    pub total: f64,
    /// What the candidate might score with more samples: the success rate's upper bound, and
    /// the best latency if its own has no sample left in the window. Exploration only picks a
    /// candidate whose optimistic score reaches the leader's score.
    pub optimistic: f64,
    /// `a_h·ln(success_lower · delivery_rate)`.
    pub health_term: f64,
    /// `−a_l·ln(latency / best latency among the candidates)`.
    pub latency_term: f64,
    /// `−a_c·ln(price / cheapest price among the candidates)`.
    pub price_term: f64,
    /// `ln(weight)`.
    pub weight_term: f64,
    /// The key's health estimates at planning time.
    pub estimate: KeyEstimate,
    /// The price of this message through this provider, when configured.
    pub price: Option<f64>,
    /// Notes, in the order they applied.
    pub notes: Vec<RankNote>,
}

/// A provider dispatch may try.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    /// The provider, and the (country, channel) its health is kept for.
    pub key: HealthKey,
    /// On probation: this attempt, if it runs, is the single trial that decides its health.
    pub is_trial: bool,
    /// Excluded by health but offered anyway because nothing else is left.
    pub is_fail_open: bool,
    /// Moved to the front by exploration rather than by score.
    pub is_exploration: bool,
    /// How it scored.
    pub score: Score,
}

impl Candidate {
    /// Which provider.
    #[must_use]
    pub fn provider(&self) -> &ProviderId {
        self.key.provider()
    }
}

/// `(a_h, a_l, a_c)` for each emphasis; `priority` scores like `reliability` for explain output.
fn emphasis(optimize: Optimize) -> (f64, f64, f64) {
    match optimize {
        Optimize::Priority | Optimize::Reliability => (8.0, 0.5, 0.25),
        Optimize::Latency => (4.0, 2.0, 0.25),
        Optimize::Cost => (2.0, 0.1, 1.0),
    }
}

/// Keeps `ln` finite for a zero rate or a free provider.
const EPSILON: f64 = 1e-9;

/// Scores the admitted candidates, in configured order.
pub(super) fn score(
    table: &RouteTable,
    health: &HealthBook,
    rule: &RouteRule,
    query: &RouteQuery,
    admitted: Vec<(usize, HealthKey, bool, bool)>,
    now: Instant,
) -> Vec<(usize, Candidate)> {
    let (a_health, a_latency, a_price) = emphasis(rule.optimize());
    let inputs: Vec<(KeyEstimate, Option<f64>)> = admitted
        .iter()
        .map(|(_, key, _, _)| {
            let price = table.prices().message_price(
                key.provider(),
                query.country,
                query.channel,
                query.segments,
            );
            (health.estimate(key, now), price)
        })
        .collect();
    let best_latency = inputs
        .iter()
        .map(|(estimate, _)| estimate.latency.as_secs_f64())
        .fold(f64::INFINITY, f64::min);
    let priced = inputs.iter().filter_map(|(_, price)| *price);
    let cheapest = priced.clone().fold(f64::INFINITY, f64::min);
    let dearest = priced.fold(f64::NEG_INFINITY, f64::max);
    admitted
        .into_iter()
        .zip(inputs)
        .map(|((position, key, is_trial, is_fail_open), (estimate, price))| {
            let mut notes = Vec::new();
            if estimate.is_latency_prior {
                notes.push(RankNote::LatencyPrior);
            }
            // Conversions act through the route-problem verdict only (see the module docs).
            let reliability = (estimate.success_lower * estimate.delivery_rate).max(EPSILON);
            let health_term = a_health * reliability.ln();
            let latency = estimate.latency.as_secs_f64().max(EPSILON);
            let latency_term = -a_latency * (latency / best_latency.max(EPSILON)).ln();
            let hopeful = (estimate.success_upper * estimate.delivery_rate).max(EPSILON);
            // A latency estimate with no sample left in the window is stale: it may have healed.
            let hopeful_latency = if estimate.latency_samples == 0 { 0.0 } else { latency_term };
            let price_term = if cheapest.is_finite() {
                let counted = price.unwrap_or_else(|| {
                    notes.push(RankNote::Unpriced);
                    dearest
                });
                -a_price * ((counted + EPSILON) / (cheapest + EPSILON)).ln()
            } else {
                0.0
            };
            let weight_term = rule.weight(position).ln();
            let total = health_term + latency_term + price_term + weight_term;
            let optimistic = a_health * hopeful.ln() + hopeful_latency + price_term + weight_term;
            let score = Score {
                total,
                optimistic,
                health_term,
                latency_term,
                price_term,
                weight_term,
                estimate,
                price,
                notes,
            };
            (position, Candidate { key, is_trial, is_fail_open, is_exploration: false, score })
        })
        .collect()
}

/// With the rule's probability, moves one other candidate (never the avoided provider) to the
/// front.
pub(super) fn explore(
    rule: &RouteRule,
    query: &RouteQuery,
    health: &HealthBook,
    now: Instant,
    candidates: &mut Vec<Candidate>,
    rng: &mut impl RngCore,
) {
    if !rule.optimize().is_scored() || rule.exploration() <= 0.0 || candidates.len() < 2 {
        return;
    }
    if unit_interval(rng) >= rule.exploration() {
        return;
    }
    let leader = candidates[0].score.total;
    let choices: Vec<usize> = (1..candidates.len())
        .filter(|index| query.avoid.as_ref() != Some(candidates[*index].provider()))
        // A route problem comes back as its evidence fades, not by exploration.
        .filter(|index| !candidates[*index].score.estimate.delivery.is_route_problem())
        .filter(|index| {
            let candidate = &candidates[*index];
            candidate.is_trial || candidate.score.optimistic >= leader
        })
        .filter(|index| health.may_explore(candidates[*index].provider(), now))
        .collect();
    if choices.is_empty() {
        return;
    }
    let index = choices[(rng.next_u64() % choices.len() as u64) as usize];
    let mut explored = candidates.remove(index);
    explored.is_exploration = true;
    explored.score.notes.push(RankNote::Explored);
    candidates.insert(0, explored);
}

/// A uniform draw in [0, 1) from the top 53 bits.
fn unit_interval(rng: &mut impl RngCore) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}
