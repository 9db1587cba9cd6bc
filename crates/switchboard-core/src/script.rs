//! A tiny script language for health and planning tests, so each case is one readable line:
//!
//! ```text
//! t=0 twilio timeout; t=1 twilio 5xx; t=2 twilio 5xx; plan -> backup | twilio:ejected@12
//! ```
//!
//! Steps are separated by `;`. A step may start with `t=<seconds>` (decimals allowed); without
//! it, a step happens at the previous step's time. Steps:
//!
//! - `policy failures=3 base=10 max=60 trial=5` (seconds; before any event; these are the
//!   defaults, shorter than production's so scripts stay short)
//! - `route <countries> <channels> <providers>` with comma lists (`route US,CA sms twilio,backup`);
//!   the first one replaces the default `route * sms,voice twilio,backup`
//! - `<provider> <outcome>` records an outcome: `ok`, `timeout`, `5xx`, `auth`, `funds`,
//!   `invalid`, `blocked`, `fraud`, `429`, `429/<seconds>` (with retry-after)
//! - `begin <provider>` asserts dispatch may send (`begin <provider> -> skip` asserts it may
//!   not); the candidate is taken from the current plan, so trial and fail-open flags are real
//! - `enable|drain|disable <provider>` sets the operator switch
//! - `status <provider> -> healthy|ejected@<until>x<times>|probation|probation(trial)|rate-limited@<until>`
//! - `plan [<country>] [<channel>] -> <candidates> | <exclusions>` (defaults: `US sms`);
//!   candidates as `name`, `name(trial)`, `name(fail-open)` or `none`, exclusions as
//!   `name:reason[@until]`, the `|` part left out when nothing is excluded, `no-rule` when no
//!   rule matches
//! - `reload failures=.. base=.. max=.. trial=..` carries health over to a new policy
//!
//! Providers: `twilio`, `backup`, `vonage` (sms and voice) and `textonly` (sms only).
//! Times in expectations are seconds from the script's start.

use std::time::{Duration, Instant};

use crate::config::ConfigError;
use crate::domain::{Channel, Country, ProviderId};
use crate::health::{HealthBook, HealthConfig, HealthPolicy, HealthStatus, OperatorState};
use crate::outcome::{AttemptOutcome, Certainty, ErrorClass, Failure};
use crate::plan::{Candidate, ExclusionReason, Plan, RouteQuery, plan};
use crate::route::{ProviderCatalog, RouteConfig, RouteTable};

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

/// The policy scripts start with (failures=3 base=10 max=60 trial=5).
pub(crate) fn script_policy() -> HealthPolicy {
    policy_from("failures=3 base=10 max=60 trial=5").expect("the default script policy is valid")
}

struct World {
    start: Instant,
    now: Instant,
    routes: Vec<RouteConfig>,
    table: Option<RouteTable>,
    book: HealthBook,
}

