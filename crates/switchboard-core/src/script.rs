//! A tiny script language for health and planning tests, so each case is one readable line:
//!
//! ```text
//! t=0 twilio timeout; t=1 twilio 5xx; t=2 twilio 5xx; plan -> backup | twilio:ejected@12
//! ```
//!
//! Steps are separated by `;`. A step may start with `t=<seconds>` (decimals allowed); without
//! it, a step happens at the previous step's time. A *key* is `provider[@CC][/channel]`
//! (`twilio`, `twilio@GB`, `twilio@GB/voice`), by default in the US on SMS. Steps:
//!
//! - `policy failures=3 base=10 max=60 trial=5 ...` (before any event; seconds for times; these
//!   four are the defaults, shorter than production's so scripts stay short). Also `pct=` and
//!   `minreq=` (failure-percentage ejection, default 50 and 20), `window=` (default 60),
//!   `tau=` and `prior=` (latency, default 10 and 1), `halflife=`, `receipts=` and `delivery=`
//!   (receipt decay, minimum count, minimum delivered percent; default 600, 10, 50),
//!   `conversions=` (conversions needed to eject, default 20),
//!   `budget_pct=`, `budget_min=`, `budget_burst=` (default 20, 1, 20) and `spend=CC:amount`
//! - `route <countries> <channels> <providers> [key=value ...]` with comma lists
//!   (`route US,CA sms twilio,backup optimize=cost`); the first one replaces the default
//!   `route * sms,voice twilio,backup`. Keys: `optimize`, `strategy`, `hedge` (ms or `auto`),
//!   `quantile`, `hedge_min`, `hedge_max` (ms), `width`, `exploration`, `weights` (`a:2,b:0.5`),
//!   `purposes`, `prefixes` (comma lists), `name`
//! - `price <provider>[@CC] <sms> [<voice_minute>]` (before any event)
//! - `seed <n>` reseeds the planner's RNG (default seed 0)
//! - `<key> <outcome> [<ms>ms] [x<n>]` records an outcome `n` times, with that latency (default
//!   100 ms): `ok`, `timeout`, `5xx`, `auth`, `funds`, `invalid`, `blocked`, `fraud`, `429`,
//!   `429/<seconds>` (with retry-after), or a receipt: `delivered`, `undelivered`,
//!   `undelivered-invalid` (a number-level reason), or a conversion: `entered`, `not-entered`,
//!   `superseded` (a resend, weak), `superseded-confirmed`
//! - `request [x<n>]` deposits hook requests into the retry budget
//! - `begin <key> [failover|hedge|race] -> go|skip|budget|spend` asks whether dispatch may send
//!   (`-> go` may be left out); the candidate is taken from the current plan for the key's
//!   country and channel, so trial, fail-open and price are real
//! - `abandon <key>` gives up an attempt without an outcome
//! - `enable|drain|disable <provider>` sets the operator switch
//! - `status <key> -> healthy|ejected@<until>x<times>|probation|probation(trial)|rate-limited@<until>`
//! - `cause <key> -> <ejection cause>|none`
//! - `latency <key> -> <ms>` (the Peak-EWMA estimate, rounded)
//! - `rates <key> -> s=<success> d=<delivery> n=<requests>` (two decimals)
//! - `ranked <key> -> lo=<lower> hi=<upper> recent=<rate> provider=<rate>`: the success rate
//!   ranking uses, the one exploration uses, the recent rate and the provider's pooled rate
//! - `budget -> <balance>` (one decimal)
//! - `plan [<query>] -> <candidates> | <exclusions>`; a query is any of a country, a channel, a
//!   purpose, `+<digits>`, `avoid=<provider>`, `segments=<n>` (default `US sms`); candidates as
//!   `name` with `(trial)`, `(fail-open)` or `(explore)`, or `none`; exclusions as
//!   `name:reason[@until]`, the `|` part left out when nothing is excluded, `no-rule` when no
//!   rule matches
//! - `plans <n> [<query>] -> name:count, ...` counts the first candidate over `n` plans
//! - `strategy [<query>] -> cascade|hedge <ms>ms (learned|fixed)|race <width>`
//! - `reload <policy keys>` carries health over to a new policy
//!
//! Providers: `twilio`, `backup`, `vonage` (sms and voice) and `textonly` (sms only).
//! Times in expectations are seconds from the script's start.
//!
//! One file on purpose, though it is over 600 lines: it is one interpreter, compiled for tests
//! only. `World::step` is a single `match` over the grammar above, and the helpers below it
//! parse that grammar's words; split up, the grammar would be spread over several files with no
//! part usable on its own. It sits above every other file (it drives health, the budget, the
//! switches, planning and attempts), and only `health/tests.rs` and `plan/tests.rs` use it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::attempt::{Admission, AttemptKind, begin_attempt};
use crate::budget::RetryBudget;
use crate::config::ConfigError;
use crate::domain::{Channel, Country, ProviderId, Purpose};
use crate::health::{HealthBook, HealthConfig, HealthKey, HealthPolicy, HealthStatus};
use crate::outcome::{AttemptOutcome, Certainty, Conversion, Delivery, ErrorClass, Failure};
use crate::plan::{
    Candidate, ExclusionReason, NumberDigits, Plan, RouteQuery, Score, Strategy, plan,
};
use crate::price::{PriceConfig, PriceEntryConfig, ProviderPriceConfig};
use crate::route::{
    HedgeDelayName, Optimize, ProviderCatalog, RouteConfig, RouteTable, StrategyName,
};
use crate::spend::SpendBook;
use crate::switch::{OperatorState, OperatorSwitches};

