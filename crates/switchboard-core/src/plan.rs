//! Planning: the ranked list of candidates for one delivery, why each sits where it does, and
//! why the others were left out.
//!
//! Selection and use are separate steps (pingora's `selection/mod.rs`): [`plan`] only decides
//! which providers may be tried and in what order, and hands dispatch the rule's strategy
//! (cascade, hedge with its delay, race with its width); dispatch decides how to spend the
//! deadline on them and calls [`crate::attempt::begin_attempt`] right before each send.
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
//! onto the provider it avoids.
//!
//! # Why fail open?
//!
//! Health is a guess from recent failures; a user waiting for a code needs a send. If health has
//! excluded every enabled provider that can carry the channel, the plan still offers the one
//! whose exclusion ends soonest, marked [`Candidate::is_fail_open`]. An empty plan would turn a
//! partial or already-healed outage into a certain one: LiteLLM's health-check routing returns
//! every deployment when all are filtered out, LiteLLM users report 503s when every deployment
//! sits in cooldown (BerriAI/litellm#3646), and Envoy ejects at most `max_ejection_percent` of
//! hosts. We never fail open to a provider the operator disabled or drained, or to one that cannot
//! carry the channel: those exclusions are intent and fact, not guesses.
//!
//! Every provider of the matched rule ends up exactly once in either `candidates` or `excluded`.

use std::time::{Duration, Instant};

use rand_core::RngCore;

use crate::domain::ProviderId;
use crate::health::{HealthBook, HealthKey, HealthStatus, KeyEstimate};
pub use crate::query::{MAX_NUMBER_DIGITS, NumberDigits, RouteQuery};
use crate::route::{HedgeDelay, Optimize, RouteRule, RouteTable, RuleId, StrategyPolicy};
use crate::switch::{OperatorState, OperatorSwitches};

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

/// Why a provider of the matched rule is not a candidate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExclusionReason {
    /// The provider cannot carry the requested channel.
    ChannelUnsupported,
    /// The operator disabled it.
    Disabled,
    /// The operator is draining it.
    Draining,
    /// Ejected after failures (consecutive, percentage or undelivered).
    Ejected {
        /// When probation starts.
        until: Instant,
    },
    /// The provider asked us to wait.
    RateLimited {
        /// When it may be used again.
        until: Instant,
    },
    /// On probation, and its one trial is already running.
    TrialInFlight,
}

impl ExclusionReason {
    /// Lower-case label for explain output and metrics.
    #[must_use]
    pub fn as_str(&self) -> &'static str {
        match self {
            ExclusionReason::ChannelUnsupported => "channel_unsupported",
            ExclusionReason::Disabled => "disabled",
            ExclusionReason::Draining => "draining",
            ExclusionReason::Ejected { .. } => "ejected",
            ExclusionReason::RateLimited { .. } => "rate_limited",
            ExclusionReason::TrialInFlight => "trial_in_flight",
        }
    }

    /// Whether the exclusion comes from observed health, and so may be overridden to fail open.
    #[must_use]
    pub fn is_health(&self) -> bool {
        matches!(
            self,
            ExclusionReason::Ejected { .. }
                | ExclusionReason::RateLimited { .. }
                | ExclusionReason::TrialInFlight
        )
    }
}

/// A provider left out of the plan, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exclusion {
    /// Which provider.
    pub provider: ProviderId,
    /// Why.
    pub reason: ExclusionReason,
}

/// How dispatch should use the candidates, with its parameters resolved for this plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// One candidate at a time; the next only after a failure that allows failover.
    Cascade,
    /// Start the next candidate when the current one has not answered after `delay`; keep the
    /// first acceptance.
    Hedge {
        /// How long to wait for the current candidate before starting the next.
        delay: Duration,
        /// Whether `delay` was learned from the first candidate's latency (else configured).
        is_learned: bool,
    },
    /// Send to the first `width` candidates at once (at most the number of candidates).
    Race {
        /// How many to send to.
        width: usize,
    },
}

impl Strategy {
    /// Lower-case label for explain output and logs.
    #[must_use]
    pub fn as_str(&self) -> &'static str {
        match self {
            Strategy::Cascade => "cascade",
            Strategy::Hedge { .. } => "hedge",
            Strategy::Race { .. } => "race",
        }
    }
}

/// The providers to try for one delivery, best first, and the ones left out.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// The rule that matched; `None` when no rule covers the query (nothing to try).
    pub rule: Option<RuleId>,
    /// What the ranking favoured.
    pub optimize: Optimize,
    /// How dispatch should use the candidates.
    pub strategy: Strategy,
    /// Providers to try, best first; never a repeat, never a disabled or drained one.
    pub candidates: Vec<Candidate>,
    /// The rule's other providers, in configured order.
    pub excluded: Vec<Exclusion>,
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

