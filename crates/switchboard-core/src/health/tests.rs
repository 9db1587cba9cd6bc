use std::time::{Duration, Instant};

use serde::Deserialize;

use super::*;
use crate::domain::{Channel, Country};
use crate::outcome::Delivery;
use crate::script::{self, provider, script_policy, us_sms};
use crate::switch::OperatorSwitches;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    health: HealthConfig,
}

fn health_section(body: &str) -> Result<HealthPolicy, String> {
    let file: File =
        toml::from_str(&format!("[health]\n{body}\n")).map_err(|error| error.to_string())?;
    HealthPolicy::try_new(&file.health).map_err(|error| error.to_string())
}

#[test]
fn an_empty_section_means_envoy_defaults() {
    let policy = health_section("").unwrap();
    assert_eq!(policy.consecutive_failures().get(), 5);
    assert_eq!(policy.base_ejection(), Duration::from_secs(30));
    assert_eq!(policy.max_ejection(), Duration::from_secs(300));
    assert_eq!(policy.trial_timeout(), Duration::from_secs(5));
    assert_eq!(HealthPolicy::try_new(&HealthConfig::defaults()), Ok(policy));
}

#[test]
fn an_empty_section_means_the_documented_defaults_for_the_new_keys() {
    let file: File = toml::from_str("[health]\n").unwrap();
    assert_eq!(file.health, HealthConfig::defaults());
    let defaults = HealthConfig::defaults();
    assert_eq!(
        (defaults.failure_percentage, defaults.failure_percentage_min_requests, defaults.window_ms),
        (50, 20, 60_000)
    );
    assert_eq!((defaults.latency_tau_ms, defaults.latency_prior_ms), (10_000, 1_000));
    assert_eq!(
        (
            defaults.receipt_half_life_ms,
            defaults.receipt_min_count,
            defaults.receipt_min_delivery_percent
        ),
        (600_000, 10, 50)
    );
    assert_eq!(
        (
            defaults.receipt_peer_margin_percent,
            defaults.receipt_grace_ms,
            defaults.receipt_min_coverage_percent
        ),
        (25, 900_000, 50)
    );
    assert_eq!(
        (
            defaults.conversion_half_life_ms,
            defaults.conversion_min_count,
            defaults.conversion_peer_margin_percent,
            defaults.conversion_min_percent
        ),
        (3_600_000, 20, 35, 0)
    );
    assert_eq!(
        (defaults.budget.percent, defaults.budget.min_per_second, defaults.budget.burst),
        (20, 1.0, 20)
    );
    let file: File = toml::from_str(
        "[health]\nfailure_percentage = 80\n[health.budget]\npercent = 10\nextra_spend_per_hour = { \"*\" = 5.0, NG = 0.5 }\n",
    )
    .unwrap();
    assert!(HealthPolicy::try_new(&file.health).is_ok());
}

#[test]
fn validation_names_the_key() {
    let cases = [
        ("failure_percentage = 0", "health.failure_percentage: must be between 1 and 100"),
        (
            "failure_percentage_min_requests = 0",
            "health.failure_percentage_min_requests: must be at least 1",
        ),
        ("window_ms = 10", "health.window_ms: must be between 600 and 3600000"),
        ("latency_tau_ms = 0", "health.latency_tau_ms: must be between 1 and 3600000"),
        (
            "receipt_min_delivery_percent = 101",
            "health.receipt_min_delivery_percent: must be between 0 and 100",
        ),
        ("budget = { percent = 200 }", "health.budget.percent: must be between 0 and 100"),
        ("consecutive_failures = 0", "health.consecutive_failures: must be at least 1"),
        ("base_ejection_ms = 0", "health.base_ejection_ms: must be between 1 and 86400000"),
        ("max_ejection_ms = 86400001", "health.max_ejection_ms: must be between 1 and 86400000"),
        ("trial_timeout_ms = 0", "health.trial_timeout_ms: must be between 1 and 600000"),
        (
            "base_ejection_ms = 60000\nmax_ejection_ms = 30000",
            "health.max_ejection_ms: must be at least base_ejection_ms (60000)",
        ),
    ];
    for (body, expected) in cases {
        assert_eq!(health_section(body).unwrap_err(), expected, "{body}");
    }
    assert!(
        health_section("consecutive_failure = 3")
            .unwrap_err()
            .contains("unknown field `consecutive_failure`")
    );
}