/// Runs one script line, panicking with the step that failed.
pub(crate) fn run(script: &str) {
    let mut world = World::new();
    for (position, step) in
        script.split(';').map(str::trim).filter(|step| !step.is_empty()).enumerate()
    {
        if let Err(problem) = world.step(step) {
            panic!("script: {script}\n  step {} `{step}`: {problem}", position + 1);
        }
    }
}

/// The fixed catalog every script runs against.
pub(crate) fn catalog() -> ProviderCatalog {
    let both = vec![Channel::Sms, Channel::Voice];
    ProviderCatalog::new([
        (provider("twilio"), both.clone()),
        (provider("backup"), both.clone()),
        (provider("vonage"), both),
        (provider("textonly"), vec![Channel::Sms]),
    ])
}

pub(crate) fn provider(name: &str) -> ProviderId {
    ProviderId::parse(name).unwrap_or_else(|| panic!("bad provider id {name:?}"))
}

pub(crate) fn us() -> Country {
    Country::parse("US").expect("US is a country")
}

/// `provider` to the US by SMS.
pub(crate) fn us_sms(name: &str) -> HealthKey {
    HealthKey::new(provider(name), us(), Channel::Sms)
}

/// The policy scripts start with (failures=3 base=10 max=60 trial=5).
pub(crate) fn script_policy() -> HealthPolicy {
    policy_from("").expect("the default script policy is valid")
}

/// A candidate as dispatch would hold it without a plan: no flags, a neutral score.
pub(crate) fn plain_candidate(book: &HealthBook, key: HealthKey, now: Instant) -> Candidate {
    let estimate = book.estimate(&key, now);
    let score = Score {
        total: 0.0,
        optimistic: 0.0,
        health_term: 0.0,
        latency_term: 0.0,
        price_term: 0.0,
        weight_term: 0.0,
        estimate,
        price: None,
        notes: Vec::new(),
    };
    Candidate { key, is_trial: false, is_fail_open: false, is_exploration: false, score }
}

struct World {
    start: Instant,
    now: Instant,
    routes: Vec<RouteConfig>,
    prices: PriceConfig,
    table: Option<RouteTable>,
    budget: RetryBudget,
    spend: SpendBook,
    book: HealthBook,
    switches: OperatorSwitches,
    rng: StdRng,
}

impl World {
    fn new() -> World {
        let start = Instant::now();
        World {
            start,
            now: start,
            routes: Vec::new(),
            prices: PriceConfig::empty(),
            table: None,
            budget: RetryBudget::new(script_policy().budget().clone()),
            spend: SpendBook::default(),
            book: HealthBook::new(script_policy()),
            switches: OperatorSwitches::new(),
            rng: StdRng::seed_from_u64(0),
        }
    }

