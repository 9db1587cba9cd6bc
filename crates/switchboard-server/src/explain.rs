//! `explain`: why a number would be routed the way it is, for operators.
//!
//! The core produces the [`Explanation`] as data; this module renders it, as JSON for the admin
//! API and as text for `switchboard explain`. Neither rendering holds the number itself: only its
//! country and line type.
//!
//! Before any route, a number goes through the hook's own admission steps, by the same code:
//! [`Screening::screen`] (number, line type) and the guard's country rules
//! ([`Guard::country_rule`]: allow and deny lists, spend caps). So `explain` never shows a
//! provider as chosen for a number the hook would refuse. Only the velocity limits are left
//! out: checking them would spend the number's allowance.

use std::fmt::Write as _;
use std::time::Instant;

use switchboard_core::budget::RetryBudget;
use switchboard_core::explain::{Explanation, Live, explain};
use switchboard_core::health::{HealthBook, HealthStatus};
use switchboard_core::plan::{RouteQuery, Strategy};
use switchboard_core::spend::SpendBook;
use switchboard_core::switch::OperatorSwitches;
use switchboard_core::{Channel, Destination, Purpose};

use crate::config::{OktaSettings, Settings};
use crate::guard::Guard;
use crate::health::{delivery_json, delivery_text};
use crate::hook::{Refusal, Screening};
use crate::spend::SpentToday;
use crate::state::Shared;
use crate::throughput::Caps;

/// What an operator asks about.
#[derive(Debug, Clone)]
pub struct ExplainQuery {
    /// The number, as Okta would send it.
    pub number: String,
    /// SMS or voice.
    pub channel: Channel,
    /// Okta's request type, when rules depend on it.
    pub purpose: Option<Purpose>,
}

/// A request type by the name operators use (`verification`) or Okta's (`mfa-verification`).
#[must_use]
pub fn parse_purpose(text: &str) -> Option<Purpose> {
    crate::okta::parse_purpose_name(text)
}

/// Explains against a fresh health book: what the configuration alone decides (no live health).
pub fn explain_offline(settings: &Settings, query: &ExplainQuery) -> Result<String, String> {
    let book = HealthBook::new(settings.health.clone());
    let budget = RetryBudget::new(settings.health.budget().clone());
    let spend = SpendBook::default();
    let spent = |_| SpentToday::default();
    let (destination, route_query) = match admit(&settings.okta, &settings.guard, spent, query)? {
        Admitted::Yes(destination, route_query) => (destination, route_query),
        Admitted::Refused(destination, refusal) => {
            return Ok(render_refusal(destination.as_ref(), query, &refusal));
        }
    };
    let switches = OperatorSwitches::new();
    let live = Live { health: &book, switches: &switches, budget: &budget, spend: &spend };
    let explanation =
        explain(&settings.routes, live, &route_query, Instant::now(), &mut rand::rng());
    Ok(render_text(&destination, query, &explanation, &settings.throughput, false))
}

/// Explains against the running server's live health.
pub(crate) fn explain_live(
    shared: &Shared,
    query: &ExplainQuery,
) -> Result<(String, serde_json::Value), String> {
    let runtime = shared.runtime();
    let spent = |country| shared.spend.spent_on(shared.today(), country);
    let (destination, route_query) = match admit(&runtime.okta, &runtime.guard, spent, query)? {
        Admitted::Yes(destination, route_query) => (destination, route_query),
        Admitted::Refused(destination, refusal) => {
            let json = serde_json::json!({
                "country": destination.as_ref().map(|d| d.country().to_string()),
                "line_type": destination.as_ref().map(|d| d.kind().as_str()),
                "refused": {"reason": refusal.reason, "detail": refusal.detail},
                "candidates": [],
            });
            return Ok((render_refusal(destination.as_ref(), query, &refusal), json));
        }
    };
    let now = Instant::now();
    let explanation = shared.health.read(|health| {
        shared.budget.read(|budget| {
            shared.spend.read(|spend| {
                shared.switches.read(|switches| {
                    let live = Live { health, switches, budget, spend };
                    explain(&runtime.routes, live, &route_query, now, &mut rand::rng())
                })
            })
        })
    });
    let caps = shared.throughput.caps();
    Ok((
        render_text(&destination, query, &explanation, &caps, true),
        render_json(&destination, &explanation, &caps),
    ))
}

/// What the hook's admission steps make of a number.
enum Admitted {
    /// It may be routed.
    Yes(Destination, RouteQuery),
    /// The hook would refuse it before any provider (with the destination, when it parsed).
    Refused(Option<Destination>, Refusal),
}