/// One line per case; see `script.rs` for the language. Policy: 3 failures, 10 s base,
/// 60 s cap, 5 s trial lease.
const SCRIPTS: &[&str] = &[
    // The recent rate keeps what the latest attempts showed; its weight, and the provider's
    // pool, fade with time until the key is back on the constant prior (0.9, eight attempts).
    "policy failures=10; t=0 twilio ok x20; twilio 5xx x4; ranked twilio -> lo=0.75 hi=0.88 recent=0.82 provider=0.82; t=30 ranked twilio -> lo=0.75 hi=0.89 recent=0.82 provider=0.82; t=600 ranked twilio -> lo=0.75 hi=0.96 recent=0.90 provider=0.90",
    // Ejection after a run of provider faults.
    "t=0 twilio timeout; t=1 twilio 5xx; status twilio -> healthy; t=2 twilio timeout; status twilio -> ejected@12x1",
    // A success resets the run.
    "t=0 twilio timeout; t=1 twilio timeout; t=2 twilio ok; t=3 twilio timeout; t=4 twilio timeout; status twilio -> healthy; t=5 twilio timeout; status twilio -> ejected@15x1",
    // Number-level verdicts neither count nor reset.
    "t=0 twilio timeout; t=1 twilio timeout; t=2 twilio invalid; twilio blocked; twilio fraud; status twilio -> healthy; t=3 twilio 5xx; status twilio -> ejected@13x1",
    // Auth, funds and a 429 without retry-after are provider faults.
    "t=0 twilio auth; t=1 twilio funds; t=2 twilio 429; status twilio -> ejected@12x1",
    // Other providers are unaffected.
    "t=0 twilio 5xx; twilio 5xx; twilio 5xx; status backup -> healthy; status twilio -> ejected@10x1",
    // Ejection ends only through probation: neither a success while ejected nor time alone restores.
    "t=0 twilio 5xx; twilio 5xx; twilio 5xx; t=5 twilio ok; status twilio -> ejected@10x1; t=10 status twilio -> probation; t=1000 status twilio -> probation",
    // A late failure while ejected does not lengthen the ejection.
    "t=0 twilio 5xx; twilio 5xx; twilio 5xx; t=5 twilio timeout; status twilio -> ejected@10x1",
    // Exactly one trial; its success restores and resets the run.
    "t=0 twilio 5xx; twilio 5xx; twilio 5xx; t=10 begin twilio; status twilio -> probation(trial); begin twilio -> skip; t=11 twilio ok; status twilio -> healthy; begin twilio; t=12 twilio 5xx; twilio 5xx; status twilio -> healthy",
    // A failed trial ejects again, for base x times.
    "t=0 twilio 5xx; twilio 5xx; twilio 5xx; t=10 begin twilio; t=11 twilio timeout; status twilio -> ejected@31x2; t=31 begin twilio; t=32 twilio 5xx; status twilio -> ejected@62x3",
    // Ejection time is capped.
    "policy failures=1 base=10 max=25 trial=5; t=0 twilio 5xx; status twilio -> ejected@10x1; t=10 twilio 5xx; status twilio -> ejected@30x2; t=30 twilio 5xx; status twilio -> ejected@55x3",
    // An unanswered trial's lease runs out so another trial can start.
    "t=0 twilio 5xx; twilio 5xx; twilio 5xx; t=10 begin twilio; t=14.9 begin twilio -> skip; status twilio -> probation(trial); t=15 status twilio -> probation; begin twilio; status twilio -> probation(trial); t=19 begin twilio -> skip",
    // A number-level verdict during probation frees the trial without deciding it.
    "t=0 twilio 5xx; twilio 5xx; twilio 5xx; t=10 begin twilio; t=11 twilio invalid; status twilio -> probation; begin twilio; t=12 twilio ok; status twilio -> healthy",
    // Healthy time forgives past ejections (one per base period), as Envoy's multiplier decays.
    "policy failures=1 base=10 max=60 trial=5; t=0 twilio 5xx; t=10 twilio 5xx; status twilio -> ejected@30x2; t=30 twilio ok; t=35 twilio 5xx; status twilio -> ejected@65x3",
    "policy failures=1 base=10 max=60 trial=5; t=0 twilio 5xx; t=10 twilio 5xx; t=30 twilio ok; t=50 twilio 5xx; status twilio -> ejected@60x1",
    // A 429 with retry-after rate-limits for that long, without counting toward ejection.
    "policy failures=1 base=10 max=60 trial=5; t=0 twilio 429/5; status twilio -> rate-limited@5; status backup -> healthy; t=5 status twilio -> healthy",
    // Retry-after is capped at max_ejection, and a shorter one never shortens a longer one.
    "t=0 twilio 429/1000; status twilio -> rate-limited@60; backup 429/30; t=1 backup 429/5; status backup -> rate-limited@30",
    // A rate limit during probation frees the trial and holds probation back until it ends.
    "t=0 twilio 5xx; twilio 5xx; twilio 5xx; t=10 begin twilio; t=11 twilio 429/4; status twilio -> rate-limited@15; t=15 status twilio -> probation; begin twilio",
    // The operator's switch is separate from health in both directions.
    "t=0 disable twilio; twilio 5xx; twilio 5xx; twilio 5xx; status twilio -> ejected@10x1; enable twilio; status twilio -> ejected@10x1",
    "t=0 disable twilio; status twilio -> healthy; begin twilio -> skip; drain twilio; begin twilio; enable twilio; begin twilio",
    // Reload keeps health by id and applies the new policy from then on.
    "t=0 twilio 5xx; twilio 5xx; twilio 5xx; reload failures=5 base=20 max=100 trial=5; status twilio -> ejected@10x1; t=10 twilio 5xx; status twilio -> ejected@50x2",
    "t=0 twilio@GB/voice 5xx x3; reload failures=5; status twilio@GB/voice -> ejected@10x1",
    // Keys are (provider, country, channel): a failure in one place is not a failure elsewhere.
    "t=0 twilio 5xx x3; status twilio -> ejected@10x1; status twilio@GB -> healthy; status twilio/voice -> healthy",
    // ... but a rate limit is the provider's, whatever key answered it.
    "t=0 twilio@GB 429/5; status twilio -> rate-limited@5; status twilio@FR/voice -> rate-limited@5; status backup -> healthy",
    // Failure-percentage ejection catches a brownout that never makes a run of failures.
    "policy failures=100 pct=50 minreq=10; t=0 twilio ok x5; twilio 5xx x4; status twilio -> healthy; twilio 5xx; status twilio -> ejected@10x1; cause twilio -> failure_percentage",
    "policy failures=100 pct=50 minreq=10; t=0 twilio ok; twilio 5xx; twilio ok; twilio 5xx; twilio ok; twilio 5xx; twilio ok; twilio 5xx; twilio ok; status twilio -> healthy; twilio 5xx; status twilio -> ejected@10x1",
    "policy failures=100 pct=80 minreq=10; t=0 twilio ok x2; twilio 5xx x7; status twilio -> healthy; twilio 5xx; cause twilio -> failure_percentage",
    // The window is time-bucketed: failures older than the window no longer count.
    "policy failures=100 pct=50 minreq=10 window=60; t=0 twilio 5xx x9; rates twilio -> s=0.00 d=1.00 n=9; t=61 rates twilio -> s=0.40 d=1.00 n=0; twilio 5xx; status twilio -> healthy",
    // Ejection clears the counts, so the trial is judged afresh; recovery clears them again.
    "policy failures=3; t=0 twilio ok; twilio 5xx x3; cause twilio -> consecutive_failures; rates twilio -> s=0.57 d=1.00 n=0; t=10 begin twilio; twilio ok; rates twilio -> s=0.66 d=1.00 n=1; cause twilio -> none",
    "t=0 twilio 5xx x3; t=10 begin twilio; twilio 5xx; cause twilio -> trial_failed",
    // Peak-EWMA: a slower sample is believed at once, a faster one over τ; the prior counts as one
    // sample; fast refusals are not latency samples, timeouts are.
    "policy tau=10 prior=1; latency twilio -> 1000; t=0 twilio ok 200ms; latency twilio -> 600; twilio ok 900ms; latency twilio -> 900; t=10 twilio ok 100ms; latency twilio -> 394; t=20 twilio timeout 1200ms; latency twilio -> 1200",
    "policy prior=1; t=0 backup 5xx 5ms x2; latency backup -> 1000; backup ok 50ms x19; latency backup -> 98",
    // Receipts: undelivered for a provider reason costs delivery rate and, sustained, ejects.
    // Alone in its country, a key is held to the floor: 2 of 10 delivered is clearly below 50 %.
    "policy receipts=10 delivery=50; t=0 twilio ok x10; twilio delivered x2; twilio undelivered x7; rates twilio -> s=1.00 d=0.22 n=10; status twilio -> healthy; twilio undelivered; status twilio -> ejected@10x1; cause twilio -> undelivered",
    // 4 of 10 is not clearly below it.
    "policy receipts=10 delivery=50; t=0 twilio ok x10; twilio delivered x4; twilio undelivered x6; status twilio -> healthy",
    // Number-level receipts are route evidence too: a provider filtering a whole country...
    "policy receipts=10 delivery=50; t=0 twilio undelivered-invalid x30; rates twilio -> s=0.90 d=0.00 n=0; status twilio -> ejected@10x1; cause twilio -> undelivered",
    // ...unless its peers fare no better there: then the numbers are the problem.
    "policy receipts=10 delivery=50; t=0 twilio ok; backup ok; backup delivered x2; backup undelivered-invalid x28; twilio undelivered-invalid x30; status twilio -> healthy",
    // Ejection does not clear receipts: after the trial's acceptance, the next poor receipt ejects again.
    "policy receipts=10 delivery=50 base=10; t=0 twilio undelivered x10; status twilio -> ejected@10x1; t=10 twilio ok; status twilio -> healthy; twilio undelivered; status twilio -> ejected@30x2",
    "policy delivery=0; t=0 twilio undelivered x30; status twilio -> healthy; rates twilio -> s=0.90 d=0.00 n=0",
    // Receipt counts decay with their half-life.
    "policy halflife=60 delivery=0; t=0 twilio ok; backup ok; backup delivered x4; twilio undelivered x4; rates twilio -> s=0.92 d=0.36 n=1; t=60 rates twilio -> s=0.91 d=0.42 n=0",
    // The retry budget: speculative sends (hedge, race) are a share of requests plus a floor; the
    // first send is free.
    "policy budget_pct=20 budget_min=0 budget_burst=2; begin twilio hedge; begin backup hedge; begin twilio hedge -> budget; begin twilio; request x4; begin twilio race -> budget; request; budget -> 1.0; begin twilio race; budget -> 0.0",
    "policy budget_pct=0 budget_min=2 budget_burst=1; t=0 begin twilio hedge; begin twilio hedge -> budget; t=0.5 begin twilio hedge",
    // A failover replaces a send that ended without an acceptance: it never draws on the budget,
    // however empty it is, so a burst of codes against a dead primary all reach the backup.
    "policy budget_pct=0 budget_min=0 budget_burst=1; t=0 begin twilio hedge; begin twilio hedge -> budget; begin backup failover; begin backup failover; begin twilio failover; budget -> 0.0",
    // A budget refusal claims nothing: the trial is still there for the next attempt.
    "policy budget_min=0 budget_burst=1; t=0 twilio 5xx x3; t=10 begin backup hedge; begin twilio hedge -> budget; status twilio -> probation; begin twilio; status twilio -> probation(trial)",
    // A country's spend cap bounds priced speculative sends, and never a failover.
    "policy spend=US:0.015 budget_min=0; price twilio 0.01; begin twilio hedge; begin twilio hedge -> spend; begin twilio failover; begin twilio@GB hedge",
    // Early trials of an ejected key: one a second across every caller, none for a healthy,
    // rate-limited or probation key; a success ends the ejection at once, a failure does not.
    "t=0 twilio 5xx x3; status twilio -> ejected@10x1; early twilio -> yes; early twilio -> no; t=0.9 early twilio -> no; t=1 early twilio -> yes; twilio 5xx; status twilio -> ejected@10x1; t=2 early twilio -> yes; twilio ok; status twilio -> healthy",
    "t=0 early twilio -> no; twilio 429/5; early twilio -> no",
    "t=0 twilio 5xx x3; t=11 status twilio -> probation; early twilio -> no",
    // Abandoning an attempt frees the trial it held, and records nothing.
    "t=0 twilio 5xx x3; t=10 begin twilio; status twilio -> probation(trial); abandon twilio; status twilio -> probation; begin twilio; status twilio -> probation(trial)",
];