    fn step(&mut self, step: &str) -> Result<(), String> {
        let mut step = step;
        if let Some(rest) = step.strip_prefix("t=") {
            let (time, rest) = rest.split_once(' ').ok_or("a time needs a step after it")?;
            let seconds: f64 = time.parse().map_err(|_| format!("bad time {time:?}"))?;
            let now = self.start + Duration::from_secs_f64(seconds);
            if now < self.now {
                return Err("time goes backwards".into());
            }
            self.now = now;
            step = rest.trim();
        }
        let (command, expected) = match step.split_once("->") {
            Some((command, expected)) => (command.trim(), Some(expected.trim())),
            None => (step, None),
        };
        let words: Vec<&str> = command.split_whitespace().collect();
        let now = self.now;
        match (words.as_slice(), expected) {
            (["policy", ..], None) => {
                if self.table.is_some() {
                    return Err("policy must come before any event".into());
                }
                let policy = policy_from(&words[1..].join(" ")).map_err(|e| e.to_string())?;
                self.budget = RetryBudget::new(policy.budget().clone());
                self.spend = SpendBook::default();
                self.book = HealthBook::new(policy);
                Ok(())
            }
            (["reload", ..], None) => {
                let policy = policy_from(&words[1..].join(" ")).map_err(|e| e.to_string())?;
                self.budget = self.budget.carry_over(policy.budget().clone());
                self.spend.recap_extra(|country| policy.budget().extra_spend_cap(country));
                self.book = self.book.carry_over(policy, catalog().providers());
                self.switches = self.switches.carry_over(catalog().providers());
                Ok(())
            }
            (["route", countries, channels, providers, options @ ..], None) => {
                if self.table.is_some() {
                    return Err("routes must come before any event".into());
                }
                let mut route = RouteConfig::new(list(countries), list(channels), list(providers));
                for option in options {
                    set_route_option(&mut route, option)?;
                }
                self.routes.push(route);
                Ok(())
            }
            (["price", key, sms, voice @ ..], None) => {
                if self.table.is_some() {
                    return Err("prices must come before any event".into());
                }
                let number =
                    |text: &str| text.parse::<f64>().map_err(|_| format!("bad price {text:?}"));
                let entry = PriceEntryConfig {
                    sms: Some(number(sms)?),
                    voice_minute: voice.first().map(|text| number(text)).transpose()?,
                };
                let (name, country) = match key.split_once('@') {
                    Some((name, country)) => (name, Some(country)),
                    None => (*key, None),
                };
                let prices = self
                    .prices
                    .0
                    .entry(name.to_owned())
                    .or_insert(ProviderPriceConfig { default: None, countries: BTreeMap::new() });
                match country {
                    Some(country) => {
                        prices.countries.insert(country.to_owned(), entry);
                    }
                    None => prices.default = Some(entry),
                }
                Ok(())
            }
            (["seed", seed], None) => {
                self.rng = StdRng::seed_from_u64(seed.parse().map_err(|_| "bad seed")?);
                Ok(())
            }
            (["request", repeat @ ..], None) => {
                for _ in 0..parse_repeat(repeat.first().copied())? {
                    self.budget.deposit(now);
                }
                Ok(())
            }
            (["begin", key, kind @ ..], expected) => {
                let key = parse_key(key)?;
                let kind = match kind {
                    [] => AttemptKind::First,
                    ["failover"] => AttemptKind::Failover,
                    ["hedge"] => AttemptKind::Hedge,
                    ["race"] => AttemptKind::Race,
                    _ => return Err("unknown attempt kind".into()),
                };
                let candidate = self.candidate(key)?;
                let admission = begin_attempt(
                    &mut self.book,
                    &mut self.budget,
                    &mut self.spend,
                    &self.switches,
                    &candidate,
                    kind,
                    now,
                );
                let got = match admission {
                    Admission::Go => "go",
                    Admission::Disabled | Admission::TrialInFlight => "skip",
                    Admission::RetryBudget => "budget",
                    Admission::SpendBudget => "spend",
                    Admission::AtCapacity => "capacity",
                };
                check(got, expected.unwrap_or("go"))
            }
            (["abandon", key], None) => {
                let key = parse_key(key)?;
                self.book.abandon(&key, now);
                Ok(())
            }
            (["early", key], Some(expected)) => {
                let key = parse_key(key)?;
                let got = if self.book.claim_early_trial(&key, now) { "yes" } else { "no" };
                check(got, expected)
            }
            ([switch @ ("enable" | "drain" | "disable"), name], None) => {
                let state = match *switch {
                    "enable" => OperatorState::Enabled,
                    "drain" => OperatorState::Draining,
                    _ => OperatorState::Disabled,
                };
                self.switches.set(&provider(name), state);
                self.table()?;
                Ok(())
            }
            (["status", key], Some(expected)) => {
                let status = self.book.status(&parse_key(key)?, now);
                check(&self.render_status(status), expected)
            }
            (["cause", key], Some(expected)) => {
                let key = parse_key(key)?;
                let row =
                    self.book.snapshot(&self.switches, now).into_iter().find(|row| row.key == key);
                let cause =
                    row.and_then(|row| row.ejection_cause).map_or("none", |cause| cause.as_str());
                check(cause, expected)
            }
            (["latency", key], Some(expected)) => {
                let estimate = self.book.estimate(&parse_key(key)?, now);
                check(
                    &format!("{}", estimate.latency.as_secs_f64() * 1000.0)
                        .parse::<f64>()
                        .map(|ms| format!("{}", ms.round()))
                        .unwrap_or_default(),
                    expected,
                )
            }
            (["rates", key], Some(expected)) => {
                let estimate = self.book.estimate(&parse_key(key)?, now);
                let got = format!(
                    "s={:.2} d={:.2} n={}",
                    estimate.success_rate, estimate.delivery_rate, estimate.requests
                );
                check(&got, expected)
            }
            (["ranked", key], Some(expected)) => {
                let estimate = self.book.estimate(&parse_key(key)?, now);
                let got = format!(
                    "lo={:.2} hi={:.2} recent={:.2} provider={:.2}",
                    estimate.success_lower,
                    estimate.success_upper,
                    estimate.recent_success_rate,
                    estimate.provider_success_rate
                );
                check(&got, expected)
            }
            (["budget"], Some(expected)) => {
                check(&format!("{:.1}", self.budget.balance(now)), expected)
            }
            (["plan", query @ ..], Some(expected)) => {
                let query = parse_query(query)?;
                let plan = self.plan(&query)?;
                check(&self.render_plan(&plan), expected)
            }
            (["plans", count, query @ ..], Some(expected)) => {
                let count: u32 = count.parse().map_err(|_| "bad plan count")?;
                let query = parse_query(query)?;
                let mut firsts: BTreeMap<String, u32> = BTreeMap::new();
                for _ in 0..count {
                    let plan = self.plan(&query)?;
                    let first = plan.candidates.first().map_or("none", |c| c.provider().as_str());
                    *firsts.entry(first.to_owned()).or_default() += 1;
                }
                let got: Vec<String> =
                    firsts.iter().map(|(name, n)| format!("{name}:{n}")).collect();
                check(&got.join(", "), expected)
            }
            (["strategy", query @ ..], Some(expected)) => {
                let query = parse_query(query)?;
                let plan = self.plan(&query)?;
                let got = match plan.strategy {
                    Strategy::Cascade => "cascade".to_owned(),
                    Strategy::Hedge { delay, is_learned } => format!(
                        "hedge {}ms ({})",
                        delay.as_millis(),
                        if is_learned { "learned" } else { "fixed" }
                    ),
                    Strategy::Race { width } => format!("race {width}"),
                };
                check(&got, expected)
            }
            ([key, outcome, rest @ ..], None) => {
                let key = parse_key(key)?;
                let mut elapsed = Duration::from_millis(100);
                let mut repeat = 1;
                for word in rest {
                    if let Some(ms) = word.strip_suffix("ms") {
                        elapsed = Duration::from_millis(
                            ms.parse().map_err(|_| format!("bad latency {word:?}"))?,
                        );
                    } else {
                        repeat = parse_repeat(Some(word))?;
                    }
                }
                self.table()?;
                for _ in 0..repeat {
                    match *outcome {
                        "delivered" => self.book.record_receipt(&key, Delivery::Delivered, now),
                        "undelivered" => self.book.record_receipt(
                            &key,
                            Delivery::Undelivered(ErrorClass::Transient),
                            now,
                        ),
                        "undelivered-invalid" => self.book.record_receipt(
                            &key,
                            Delivery::Undelivered(ErrorClass::InvalidNumber),
                            now,
                        ),
                        "entered" => self.book.record_conversion(&key, Conversion::Entered, now),
                        "not-entered" => {
                            self.book.record_conversion(&key, Conversion::NotEntered, now)
                        }
                        "superseded" => self.book.record_conversion(
                            &key,
                            Conversion::Superseded { confirmed: false },
                            now,
                        ),
                        "superseded-confirmed" => self.book.record_conversion(
                            &key,
                            Conversion::Superseded { confirmed: true },
                            now,
                        ),
                        _ => self.book.record(&key, &parse_outcome(outcome)?, elapsed, now),
                    }
                }
                Ok(())
            }
            _ => Err("unknown step".into()),
        }
    }