/// Plans one delivery: the matched rule's providers, filtered by channel, operator switch and
/// health at `now`, ranked, failing open when health alone would leave nothing. Draws from `rng`
/// only to explore, so the same book, switches, query, `now` and RNG state give the same plan.
#[must_use]
pub fn plan(
    table: &RouteTable,
    health: &HealthBook,
    switches: &OperatorSwitches,
    query: &RouteQuery,
    now: Instant,
    rng: &mut impl RngCore,
) -> Plan {
    let Some(found) = table.find(query) else {
        return Plan {
            rule: None,
            optimize: Optimize::Priority,
            strategy: Strategy::Cascade,
            candidates: Vec::new(),
            excluded: Vec::new(),
        };
    };
    let rule = found.rule;
    // (configured position, key, is_trial, is_fail_open)
    let mut admitted: Vec<(usize, HealthKey, bool, bool)> = Vec::new();
    let mut excluded = Vec::new();
    for (position, provider) in rule.providers().iter().enumerate() {
        let key = HealthKey::new(provider.clone(), query.country, query.channel);
        match judge(table, health, switches, &key, now) {
            Ok(is_trial) => admitted.push((position, key, is_trial, false)),
            Err(reason) => excluded.push(Exclusion { provider: provider.clone(), reason }),
        }
    }
    if admitted.is_empty()
        && let Some(index) = soonest_health_exclusion(health, query, &excluded, now)
    {
        let exclusion = excluded.remove(index);
        let position = rule
            .providers()
            .iter()
            .position(|provider| *provider == exclusion.provider)
            .unwrap_or(0);
        let key = HealthKey::new(exclusion.provider, query.country, query.channel);
        admitted.push((position, key, false, true));
    }
    let mut candidates = score(table, health, rule, query, admitted, now);
    if rule.optimize().is_scored() {
        // Stable: equal scores keep the configured order.
        candidates.sort_by(|(_, a), (_, b)| b.score.total.total_cmp(&a.score.total));
    }
    let mut candidates: Vec<Candidate> =
        candidates.into_iter().map(|(_, candidate)| candidate).collect();
    if let Some(avoid) = &query.avoid
        && candidates.len() > 1
        && let Some(index) = candidates.iter().position(|candidate| candidate.provider() == avoid)
    {
        let mut avoided = candidates.remove(index);
        avoided.score.notes.push(RankNote::Avoided);
        candidates.push(avoided);
    }
    explore(rule, query, health, now, &mut candidates, rng);
    let strategy = resolve_strategy(rule.strategy(), health, &candidates, now);
    Plan {
        rule: Some(rule.id().clone()),
        optimize: rule.optimize(),
        strategy,
        candidates,
        excluded,
    }
}

/// Scores the admitted candidates, in configured order.
fn score(
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
fn explore(
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

fn resolve_strategy(
    policy: StrategyPolicy,
    health: &HealthBook,
    candidates: &[Candidate],
    now: Instant,
) -> Strategy {
    match policy {
        StrategyPolicy::Cascade => Strategy::Cascade,
        StrategyPolicy::Race { width } => {
            Strategy::Race { width: (width as usize).min(candidates.len()).max(1) }
        }
        StrategyPolicy::Hedge(HedgeDelay::Fixed(delay)) => {
            Strategy::Hedge { delay, is_learned: false }
        }
        StrategyPolicy::Hedge(HedgeDelay::Learned { quantile, floor, ceiling }) => {
            let learned = candidates.first().map_or(ceiling, |first| {
                health
                    .latency_quantile(&first.key, quantile, now)
                    .unwrap_or(first.score.estimate.latency)
            });
            Strategy::Hedge { delay: learned.clamp(floor, ceiling), is_learned: true }
        }
    }
}

/// `Ok(is_trial)` for a candidate, or why it is excluded. Operator intent and channel support are
/// checked before health, so a provider that is both disabled and ejected is reported disabled
/// (and can never be picked to fail open).
fn judge(
    table: &RouteTable,
    health: &HealthBook,
    switches: &OperatorSwitches,
    key: &HealthKey,
    now: Instant,
) -> Result<bool, ExclusionReason> {
    if !table.catalog().supports(key.provider(), key.channel()) {
        return Err(ExclusionReason::ChannelUnsupported);
    }
    match switches.state(key.provider()) {
        OperatorState::Enabled => {}
        OperatorState::Draining => return Err(ExclusionReason::Draining),
        OperatorState::Disabled => return Err(ExclusionReason::Disabled),
    }
    match health_exclusion(health, key, now) {
        Some(reason) => Err(reason),
        None => Ok(matches!(health.status(key, now), HealthStatus::Probation { .. })),
    }
}

/// Why health would leave `key` out of a plan at `now`, if it would (ejected, resting after a
/// rate limit, or holding its probation trial): what a caller that sets a fail-open candidate
/// aside reports instead.
#[must_use]
pub fn health_exclusion(
    health: &HealthBook,
    key: &HealthKey,
    now: Instant,
) -> Option<ExclusionReason> {
    match health.status(key, now) {
        HealthStatus::Healthy | HealthStatus::Probation { trial_in_flight: false } => None,
        HealthStatus::Probation { trial_in_flight: true } => Some(ExclusionReason::TrialInFlight),
        HealthStatus::Ejected { until, .. } => Some(ExclusionReason::Ejected { until }),
        HealthStatus::RateLimited { until } => Some(ExclusionReason::RateLimited { until }),
    }
}

/// Position in `excluded` of the health exclusion that ends soonest; the earliest configured
/// wins a tie. A running trial ends at the latest when its lease does.
fn soonest_health_exclusion(
    health: &HealthBook,
    query: &RouteQuery,
    excluded: &[Exclusion],
    now: Instant,
) -> Option<usize> {
    excluded
        .iter()
        .enumerate()
        .filter_map(|(position, exclusion)| {
            let ends = match exclusion.reason {
                ExclusionReason::Ejected { until } | ExclusionReason::RateLimited { until } => {
                    until
                }
                ExclusionReason::TrialInFlight => {
                    let key =
                        HealthKey::new(exclusion.provider.clone(), query.country, query.channel);
                    health.trial_lease(&key, now).unwrap_or(now)
                }
                ExclusionReason::ChannelUnsupported
                | ExclusionReason::Disabled
                | ExclusionReason::Draining => {
                    return None;
                }
            };
            Some((ends, position))
        })
        .min()
        .map(|(_, position)| position)
}

#[cfg(test)]
mod tests;
