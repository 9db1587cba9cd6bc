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

/// Two providers, alpha cheaper and capped at 5/s, and a surge to 10/s from 40 s to 60 s
/// (`otps` 360 over 100 s: 2/s outside). `over` is alpha's over_capacity kind.
fn morning_peak(over: &str, switchboard_cap: &str) -> Scenario {
    let text = format!(
        r#"
        name = "peak"
        description = "test"
        duration_s = 100

        [traffic]
        countries = {{ US = 1 }}
        surges = [{{ from_s = 40, until_s = 60, rate_multiplier = 5 }}]

        [providers.alpha]
        latency_ms = {{ median = 100, p99 = 300 }}
        prices.default = {{ sms = 0.01, voice_minute = 0.02 }}
        max_per_second = 5
        over_capacity = {{ kind = "{over}" }}

        [providers.beta]
        latency_ms = {{ median = 150, p99 = 400 }}
        prices.default = {{ sms = 0.03, voice_minute = 0.04 }}

        [switchboard.okta]
        deadline_ms = 2500

        [switchboard.guard]
        mode = "monitor"

        [switchboard.providers]
        alpha = {{ timeout_ms = 1200 {switchboard_cap} }}
        beta = {{ timeout_ms = 1200 }}

        [[switchboard.routes]]
        countries = ["*"]
        providers = ["alpha", "beta"]
        "#
    );
    Scenario::parse(&text).unwrap()
}

#[test]
fn at_its_cap_switchboard_moves_the_overflow_where_priority_queues_it() {
    let report = simulate(morning_peak("queue", ", max_per_second = 5"), 360, 1, &ALL).unwrap();
    let rendered = report.render();
    let switchboard = policy(&report, "switchboard");
    // The server's cap reached the server: alpha never saw a send beyond its account's 5/s,
    // and the surge's overflow went to beta.
    assert_eq!(switchboard.over_capacity_by_provider, [0, 0], "{rendered}");
    assert_eq!(switchboard.longest_queue_wait, Duration::ZERO, "{rendered}");
    assert!(switchboard.accepted_by_provider[1] >= 50, "{rendered}");
    assert_eq!(switchboard.within_deadline, 360, "{rendered}");
    // Static priority feeds alpha the whole surge: its queue grows, and so does the wait.
    let priority = policy(&report, "priority");
    assert!(priority.over_capacity_by_provider[0] >= 50, "{rendered}");
    assert!(priority.longest_queue_wait > report.deadline, "{rendered}");
    assert!(priority.within_deadline < 360 - 20, "{rendered}");
    assert!(priority.p99_to_acceptance > switchboard.p99_to_acceptance, "{rendered}");
    assert!(priority.accepted_by_provider[1] < 5, "queued sends are accepted: {rendered}");
    assert!(rendered.contains("over capacity priority     alpha "), "{rendered}");

    let again = simulate(morning_peak("queue", ", max_per_second = 5"), 360, 1, &ALL).unwrap();
    assert_eq!(without_wall_time(report), without_wall_time(again));
}

#[test]
fn without_the_cap_in_its_config_switchboard_queues_too() {
    // The emulated account's cap is a fact of the provider; the server only avoids it if told.
    let report = simulate(morning_peak("queue", ""), 360, 1, &[Policy::Switchboard]).unwrap();
    let switchboard = policy(&report, "switchboard");
    assert!(switchboard.over_capacity_by_provider[0] > 0, "{}", report.render());
}

#[test]
fn a_provider_that_refuses_beyond_its_cap_makes_priority_fail_over_per_send() {
    let report = simulate(morning_peak("refuse", ", max_per_second = 5"), 360, 1, &ALL).unwrap();
    let rendered = report.render();
    let priority = policy(&report, "priority");
    let refused = priority.over_capacity_by_provider[0];
    assert!(refused >= 50, "{rendered}");
    // Each refusal is a 429 and a second send to beta; nothing waits in a queue.
    assert!(priority.sends >= 360 + refused, "{rendered}");
    assert_eq!(priority.longest_queue_wait, Duration::ZERO, "{rendered}");
    assert_eq!(priority.within_deadline, 360, "{rendered}");
    let switchboard = policy(&report, "switchboard");
    assert_eq!(switchboard.over_capacity_by_provider, [0, 0], "{rendered}");
    assert!(switchboard.sends < priority.sends, "{rendered}");
}