    fn table(&mut self) -> Result<&RouteTable, String> {
        if self.table.is_none() {
            let routes = if self.routes.is_empty() {
                vec![RouteConfig::new(list("*"), list("sms,voice"), list("twilio,backup"))]
            } else {
                self.routes.clone()
            };
            self.table = Some(
                RouteTable::try_new(&routes, &self.prices, &catalog())
                    .map_err(|e| e.to_string())?,
            );
        }
        self.table.as_ref().ok_or_else(|| "no route table".to_owned())
    }

    fn plan(&mut self, query: &RouteQuery) -> Result<Plan, String> {
        let table = self.table()?.clone();
        Ok(plan(&table, &self.book, &self.switches, query, self.now, &mut self.rng))
    }

    /// The candidate dispatch would hold for `key`: from the current plan for its country and
    /// channel when it is in it, otherwise a plain one (a plan made earlier, before the
    /// provider's state changed).
    fn candidate(&mut self, key: HealthKey) -> Result<Candidate, String> {
        let query = RouteQuery::new(key.country(), key.channel());
        let planned = self.plan(&query)?.candidates;
        Ok(planned
            .into_iter()
            .find(|candidate| candidate.key == key)
            .unwrap_or_else(|| plain_candidate(&self.book, key, self.now)))
    }