impl World {
    fn new() -> World {
        let start = Instant::now();
        World {
            start,
            now: start,
            routes: Vec::new(),
            table: None,
            book: HealthBook::new(script_policy()),
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
        match (words.as_slice(), expected) {
            (["policy", ..], None) => {
                if self.table.is_some() {
                    return Err("policy must come before any event".into());
                }
                self.book =
                    HealthBook::new(policy_from(&words[1..].join(" ")).map_err(|e| e.to_string())?);
                Ok(())
            }
            (["reload", ..], None) => {
                let policy = policy_from(&words[1..].join(" ")).map_err(|e| e.to_string())?;
                let catalog = catalog();
                self.book = self.book.carry_over(policy, catalog.providers());
                Ok(())
            }
            (["route", countries, channels, providers], None) => {
                if self.table.is_some() {
                    return Err("routes must come before any event".into());
                }
                let list = |text: &str| text.split(',').map(str::to_owned).collect::<Vec<_>>();
                self.routes.push(RouteConfig {
                    name: None,
                    countries: list(countries),
                    channels: list(channels),
                    providers: list(providers),
                });
                Ok(())
            }
            (["begin", name], expected) => {
                let candidate = self.candidate(&provider(name));
                let may_send = self.book.begin_attempt(&candidate, self.now);
                let got = if may_send { "go" } else { "skip" };
                check(got, expected.unwrap_or("go"))
            }
            ([switch @ ("enable" | "drain" | "disable"), name], None) => {
                let state = match *switch {
                    "enable" => OperatorState::Enabled,
                    "drain" => OperatorState::Draining,
                    _ => OperatorState::Disabled,
                };
                self.book.set_operator_state(&provider(name), state);
                self.table()?;
                Ok(())
            }
            (["status", name], Some(expected)) => {
                let status = self.book.status(&provider(name), self.now);
                check(&self.render_status(status), expected)
            }
            (["plan", query @ ..], Some(expected)) => {
                let query = parse_query(query)?;
                let table = self.table()?.clone();
                let plan = plan(&table, &self.book, &query, self.now);
                check(&self.render_plan(&plan), expected)
            }
            ([name, outcome], None) => {
                let outcome = parse_outcome(outcome)?;
                self.table()?;
                self.book.record(&provider(name), &outcome, self.now);
                Ok(())
            }
            _ => Err("unknown step".into()),
        }
    }

    fn table(&mut self) -> Result<&RouteTable, String> {
        if self.table.is_none() {
            let routes = if self.routes.is_empty() {
                let list = |text: &str| text.split(',').map(str::to_owned).collect::<Vec<_>>();
                vec![RouteConfig {
                    name: None,
                    countries: list("*"),
                    channels: list("sms,voice"),
                    providers: list("twilio,backup"),
                }]
            } else {
                self.routes.clone()
            };
            self.table = Some(RouteTable::try_new(&routes, &catalog()).map_err(|e| e.to_string())?);
        }
        self.table.as_ref().ok_or_else(|| "no route table".to_owned())
    }

    /// The candidate dispatch would hold for `provider`: from the current default plan when it is
    /// in it, otherwise a plain one (a plan made earlier, before the provider's state changed).
    fn candidate(&mut self, provider: &ProviderId) -> Candidate {
        let query = RouteQuery {
            country: Country::parse("US").expect("US is a country"),
            channel: Channel::Sms,
        };
        let now = self.now;
        let planned = match self.table() {
            Ok(table) => {
                let table = table.clone();
                plan(&table, &self.book, &query, now).candidates
            }
            Err(_) => Vec::new(),
        };
        planned.into_iter().find(|candidate| candidate.provider == *provider).unwrap_or(Candidate {
            provider: provider.clone(),
            is_trial: false,
            is_fail_open: false,
        })
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
            out.push_str(candidate.provider.as_str());
            match (candidate.is_trial, candidate.is_fail_open) {
                (true, _) => out.push_str("(trial)"),
                (_, true) => out.push_str("(fail-open)"),
                _ => {}
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

fn check(got: &str, expected: &str) -> Result<(), String> {
    if got == expected { Ok(()) } else { Err(format!("expected `{expected}`, got `{got}`")) }
}

fn parse_query(words: &[&str]) -> Result<RouteQuery, String> {
    let mut query =
        RouteQuery { country: Country::parse("US").ok_or("US")?, channel: Channel::Sms };
    for word in words {
        if let Some(channel) = Channel::parse(word) {
            query.channel = channel;
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

/// `failures=3 base=10 max=60 trial=5` (seconds) as a validated policy.
fn policy_from(text: &str) -> Result<HealthPolicy, ConfigError> {
    let mut config = HealthConfig::defaults();
    for pair in text.split_whitespace() {
        let (key, value) =
            pair.split_once('=').ok_or_else(|| ConfigError::invalid(pair, "expected key=value"))?;
        let number: f64 = value.parse().map_err(|_| ConfigError::invalid(key, "not a number"))?;
        let millis = (number * 1000.0).round() as u64;
        match key {
            "failures" => config.consecutive_failures = number as u32,
            "base" => config.base_ejection_ms = millis,
            "max" => config.max_ejection_ms = millis,
            "trial" => config.trial_timeout_ms = millis,
            _ => return Err(ConfigError::invalid(key, "unknown policy key")),
        }
    }
    HealthPolicy::try_new(&config)
}