#[test]
fn surge_and_capacity_errors_name_the_key() {
    let base = r#"
        name = "bad"
        description = "test"
        duration_s = 100
        [traffic]
        countries = { US = 1 }
        SURGES
        [providers.alpha]
        latency_ms = { median = 100, p99 = 300 }
        prices.default = { sms = 0.01, voice_minute = 0.02 }
        CAPACITY
        [switchboard.guard]
        mode = "monitor"
        [[switchboard.routes]]
        countries = ["*"]
        providers = ["alpha"]
    "#;
    let error = |surges: &str, capacity: &str| {
        let text = base.replace("SURGES", surges).replace("CAPACITY", capacity);
        format!("{:#}", Scenario::parse(&text).unwrap_err())
    };
    let surge = |from: f64, until: f64, multiplier: f64| {
        format!(
            "surges = [{{ from_s = {from}, until_s = {until}, rate_multiplier = {multiplier} }}]"
        )
    };
    let cases = [
        (surge(50.0, 150.0, 2.0), String::new(), "traffic.surges[0].until_s"),
        (surge(-1.0, 50.0, 2.0), String::new(), "traffic.surges[0].from_s"),
        (surge(10.0, 50.0, 0.0), String::new(), "traffic.surges[0].rate_multiplier"),
        (
            "surges = [{ from_s = 10, until_s = 50, rate_multiplier = 2 }, \
             { from_s = 40, until_s = 60, rate_multiplier = 3 }]"
                .to_owned(),
            String::new(),
            "traffic.surges: the surges from 10 s and from 40 s overlap",
        ),
        (String::new(), "max_per_second = 0".to_owned(), "providers.alpha.max_per_second"),
        (
            String::new(),
            "over_capacity = { kind = \"refuse\" }".to_owned(),
            "providers.alpha.over_capacity",
        ),
    ];
    for (surges, capacity, key) in cases {
        let message = error(&surges, &capacity);
        assert!(message.contains(key), "{key}: {message}");
    }
    let text = base.replace("SURGES", &surge(10.0, 50.0, 2.0)).replace("CAPACITY", "");
    assert!(Scenario::parse(&text).is_ok());
}

#[test]
fn handset_and_user_errors_name_the_key() {
    let base = r#"
        name = "bad"
        description = "test"
        duration_s = 100
        [traffic]
        countries = { US = 1 }
        [providers.alpha]
        latency_ms = { median = 100, p99 = 300 }
        prices.default = { sms = 0.01, voice_minute = 0.02 }
        HANDSETS
        [switchboard.guard]
        mode = "monitor"
        [[switchboard.routes]]
        countries = ["*"]
        providers = ["alpha"]
    "#;
    let users = "[users]\nentered_share = 0.9\nentry_delay_s = { median = 10, p99 = 30 }\n\
                 patience_s = { median = 40, p99 = 90 }\n";
    let phase =
        |fields: &str| format!("[[handset_phases]]\nprovider = \"alpha\"\nfrom_s = 10\n{fields}\n");
    let error = |section: &str| {
        // The extra sections go after the provider's keys, each a table of its own.
        let text = base.replace("HANDSETS", section);
        format!("{:#}", Scenario::parse(&text).unwrap_err())
    };
    let cases = [
        (
            "handsets = { delivered_share = 1.5 }".to_owned(),
            "providers.alpha.handsets.delivered_share",
        ),
        (
            "handsets = { receipt_delay_s = { median = 0, p99 = 1 } }".to_owned(),
            "providers.alpha.handsets.receipt_delay_s",
        ),
        ("handsets = { delivered = 0.5 }".to_owned(), "delivered"),
        ("handsets = { undelivered_receipt = \"lost\" }".to_owned(), "lost"),
        (phase("handsets = { lying_share = -1 }"), "handset_phases[0].handsets.lying_share"),
        (phase("until_s = 5\nhandsets = {}"), "handset_phases[0]: from_s"),
        (phase("countries = [\"USA\"]\nhandsets = {}"), "handset_phases[0].countries"),
        (
            phase("handsets = {}").replace("\"alpha\"", "\"zeta\""),
            "handset_phases[0].provider: \"zeta\" is not under [providers]",
        ),
        (users.replace("0.9", "2.0"), "users.entered_share"),
        (users.replace("p99 = 90", "p99 = 20"), "users.patience_s"),
        (format!("{users}max_resends = 9"), "users.max_resends"),
        (users.replace("entered_share = 0.9\n", ""), "entered_share"),
    ];
    for (section, key) in cases {
        let message = error(&section);
        assert!(message.contains(key), "{key}: {message}");
    }
    let events = base.replace("HANDSETS", "").replace(
        "[switchboard.guard]",
        "[switchboard.okta.events]\npath = \"/okta/events\"\n[switchboard.guard]",
    );
    let message = format!("{:#}", Scenario::parse(&events).unwrap_err());
    assert!(message.contains("switchboard.okta.events: add [users]"), "{message}");
    let good = base.replace(
        "HANDSETS",
        &format!("{}{users}", phase("countries = [\"US\"]\nhandsets = { delivered_share = 0.5 }")),
    );
    assert!(Scenario::parse(&good).is_ok(), "{good}");
}