    fn at(&self, instant: Instant) -> String {
        let seconds = instant.saturating_duration_since(self.start).as_secs_f64();
        format!("{seconds}")
    }

    fn render_status(&self, status: HealthStatus) -> String {
        match status {
            HealthStatus::Healthy => "healthy".into(),
            HealthStatus::Ejected { until, times } => format!("ejected@{}x{times}", self.at(until)),
            HealthStatus::Probation { trial_in_flight: false } => "probation".into(),
            HealthStatus::Probation { trial_in_flight: true } => "probation(trial)".into(),
            HealthStatus::RateLimited { until } => format!("rate-limited@{}", self.at(until)),
        }
    }

    fn render_plan(&self, plan: &Plan) -> String {
        if plan.rule.is_none() {
            return "no-rule".into();
        }
        let mut out = String::new();
        for (position, candidate) in plan.candidates.iter().enumerate() {
            if position > 0 {
                out.push_str(", ");
            }
            out.push_str(candidate.provider().as_str());
            if candidate.is_trial {
                out.push_str("(trial)");
            }
            if candidate.is_fail_open {
                out.push_str("(fail-open)");
            }
            if candidate.is_exploration {
                out.push_str("(explore)");
            }
        }
        if plan.candidates.is_empty() {
            out.push_str("none");
        }
        for (position, exclusion) in plan.excluded.iter().enumerate() {
            out.push_str(if position == 0 { " | " } else { ", " });
            let reason = match exclusion.reason {
                ExclusionReason::ChannelUnsupported => "channel".to_owned(),
                ExclusionReason::Disabled => "disabled".to_owned(),
                ExclusionReason::Draining => "draining".to_owned(),
                ExclusionReason::Ejected { until } => format!("ejected@{}", self.at(until)),
                ExclusionReason::RateLimited { until } => {
                    format!("rate-limited@{}", self.at(until))
                }
                ExclusionReason::TrialInFlight => "trial-in-flight".to_owned(),
            };
            out.push_str(&format!("{}:{reason}", exclusion.provider));
        }
        out
    }
}

