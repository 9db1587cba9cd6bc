//! The simulator, small: a run is a function of its scenario and seed, failover shows in who
//! carried the traffic, and the accounting adds up. Virtual time only; nothing here is timed.

use std::time::Duration;

use switchboard::simulate::{Policy, Scenario, ScenarioReport, simulate};

const ALL: [Policy; 3] = [Policy::Switchboard, Policy::Priority, Policy::RoundRobin];

/// Two providers; `alpha_latency` and `fault` shape the primary.
fn scenario(alpha_latency: &str, fault: &str) -> Scenario {
    let text = format!(
        r#"
        name = "test"
        description = "test"
        duration_s = 200

        [traffic]
        countries = {{ US = 3, GB = 1 }}
        voice_share = 0.1

        [providers.alpha]
        latency_ms = {alpha_latency}
        prices.default = {{ sms = 0.01, voice_minute = 0.02 }}

        [providers.beta]
        latency_ms = {{ median = 150, p99 = 400 }}
        prices.default = {{ sms = 0.03, voice_minute = 0.04 }}

        {fault}

        [switchboard.okta]
        deadline_ms = 2500

        [switchboard.guard]
        mode = "monitor"

        [switchboard.providers]
        alpha = {{ timeout_ms = 1200 }}
        beta = {{ timeout_ms = 1200 }}

        [[switchboard.routes]]
        countries = ["*"]
        providers = ["alpha", "beta"]
        "#
    );
    Scenario::parse(&text).unwrap()
}

fn without_wall_time(mut report: ScenarioReport) -> ScenarioReport {
    for policy in &mut report.policies {
        policy.wall = Duration::ZERO;
    }
    report
}

fn policy<'r>(report: &'r ScenarioReport, name: &str) -> &'r switchboard::simulate::PolicyReport {
    report.policies.iter().find(|p| p.policy == name).unwrap()
}

#[test]
fn a_run_is_a_function_of_scenario_and_seed() {
    let shipped = || Scenario::load("flapping").unwrap();
    let first = without_wall_time(simulate(shipped(), 2_000, 7, &ALL).unwrap());
    let second = without_wall_time(simulate(shipped(), 2_000, 7, &ALL).unwrap());
    assert_eq!(first, second);
    let other_seed = without_wall_time(simulate(shipped(), 2_000, 8, &ALL).unwrap());
    assert_ne!(first, other_seed);
}

#[test]
fn an_outage_moves_the_traffic_to_the_healthy_provider() {
    let refused = r#"
        [[faults]]
        provider = "alpha"
        from_s = 0
        effect = { kind = "refused" }
    "#;
    let report = simulate(
        scenario("{ median = 100, p99 = 300 }", refused),
        2_000,
        1,
        &[Policy::Switchboard],
    )
    .unwrap();
    let switchboard = policy(&report, "switchboard");
    assert_eq!(switchboard.accepted_by_provider, [0, 2_000], "{}", report.render());
    assert_eq!(switchboard.within_deadline, 2_000, "{}", report.render());
    // Ejected after a few refusals: the primary is not tried for every OTP.
    assert!(switchboard.sends < 2_400, "{}", report.render());
}

#[test]
fn a_late_acceptance_after_failover_counts_as_a_paid_duplicate() {
    // alpha always accepts, but after 2 s: past the adapter's 1.2 s timeout, within Okta's
    // 2.5 s. Static priority fails over every time and every user gets two codes.
    let report = simulate(scenario("{ median = 2000, p99 = 2000 }", ""), 2_000, 3, &ALL).unwrap();
    let rendered = report.render();
    for policy in &report.policies {
        assert_eq!(policy.delivered + policy.undelivered, policy.otps, "{rendered}");
        assert!(policy.accepted_by_provider.iter().sum::<u64>() >= policy.delivered);
    }
    let priority = policy(&report, "priority");
    assert_eq!(priority.duplicated, priority.otps, "{rendered}");
    assert_eq!(priority.accepted_by_provider, [2_000, 2_000], "{rendered}");
    let paid = priority.total_cost / priority.delivered as f64;
    assert!(paid > 0.04 - 1e-9, "both sends are paid: {rendered}");
    // switchboard ejects the slow primary after a few timeouts, so only those few duplicate.
    let switchboard = policy(&report, "switchboard");
    assert!(switchboard.duplicated > 0, "{rendered}");
    assert!(switchboard.duplicated < priority.duplicated / 10, "{rendered}");
}