/// The hook's own screening and the guard's country rules, as the hook runs them.
fn admit(
    okta: &OktaSettings,
    guard: &Guard,
    spent: impl Fn(switchboard_core::Country) -> SpentToday,
    query: &ExplainQuery,
) -> Result<Admitted, String> {
    let screening = Screening {
        phone_number: &query.number,
        channel: query.channel,
        otp_expires: None,
        event_time: None,
    };
    let destination = match screening.screen(okta, time::OffsetDateTime::now_utc()) {
        Ok(destination) => destination,
        Err(refusal) if refusal.reason == "invalid_phone_number" => return Err(refusal.detail),
        Err(refusal) => {
            // Parsed, but refused for its line type: show what it is.
            let destination = Destination::parse(&query.number, okta.default_region).ok();
            return Ok(Admitted::Refused(destination, refusal));
        }
    };
    if let Some(rule) =
        guard.country_rule(query.channel, destination.country(), spent(destination.country()))
        && guard.is_enforcing()
    {
        let detail = format!(
            "the fraud guard refuses {} numbers on {} ({})",
            destination.country(),
            query.channel,
            rule.as_str()
        );
        return Ok(Admitted::Refused(Some(destination), Refusal { reason: "guard", detail }));
    }
    let mut route_query = RouteQuery::for_destination(&destination, query.channel);
    if let Some(purpose) = query.purpose {
        route_query = route_query.with_purpose(purpose);
    }
    Ok(Admitted::Yes(destination, route_query))
}

/// The `destination` line (with `more` appended) and, when its country is unknown, why.
fn write_destination(out: &mut String, destination: &Destination, channel: Channel, more: &str) {
    let _ = writeln!(
        out,
        "destination  country {}, {} line, channel {channel}{more}",
        destination.country(),
        destination.kind(),
    );
    if let Some(reason) = destination.country_reason() {
        let _ = writeln!(out, "             {reason}");
    }
}

/// The text for a number the hook would refuse: what it is, and why no provider is tried.
fn render_refusal(
    destination: Option<&Destination>,
    query: &ExplainQuery,
    refusal: &Refusal,
) -> String {
    let mut out = String::new();
    if let Some(destination) = destination {
        write_destination(&mut out, destination, query.channel, "");
    }
    let _ = writeln!(
        out,
        "result       refused before any provider ({}): {}; the hook sends nothing",
        refusal.reason, refusal.detail
    );
    out
}

fn status_text(status: &HealthStatus, now: Instant) -> String {
    let left = |until: &Instant| until.saturating_duration_since(now).as_secs();
    match status {
        HealthStatus::Healthy => "healthy".into(),
        HealthStatus::Ejected { until, times } => {
            format!("ejected for {}s more (ejection #{times})", left(until))
        }
        HealthStatus::Probation { trial_in_flight } => {
            format!(
                "probation ({})",
                if *trial_in_flight { "trial running" } else { "next request is the trial" }
            )
        }
        HealthStatus::RateLimited { until } => format!("rate limited for {}s more", left(until)),
    }
}