fn list(text: &str) -> Vec<String> {
    text.split(',').map(str::to_owned).collect()
}

fn parse_repeat(word: Option<&str>) -> Result<u32, String> {
    match word {
        None => Ok(1),
        Some(word) => word
            .strip_prefix('x')
            .and_then(|count| count.parse().ok())
            .ok_or_else(|| format!("expected x<count>, got {word:?}")),
    }
}

fn set_route_option(route: &mut RouteConfig, option: &str) -> Result<(), String> {
    let (key, value) =
        option.split_once('=').ok_or_else(|| format!("expected key=value: {option:?}"))?;
    let number = |text: &str| text.parse::<f64>().map_err(|_| format!("bad number {text:?}"));
    let millis = |text: &str| text.parse::<u64>().map_err(|_| format!("bad milliseconds {text:?}"));
    match key {
        "name" => route.name = Some(value.to_owned()),
        "optimize" => {
            route.optimize = match value {
                "priority" => Optimize::Priority,
                "reliability" => Optimize::Reliability,
                "latency" => Optimize::Latency,
                "cost" => Optimize::Cost,
                _ => return Err(format!("bad optimize {value:?}")),
            }
        }
        "strategy" => {
            route.strategy = match value {
                "cascade" => StrategyName::Cascade,
                "hedge" => StrategyName::Hedge,
                "race" => StrategyName::Race,
                _ => return Err(format!("bad strategy {value:?}")),
            }
        }
        "hedge" if value == "auto" => route.hedge_delay = Some(HedgeDelayName::Auto),
        "hedge" => route.hedge_delay_ms = Some(millis(value)?),
        "quantile" => route.hedge_quantile = Some(number(value)?),
        "hedge_min" => route.hedge_delay_min_ms = Some(millis(value)?),
        "hedge_max" => route.hedge_delay_max_ms = Some(millis(value)?),
        "width" => route.race_width = Some(value.parse().map_err(|_| "bad width")?),
        "exploration" => route.exploration = Some(number(value)?),
        "weights" => {
            for pair in value.split(',') {
                let (name, weight) = pair.split_once(':').ok_or("weights are name:weight")?;
                route.weights.insert(name.to_owned(), number(weight)?);
            }
        }
        "purposes" => route.purposes = Some(list(value)),
        "prefixes" => route.prefixes = list(value),
        _ => return Err(format!("unknown route option {key:?}")),
    }
    Ok(())
}

fn check(got: &str, expected: &str) -> Result<(), String> {
    if got == expected { Ok(()) } else { Err(format!("expected `{expected}`, got `{got}`")) }
}

/// `provider[@CC][/channel]`.
fn parse_key(text: &str) -> Result<HealthKey, String> {
    let (rest, channel) = match text.split_once('/') {
        Some((rest, channel)) => {
            (rest, Channel::parse(channel).ok_or_else(|| format!("bad channel in {text:?}"))?)
        }
        None => (text, Channel::Sms),
    };
    let (name, country) = match rest.split_once('@') {
        Some((name, country)) => {
            (name, Country::parse(country).ok_or_else(|| format!("bad country in {text:?}"))?)
        }
        None => (rest, us()),
    };
    let provider = ProviderId::parse(name).ok_or_else(|| format!("bad provider in {text:?}"))?;
    Ok(HealthKey::new(provider, country, channel))
}

