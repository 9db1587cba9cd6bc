use std::time::{Duration, Instant};

use super::*;
use crate::script::{self, provider, script_policy};

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
fn validation_names_the_key() {
    let cases = [
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
];

#[test]
fn scripts() {
    for line in SCRIPTS {
        script::run(line);
    }
}

#[test]
fn snapshot_lists_known_providers_in_order() {
    let now = Instant::now();
    let mut book = HealthBook::new(script_policy());
    let timeout = script::parse_outcome("timeout").unwrap();
    book.record(&provider("twilio"), &timeout, now);
    book.set_operator_state(&provider("backup"), OperatorState::Draining);
    let rows = book.snapshot(now);
    assert_eq!(
        rows,
        [
            HealthSnapshot {
                key: HealthKey::new(provider("backup")),
                status: HealthStatus::Healthy,
                operator: OperatorState::Draining,
                consecutive_failures: 0,
            },
            HealthSnapshot {
                key: HealthKey::new(provider("twilio")),
                status: HealthStatus::Healthy,
                operator: OperatorState::Enabled,
                consecutive_failures: 1,
            },
        ]
    );
    assert_eq!(rows[0].status.as_str(), "healthy");
    assert_eq!(rows[0].operator.as_str(), "draining");
}

#[test]
fn carry_over_keeps_only_providers_still_configured() {
    let now = Instant::now();
    let mut book = HealthBook::new(script_policy());
    let failure = script::parse_outcome("5xx").unwrap();
    for _ in 0..3 {
        book.record(&provider("twilio"), &failure, now);
        book.record(&provider("vonage"), &failure, now);
    }
    book.set_operator_state(&provider("backup"), OperatorState::Disabled);
    book.set_operator_state(&provider("vonage"), OperatorState::Disabled);
    let policy = HealthPolicy::try_new(&HealthConfig::defaults()).unwrap();
    let kept = [provider("twilio"), provider("backup")];
    let reloaded = book.carry_over(policy, &kept);
    assert_eq!(reloaded.policy(), &policy);
    assert!(matches!(
        reloaded.status(&provider("twilio"), now),
        HealthStatus::Ejected { times: 1, .. }
    ));
    assert_eq!(reloaded.operator_state(&provider("backup")), OperatorState::Disabled);
    // vonage was removed from the config: a later config that adds it back starts fresh.
    assert_eq!(reloaded.status(&provider("vonage"), now), HealthStatus::Healthy);
    assert_eq!(reloaded.operator_state(&provider("vonage")), OperatorState::Enabled);
}