/// The operator-facing text.
fn render_text(
    destination: &Destination,
    query: &ExplainQuery,
    explanation: &Explanation,
    caps: &Caps,
    is_live: bool,
) -> String {
    let now = Instant::now();
    let mut out = String::new();
    let purpose = query.purpose.map_or("any", Purpose::as_str);
    write_destination(&mut out, destination, query.channel, &format!(", request type {purpose}"));
    let _ = writeln!(
        out,
        "health       {}",
        if is_live {
            "live, from the running server"
        } else {
            "none observed (offline: configuration only; use --admin for live health)"
        }
    );
    for check in &explanation.rules {
        let verdict = match check.mismatch {
            None => "matched".to_owned(),
            Some(mismatch) => format!("skipped: {} does not match", mismatch.as_str()),
        };
        let _ = writeln!(out, "rule         {} ({verdict})", check.rule.name);
    }
    let plan = &explanation.plan;
    if plan.rule.is_none() {
        let _ = writeln!(out, "result       no rule matches: the code would not be sent");
        return out;
    }
    let strategy = match plan.strategy {
        Strategy::Cascade => "cascade (one provider at a time)".to_owned(),
        Strategy::Hedge { delay, is_learned } => format!(
            "hedge (next provider after {} ms, {})",
            delay.as_millis(),
            if is_learned { "learned from latency" } else { "configured" }
        ),
        Strategy::Race { width } => format!("race ({width} providers at once)"),
    };
    let _ = writeln!(out, "strategy     {strategy}, ranked by {}", plan.optimize.as_str());
    for (rank, candidate) in plan.candidates.iter().enumerate() {
        let score = &candidate.score;
        let estimate = &score.estimate;
        let mut flags: Vec<&str> = score.notes.iter().map(|note| note.as_str()).collect();
        if candidate.is_trial {
            flags.push("probation trial");
        }
        if candidate.is_fail_open {
            flags.push("fail open: every provider is excluded, this one recovers soonest");
        }
        let status = explanation
            .health
            .iter()
            .find(|row| row.key == candidate.key)
            .map_or_else(|| "healthy".to_owned(), |row| status_text(&row.status, now));
        let price = score.price.map_or("unpriced".to_owned(), |p| format!("{p}"));
        let _ = writeln!(
            out,
            "{}{}. {:<18} score {:>7.3} = health {:.3} + latency {:.3} + price {:.3} + weight {:.3}",
            if rank == 0 { "chosen       " } else { "then         " },
            rank + 1,
            candidate.provider().as_str(),
            score.total,
            score.health_term,
            score.latency_term,
            score.price_term,
            score.weight_term,
        );
        let _ = writeln!(
            out,
            "               {status}; success {:.0}% as ranked (cautious, from: window {:.0}% over {} attempts, latest attempts {:.0}%, provider-wide {:.0}%), delivery {:.0}%, conversion {:.0}%, latency {} ms{}, price {price}{}",
            estimate.success_lower * 100.0,
            estimate.success_rate * 100.0,
            estimate.requests,
            estimate.recent_success_rate * 100.0,
            estimate.provider_success_rate * 100.0,
            estimate.delivery_rate * 100.0,
            estimate.conversion_rate * 100.0,
            estimate.latency.as_millis(),
            if estimate.is_latency_prior { " (prior: no samples yet)" } else { "" },
            if flags.is_empty() { String::new() } else { format!(" [{}]", flags.join(", ")) },
        );
    }
    for exclusion in &plan.excluded {
        let cause = explanation
            .health
            .iter()
            .find(|row| row.key.provider() == &exclusion.provider)
            .and_then(|row| row.ejection_cause)
            .map_or(String::new(), |cause| format!(" ({})", cause.as_str()));
        let _ = writeln!(
            out,
            "excluded     {}: {}{cause}",
            exclusion.provider,
            exclusion.reason.as_str()
        );
    }
    for row in &explanation.health {
        if let Some(text) = delivery_text(&row.estimate.delivery) {
            let _ = writeln!(out, "delivery     {}: {text}", row.key.provider());
        }
    }
    for candidate in &plan.candidates {
        let provider = candidate.provider();
        let account =
            caps.providers.get(provider).map(|cap| format!("at most {cap} sends a second"));
        let sender = caps
            .sender(provider, candidate.key.country())
            .map(|cap| format!("its {} sender at most {cap} a second", candidate.key.country()));
        let limits: Vec<String> = account.into_iter().chain(sender).collect();
        if !limits.is_empty() {
            let _ = writeln!(
                out,
                "throughput   {provider}: {}; beyond that the next candidate goes",
                limits.join(", ")
            );
        }
    }
    let _ = writeln!(
        out,
        "budget       {:.1} of {:.0} extra sends (failover, hedge, race) available now{}",
        explanation.budget.balance,
        explanation.budget.burst,
        explanation.spend_balance.map_or(String::new(), |s| format!(
            "; {s:.2} left to spend on extras to this country this hour"
        )),
    );
    out
}

fn render_json(
    destination: &Destination,
    explanation: &Explanation,
    caps: &Caps,
) -> serde_json::Value {
    let plan = &explanation.plan;
    serde_json::json!({
        "country": destination.country().as_str(),
        "line_type": destination.kind().as_str(),
        "rules": explanation.rules.iter().map(|check| serde_json::json!({
            "rule": check.rule.name.to_string(),
            "matched": check.mismatch.is_none(),
            "mismatch": check.mismatch.map(|m| m.as_str()),
        })).collect::<Vec<_>>(),
        "strategy": plan.strategy.as_str(),
        "optimize": plan.optimize.as_str(),
        "candidates": plan.candidates.iter().map(|c| serde_json::json!({
            "provider": c.provider().as_str(),
            "score": c.score.total,
            "health_term": c.score.health_term,
            "latency_term": c.score.latency_term,
            "price_term": c.score.price_term,
            "success_rate": c.score.estimate.success_rate,
            "success_ranked": c.score.estimate.success_lower,
            "success_recent": c.score.estimate.recent_success_rate,
            "success_provider": c.score.estimate.provider_success_rate,
            "optimistic_score": c.score.optimistic,
            "delivery_rate": c.score.estimate.delivery_rate,
            "conversion_rate": c.score.estimate.conversion_rate,
            "delivery": delivery_json(&c.score.estimate.delivery),
            "latency_ms": c.score.estimate.latency.as_millis() as u64,
            "price": c.score.price,
            "is_trial": c.is_trial,
            "is_fail_open": c.is_fail_open,
            "is_exploration": c.is_exploration,
            "notes": c.score.notes.iter().map(|n| n.as_str()).collect::<Vec<_>>(),
            "max_per_second": caps.providers.get(c.provider()).map(|cap| cap.get()),
            "sender_max_per_second": caps.sender(c.provider(), c.key.country()).map(|cap| cap.get()),
        })).collect::<Vec<_>>(),
        "excluded": plan.excluded.iter().map(|e| {
            let row = explanation.health.iter().find(|row| row.key.provider() == &e.provider);
            serde_json::json!({
                "provider": e.provider.as_str(),
                "reason": e.reason.as_str(),
                "cause": row.and_then(|row| row.ejection_cause).map(|cause| cause.as_str()),
                "delivery": row.map(|row| delivery_json(&row.estimate.delivery)),
            })
        }).collect::<Vec<_>>(),
        "budget": { "balance": explanation.budget.balance, "burst": explanation.budget.burst },
    })
}