#[test]
fn scripts() {
    let failures: Vec<String> = SCRIPTS
        .iter()
        .filter_map(|line| {
            std::panic::catch_unwind(|| script::run(line)).err().map(|panic| {
                panic.downcast_ref::<String>().cloned().unwrap_or_else(|| line.to_string())
            })
        })
        .collect();
    assert!(failures.is_empty(), "{} script(s) failed:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn snapshot_lists_known_keys_in_order() {
    let now = Instant::now();
    let mut book = HealthBook::new(script_policy());
    let timeout = script::parse_outcome("timeout").unwrap();
    book.record(&us_sms("twilio"), &timeout, Duration::from_millis(1_200), now);
    book.record_receipt(&us_sms("backup"), Delivery::Delivered, now);
    let mut switches = OperatorSwitches::new();
    switches.set(&provider("backup"), OperatorState::Draining);
    let rows = book.snapshot(&switches, now);
    let summary: Vec<(String, &str, &str, u32, u32)> = rows
        .iter()
        .map(|row| {
            (
                row.key.to_string(),
                row.status.as_str(),
                row.operator.as_str(),
                row.consecutive_failures,
                row.failures,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("backup/US/sms".to_owned(), "healthy", "draining", 0, 0),
            ("twilio/US/sms".to_owned(), "healthy", "enabled", 1, 1),
        ]
    );
    assert_eq!(rows[0].estimate.delivery.receipts.good, 1.0);
    assert_eq!(
        rows[1].estimate.latency,
        Duration::from_millis(1_200),
        "a timeout peaks the estimate"
    );
    let providers = book.providers(&switches, now);
    assert_eq!(providers.len(), 1);
    assert_eq!(providers[0].operator, OperatorState::Draining);
}

#[test]
fn provider_status_is_the_worst_of_its_keys() {
    let now = Instant::now();
    let mut book = HealthBook::new(script_policy());
    let failure = script::parse_outcome("5xx").unwrap();
    let gb = HealthKey::new(provider("twilio"), Country::parse("GB").unwrap(), Channel::Sms);
    for _ in 0..3 {
        book.record(&gb, &failure, Duration::from_millis(5), now);
    }
    assert!(matches!(book.provider_status(&provider("twilio"), now), HealthStatus::Ejected { .. }));
    assert_eq!(book.status(&us_sms("twilio"), now), HealthStatus::Healthy);
    assert_eq!(book.provider_status(&provider("backup"), now), HealthStatus::Healthy);
}

#[test]
fn carry_over_keeps_only_providers_still_configured() {
    let now = Instant::now();
    let mut book = HealthBook::new(script_policy());
    let failure = script::parse_outcome("5xx").unwrap();
    let gb_voice =
        HealthKey::new(provider("twilio"), Country::parse("GB").unwrap(), Channel::Voice);
    for _ in 0..3 {
        book.record(&us_sms("twilio"), &failure, Duration::from_millis(5), now);
        book.record(&gb_voice, &failure, Duration::from_millis(5), now);
        book.record(&us_sms("vonage"), &failure, Duration::from_millis(5), now);
    }
    let mut switches = OperatorSwitches::new();
    switches.set(&provider("backup"), OperatorState::Disabled);
    switches.set(&provider("vonage"), OperatorState::Disabled);
    let policy = HealthPolicy::try_new(&HealthConfig::defaults()).unwrap();
    let kept = [provider("twilio"), provider("backup")];
    // A reload carries health and the operator's switches over alike.
    let reloaded = book.carry_over(policy.clone(), &kept);
    let reloaded_switches = switches.carry_over(&kept);
    assert_eq!(reloaded.policy(), &policy);
    for key in [us_sms("twilio"), gb_voice] {
        assert!(matches!(reloaded.status(&key, now), HealthStatus::Ejected { times: 1, .. }));
    }
    assert_eq!(reloaded_switches.state(&provider("backup")), OperatorState::Disabled);
    // vonage was removed from the config: a later config that adds it back starts fresh.
    assert_eq!(reloaded.status(&us_sms("vonage"), now), HealthStatus::Healthy);
    assert_eq!(reloaded_switches.state(&provider("vonage")), OperatorState::Enabled);
}