fn parse_query(words: &[&str]) -> Result<RouteQuery, String> {
    let mut query = RouteQuery::new(us(), Channel::Sms);
    for word in words {
        if let Some(channel) = Channel::parse(word) {
            query.channel = channel;
        } else if let Some(purpose) = Purpose::parse(word) {
            query.purpose = Some(purpose);
        } else if word.starts_with('+') {
            query.number =
                Some(NumberDigits::parse(word).ok_or_else(|| format!("bad number {word:?}"))?);
        } else if let Some(name) = word.strip_prefix("avoid=") {
            query.avoid = Some(provider(name));
        } else if let Some(segments) = word.strip_prefix("segments=") {
            query.segments = segments.parse().map_err(|_| format!("bad segments {word:?}"))?;
        } else {
            query.country =
                Country::parse(word).ok_or_else(|| format!("bad query word {word:?}"))?;
        }
    }
    Ok(query)
}

pub(crate) fn parse_outcome(text: &str) -> Result<AttemptOutcome, String> {
    let failed = |class, certainty, retry_after| {
        AttemptOutcome::Failed(Failure { class, certainty, retry_after })
    };
    Ok(match text {
        "ok" => AttemptOutcome::Accepted { message_id: "SM1".into() },
        "timeout" => failed(ErrorClass::Timeout, Certainty::PossiblyAccepted, None),
        "5xx" => failed(ErrorClass::Transient, Certainty::NotSent, None),
        "auth" => failed(ErrorClass::AuthConfig, Certainty::NotSent, None),
        "funds" => failed(ErrorClass::Funds, Certainty::NotSent, None),
        "invalid" => failed(ErrorClass::InvalidNumber, Certainty::NotSent, None),
        "blocked" => failed(ErrorClass::Blocked, Certainty::NotSent, None),
        "fraud" => failed(ErrorClass::FraudBlock, Certainty::NotSent, None),
        "429" => failed(ErrorClass::RateLimited, Certainty::NotSent, None),
        _ => {
            let seconds =
                text.strip_prefix("429/").ok_or_else(|| format!("unknown outcome {text:?}"))?;
            let seconds: f64 =
                seconds.parse().map_err(|_| format!("bad retry-after {seconds:?}"))?;
            failed(
                ErrorClass::RateLimited,
                Certainty::NotSent,
                Some(Duration::from_secs_f64(seconds)),
            )
        }
    })
}

/// Script policy keys (see the module docs) over the script defaults, as a validated policy.
fn policy_from(text: &str) -> Result<HealthPolicy, ConfigError> {
    let mut config = HealthConfig::defaults();
    config.consecutive_failures = 3;
    config.base_ejection_ms = 10_000;
    config.max_ejection_ms = 60_000;
    config.trial_timeout_ms = 5_000;
    for pair in text.split_whitespace() {
        let (key, value) =
            pair.split_once('=').ok_or_else(|| ConfigError::invalid(pair, "expected key=value"))?;
        if key == "spend" {
            let (country, amount) = value
                .split_once(':')
                .ok_or_else(|| ConfigError::invalid(key, "expected CC:amount"))?;
            let amount = amount.parse().map_err(|_| ConfigError::invalid(key, "not a number"))?;
            config.budget.extra_spend_per_hour.insert(country.to_owned(), amount);
            continue;
        }
        let number: f64 = value.parse().map_err(|_| ConfigError::invalid(key, "not a number"))?;
        let millis = (number * 1000.0).round() as u64;
        match key {
            "failures" => config.consecutive_failures = number as u32,
            "base" => config.base_ejection_ms = millis,
            "max" => config.max_ejection_ms = millis,
            "trial" => config.trial_timeout_ms = millis,
            "pct" => config.failure_percentage = number as u32,
            "minreq" => config.failure_percentage_min_requests = number as u32,
            "window" => config.window_ms = millis,
            "tau" => config.latency_tau_ms = millis,
            "prior" => config.latency_prior_ms = millis,
            "halflife" => config.receipt_half_life_ms = millis,
            "receipts" => config.receipt_min_count = number as u32,
            "delivery" => config.receipt_min_delivery_percent = number as u32,
            "conversions" => config.conversion_min_count = number as u32,
            "budget_pct" => config.budget.percent = number as u32,
            "budget_min" => config.budget.min_per_second = number,
            "budget_burst" => config.budget.burst = number as u32,
            _ => return Err(ConfigError::invalid(key, "unknown policy key")),
        }
    }
    HealthPolicy::try_new(&config)
}