/// A shipped scenario by name.
fn shipped(name: &str) -> Scenario {
    Scenario::load(name).unwrap()
}

#[test]
fn a_filtering_route_costs_priority_codes_that_switchboard_keeps() {
    let report =
        simulate(shipped("carrier-filtering"), 3_000, 1, &[Policy::Switchboard, Policy::Priority])
            .unwrap();
    let rendered = report.render();
    let (ours, theirs) = (policy(&report, "switchboard"), policy(&report, "priority"));
    assert!(ours.on_phone > theirs.on_phone, "{rendered}");
    assert!(ours.on_phone_pct() >= 99.0, "{rendered}");
    // Priority keeps sending IN's codes into the filter, so its users ask again, in vain.
    assert!(theirs.asked_again > 2 * ours.asked_again, "{rendered}");
    assert!(ours.phases[0].moved_away_after.is_some(), "{rendered}");
    assert_eq!(theirs.phases[0].moved_away_after, None, "{rendered}");
    // Accepted is not delivered: priority's figures for acceptance are perfect.
    assert_eq!(theirs.delivered, theirs.otps, "{rendered}");
}

#[test]
fn a_provider_whose_receipts_stop_keeps_its_traffic() {
    let report = simulate(shipped("receipts-lost"), 3_000, 1, &[Policy::Switchboard]).unwrap();
    let rendered = report.render();
    let shares = &policy(&report, "switchboard").phases[0];
    let (before, during) = (shares.before.unwrap(), shares.during.unwrap());
    assert!(before > 0.8, "{rendered}");
    assert!(during >= before * 0.95, "{rendered}");
    assert_eq!(shares.moved_away_after, None, "{rendered}");
    assert!(policy(&report, "switchboard").on_phone_pct() >= 99.0, "{rendered}");
}

#[test]
fn a_lying_route_is_found_by_conversions_alone() {
    let policies = [Policy::Switchboard, Policy::SwitchboardConversionsOnly, Policy::Priority];
    let report = simulate(shipped("lying-receipts"), 3_000, 1, &policies).unwrap();
    let rendered = report.render();
    let (ours, theirs) = (policy(&report, "switchboard"), policy(&report, "priority"));
    assert!(ours.on_phone > theirs.on_phone, "{rendered}");
    assert!(theirs.on_phone_pct() < 97.0, "{rendered}");
    // Every receipt says "delivered"; the codes users never enter move the traffic all the same.
    for name in ["switchboard", "sb-convert"] {
        let shares = &policy(&report, name).phases[0];
        assert!(shares.before.unwrap() > 0.5, "{name}: {rendered}");
        assert!(shares.moved_away_after.is_some(), "{name}: {rendered}");
    }
    assert!(rendered.contains("sb-convert"), "{rendered}");
}

#[test]
fn users_receipts_and_resends_replay_exactly_for_a_seed() {
    let run = |seed| {
        without_wall_time(simulate(shipped("carrier-filtering"), 1_500, seed, &ALL).unwrap())
    };
    let first = run(4);
    assert!(first.policies.iter().all(|p| p.resends > 0), "{}", first.render());
    assert_eq!(first, run(4));
    assert_ne!(first, run(5));
}
