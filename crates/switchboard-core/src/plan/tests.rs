use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use proptest::prelude::{Strategy as _, *};
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::*;
use crate::attempt::{AttemptKind, begin_attempt};
use crate::budget::RetryBudget;
use crate::domain::{Channel, Country, ProviderId};
use crate::health::{HealthConfig, HealthPolicy, HealthStatus};
use crate::outcome::{AttemptOutcome, Delivery, ErrorClass};
use crate::price::PriceConfig;
use crate::route::RouteConfig;
use crate::script::{self, catalog, parse_outcome, plain_candidate, provider};
use crate::spend::SpendBook;
use crate::switch::{OperatorState, OperatorSwitches};

/// One line per case; see `script.rs` for the language. Default route: every country, both
/// channels, `twilio` then `backup`; policy: 3 failures, 10 s base, 60 s cap, 5 s trial lease.
const SCRIPTS: &[&str] = &[
    "plan -> twilio, backup",
    "t=0 twilio timeout; t=1 twilio 5xx; t=2 twilio 5xx; plan -> backup | twilio:ejected@12",
    // Delivery evidence: a route problem ranks after every provider that delivers, even in the
    // operator's priority order; half the minimum count demotes, the full count ejects.
    "t=0 twilio ok x5; twilio undelivered x5; plan -> backup, twilio",
    "t=0 twilio ok x5; twilio undelivered x4; plan -> twilio, backup",
    "t=0 twilio ok x10; twilio undelivered x10; plan -> backup | twilio:ejected@10",
    "route * sms twilio,backup optimize=cost; t=0 twilio ok x5; twilio undelivered x5; plan -> backup, twilio",
    // Hours of good receipts do not hide a route that starts filtering: the latest ten say it.
    "t=0 twilio ok x10; twilio delivered x300; twilio undelivered x11; plan -> twilio, backup",
    "t=0 twilio ok x10; twilio delivered x300; twilio undelivered x12; plan -> backup | twilio:ejected@10",
    // The other country's traffic is untouched.
    "t=0 twilio ok x10; twilio undelivered x10; plan GB -> twilio, backup",
    // Conversions: compared with peers only (by default no floor), half of 20 demotes.
    "t=0 twilio ok; backup ok; twilio not-entered x10; plan -> twilio, backup",
    "t=0 twilio ok; backup ok; backup entered x10; twilio not-entered x9; twilio entered; plan -> backup, twilio",
    "t=0 twilio ok; backup ok; backup entered x20; twilio entered x2; twilio not-entered x18; plan -> backup | twilio:ejected@10",
    // Abandoned sign-ins everywhere punish nobody.
    "t=0 twilio ok; backup ok; backup entered x12; backup not-entered x8; twilio entered x11; twilio not-entered x9; plan -> twilio, backup",
    // A resend alone weighs half.
    "t=0 twilio ok; backup ok; backup entered x10; twilio superseded x18; plan -> twilio, backup",
    "t=0 twilio ok; backup ok; backup entered x10; twilio superseded x20; plan -> backup, twilio",
    // On probation the trial keeps its configured place.
    "t=0 twilio timeout; t=1 twilio 5xx; t=2 twilio 5xx; t=12 plan -> twilio(trial), backup",
    "route * sms backup,twilio; t=0 twilio timeout; t=1 twilio 5xx; t=2 twilio 5xx; t=12 plan -> backup, twilio(trial)",
    // Once the trial runs, no other request gets the provider until it is decided.
    "t=0 twilio 5xx; twilio 5xx; twilio 5xx; t=10 begin twilio; plan -> backup | twilio:trial-in-flight; t=11 twilio ok; plan -> twilio, backup",
    "t=0 twilio 5xx; twilio 5xx; twilio 5xx; t=10 begin twilio; t=11 twilio 5xx; plan -> backup | twilio:ejected@31",
    // Never eject the last candidate: fail open.
    "route * sms twilio; t=0 twilio 5xx; twilio 5xx; twilio 5xx; plan -> twilio(fail-open)",
    "t=0 twilio 5xx; twilio 5xx; twilio 5xx; t=1 backup 5xx; backup 5xx; backup 5xx; plan -> twilio(fail-open) | backup:ejected@11",
    // The fail-open pick is the exclusion that ends soonest, whatever its kind.
    "policy failures=1 base=10 max=60 trial=5; route * sms twilio,backup,vonage; t=0 twilio 5xx; t=10 twilio 5xx; t=11 backup 5xx; t=12 vonage 429/5; plan -> vonage(fail-open) | twilio:ejected@30, backup:ejected@21",
    "policy failures=1 base=10 max=60 trial=5; route * sms twilio,backup; t=0 twilio 5xx; t=10 begin twilio; t=11 backup 5xx; plan -> twilio(fail-open) | backup:ejected@21",
    // A fail-open send does not end the ejection, and dispatch may send it even during a trial.
    "route * sms twilio; t=0 twilio 5xx; twilio 5xx; twilio 5xx; t=1 twilio ok; status twilio -> ejected@10x1; t=10 begin twilio; plan -> twilio(fail-open); begin twilio",
    // A plain candidate planned before the trial started is skipped.
    "t=0 twilio 5xx; twilio 5xx; twilio 5xx; t=10 begin twilio; begin twilio -> skip",
    // Operator intent and channel support are never overridden.
    "route * sms,voice twilio,textonly; disable twilio; plan voice -> none | twilio:disabled, textonly:channel; plan sms -> textonly | twilio:disabled",
    "disable backup; t=0 twilio 5xx; twilio 5xx; twilio 5xx; plan -> twilio(fail-open) | backup:disabled",
    "drain twilio; plan -> backup | twilio:draining; enable twilio; plan -> twilio, backup",
    "drain twilio; drain backup; plan -> none | twilio:draining, backup:draining",
    "route * sms,voice textonly,twilio; plan voice -> twilio | textonly:channel; plan sms -> textonly, twilio",
    // Rate limits exclude until the provider's time.
    "t=0 twilio 429/5; plan -> backup | twilio:rate-limited@5; t=5 plan -> twilio, backup",
    // First matching rule in config order; no match, no plan.
    "route US,CA sms,voice twilio,backup; route * sms vonage; plan GB -> vonage; plan CA voice -> twilio, backup; plan GB voice -> no-rule",
    "route US sms twilio; plan GB sms -> no-rule; plan US voice -> no-rule; plan US sms -> twilio",
    // Purposes and number prefixes narrow a rule; a query without them matches only rules
    // without them.
    "route US sms vonage purposes=enrollment; route US sms textonly prefixes=1415,1628; route * sms twilio,backup; plan enrollment -> vonage; plan verification +14155550100 -> textonly; plan verification +12125550100 -> twilio, backup; plan -> twilio, backup; plan +16285550100 -> textonly",
    // Health is kept per (provider, country, channel): an outage in one place excludes only there.
    "t=0 twilio 5xx x3; plan -> backup | twilio:ejected@10; plan GB -> twilio, backup; plan voice -> twilio, backup",
    // A rate limit is the provider's answer for its whole account.
    "t=0 twilio@GB/voice 429/5; plan -> backup | twilio:rate-limited@5",
    // A resend demotes the provider of the previous attempt without excluding it.
    "plan avoid=twilio -> backup, twilio",
    "route * sms twilio; plan avoid=twilio -> twilio",
    "route * sms twilio,backup,vonage optimize=cost exploration=0; price twilio 0.01; price backup 0.02; price vonage 0.03; plan avoid=twilio -> backup, vonage, twilio",
    // Cost emphasis: cheapest first when all are healthy; price is per segment for SMS and per
    // minute for voice.
    "route * sms,voice twilio,backup,vonage optimize=cost exploration=0; price twilio 0.05 0.01; price backup 0.01 0.05; price vonage 0.03 0.03; plan -> backup, vonage, twilio; plan segments=3 -> backup, vonage, twilio; plan voice -> twilio, vonage, backup",
    // Country prices override the default.
    "route * sms twilio,backup optimize=cost exploration=0; price twilio 0.05; price twilio@GB 0.005; price backup 0.01; plan -> backup, twilio; plan GB -> twilio, backup",
    // A cheap provider failing half its attempts loses to a slightly dearer healthy one.
    "policy failures=100 minreq=100; route * sms twilio,backup optimize=cost exploration=0; price twilio 0.010; price backup 0.012; plan -> twilio, backup; twilio ok x8; backup ok x8; plan -> twilio, backup; twilio 5xx x8; plan -> backup, twilio",
    // Unpriced counts as the dearest priced candidate, never as free.
    "route * sms vonage,twilio,backup optimize=cost exploration=0; price twilio 0.02; price backup 0.01; plan -> backup, vonage, twilio",
    // Latency emphasis: the faster provider first; a timeout peaks the estimate at once.
    "route * sms twilio,backup optimize=latency exploration=0; twilio ok 300ms x5; backup ok 200ms x5; plan -> backup, twilio; t=1 backup timeout 1200ms; plan -> twilio, backup",
    // Reliability emphasis: undelivered receipts cost rank even when the API accepts everything.
    "policy delivery=0; route * sms twilio,backup optimize=reliability exploration=0; twilio ok x10; backup ok x10; plan -> twilio, backup; backup delivered x3; twilio undelivered x3; plan -> backup, twilio",
    // Weights express operator preference on top of the score.
    "route * sms twilio,backup optimize=reliability exploration=0 weights=backup:2; plan -> backup, twilio",
    // Exploration sends a bounded share of first attempts elsewhere, deterministically per seed.
    "seed 3; route * sms twilio,backup optimize=cost exploration=0.1; price twilio 0.01; price backup 0.012; plans 1000 -> backup:114, twilio:886",
    "route * sms twilio,backup optimize=cost exploration=0; price twilio 0.01; price backup 0.02; plans 1000 -> twilio:1000",
    // Exploration returns traffic to a recovered provider: ranked last on its prior latency, the
    // trial runs only when explored; once it proves fast it takes all the traffic back, and the
    // slower backup, which cannot beat it even optimistically, is no longer explored.
    "seed 1; route * sms backup,twilio optimize=latency exploration=0.05; t=0 twilio 5xx x3; backup ok 100ms x20; t=10 plan -> backup, twilio(trial); plans 1000 -> backup:959, twilio:41; begin twilio; twilio ok 50ms x20; plans 1000 -> twilio:1000",
    "route * sms backup,twilio optimize=latency exploration=0; t=0 twilio 5xx x3; backup ok 100ms x20; t=10 plans 1000 -> backup:1000",
    // An ejected provider's trial ranks on its provider's pooled rate, which still holds the
    // failures that ejected it: with exploration off, the trial waits for a failover.
    "route * sms twilio,backup optimize=cost exploration=0; price twilio 0.01; price backup 0.02; t=0 twilio 5xx x3; backup ok x20; plan -> backup | twilio:ejected@10; t=10 plan -> backup, twilio(trial)",
    // A handful of lucky answers does not outrank a proven provider (ranking uses the success
    // rate's lower bound); forty do.
    "route * sms twilio,backup optimize=cost exploration=0; price twilio 0.010; price backup 0.0115; backup ok x200; twilio ok x3; plan -> backup, twilio; twilio ok x40; plan -> twilio, backup",
    // A brownout shows within a few answers, whatever the minute of good history before it.
    "policy failures=10; route * sms twilio,backup optimize=cost exploration=0; price twilio 0.010; price backup 0.012; twilio ok x200; backup ok x20; plan -> twilio, backup; twilio 5xx x4; plan -> backup, twilio; rates twilio -> s=0.97 d=1.00 n=204; ranked twilio -> lo=0.82 hi=0.88 recent=0.82 provider=0.82",
    // A provider failing in one country starts lower in a country where it has no history yet.
    "route * sms twilio,backup optimize=cost exploration=0; price twilio 0.010; price backup 0.012; plan GB -> twilio, backup; twilio 5xx x2; plan GB -> backup, twilio",
    // ...but a provider failing in one country does not lose a country where it is busy and well.
    "policy failures=10; route * sms twilio,backup optimize=cost exploration=0; price twilio 0.010; price backup 0.012; twilio ok x100; backup ok x20; twilio@GB 5xx x8; plan -> twilio, backup; plan GB -> backup, twilio",
    // Exploration skips a provider that could not win even on its most hopeful estimate, until
    // what it last showed has faded.
    "seed 3; route * sms twilio,backup optimize=cost exploration=0.1; price twilio 0.01; price backup 0.012; backup 5xx x2; plans 1000 -> twilio:1000; t=600 plans 1000 -> backup:98, twilio:902",
    // Strategies and their parameters.
    "route * sms twilio,backup strategy=hedge hedge=250; strategy -> hedge 250ms (fixed)",
    "route * sms twilio,backup,vonage strategy=race width=3; strategy -> race 3; t=0 twilio 5xx x3; strategy -> race 2",
    "route * sms twilio,backup; strategy -> cascade; strategy GB voice -> cascade",
    // A learned hedge delay: the prior, then the Peak-EWMA estimate, then the window's quantile,
    // clamped.
    "route * sms twilio,backup strategy=hedge hedge=auto; strategy -> hedge 1000ms (learned); twilio ok 300ms x4; strategy -> hedge 440ms (learned); twilio ok 180ms x4; twilio ok 700ms x2; strategy -> hedge 800ms (learned)",
    "route * sms twilio,backup strategy=hedge quantile=0.5 hedge_min=150 hedge_max=600; twilio ok 20ms x10; strategy -> hedge 150ms (learned); twilio timeout 1200ms x10; strategy -> hedge 600ms (learned)",
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
fn plan_names_the_rule() {
    let mut route = RouteConfig::new(vec!["*".into()], vec!["sms".into()], vec!["twilio".into()]);
    route.name = Some("everywhere".into());
    let table = RouteTable::try_new(&[route], &PriceConfig::empty(), &catalog()).unwrap();
    let book = HealthBook::new(script::script_policy());
    let query = RouteQuery::new(Country::parse("NZ").unwrap(), Channel::Sms);
    let switches = OperatorSwitches::new();
    let plan =
        plan(&table, &book, &switches, &query, Instant::now(), &mut StdRng::seed_from_u64(0));
    let rule = plan.rule.unwrap();
    assert_eq!((rule.index, &*rule.name), (0, "everywhere"));
    assert_eq!(ExclusionReason::TrialInFlight.as_str(), "trial_in_flight");
    assert!(!ExclusionReason::Disabled.is_health());
}

#[test]
fn the_score_breakdown_adds_up_and_notes_priors() {
    let mut route = RouteConfig::new(
        vec!["*".into()],
        vec!["sms".into()],
        vec!["twilio".into(), "backup".into()],
    );
    route.optimize = Optimize::Cost;
    route.exploration = Some(0.0);
    let prices: PriceConfig = toml::from_str("[twilio]\ndefault = { sms = 0.02 }\n").unwrap();
    let table = RouteTable::try_new(&[route], &prices, &catalog()).unwrap();
    let mut book = HealthBook::new(script::script_policy());
    let now = Instant::now();
    let ok = parse_outcome("ok").unwrap();
    book.record(&script::us_sms("twilio"), &ok, Duration::from_millis(200), now);
    let plan = plan(
        &table,
        &book,
        &OperatorSwitches::new(),
        &RouteQuery::new(script::us(), Channel::Sms),
        now,
        &mut StdRng::seed_from_u64(0),
    );
    assert_eq!(plan.optimize, Optimize::Cost);
    for candidate in &plan.candidates {
        let score = &candidate.score;
        let sum = score.health_term + score.latency_term + score.price_term + score.weight_term;
        assert!((score.total - sum).abs() < 1e-12, "{score:?}");
    }
    let backup = plan.candidates.iter().find(|c| c.provider().as_str() == "backup").unwrap();
    assert_eq!(backup.score.notes, [RankNote::LatencyPrior, RankNote::Unpriced]);
    assert_eq!(backup.score.price, None);
    let twilio = plan.candidates.iter().find(|c| c.provider().as_str() == "twilio").unwrap();
    assert_eq!(twilio.score.price, Some(0.02));
    assert!(twilio.score.notes.is_empty());
    // The record carries the same order and flags, and no phone number.
    let record = plan.record();
    assert_eq!(record.strategy, "cascade");
    assert_eq!(record.candidates.len(), 2);
    assert_eq!(record.candidates[0].provider, plan.candidates[0].key.provider().clone());
}

#[test]
fn explain_lists_the_rules_checked_and_the_health_rows() {
    let mut first = RouteConfig::new(vec!["GB".into()], vec!["sms".into()], vec!["vonage".into()]);
    first.name = Some("uk".into());
    let mut second =
        RouteConfig::new(vec!["US".into()], vec!["sms".into()], vec!["textonly".into()]);
    second.prefixes = vec!["1415".into()];
    let third = RouteConfig::new(
        vec!["*".into()],
        vec!["sms".into()],
        vec!["twilio".into(), "backup".into()],
    );
    let table =
        RouteTable::try_new(&[first, second, third], &PriceConfig::empty(), &catalog()).unwrap();
    let mut book = HealthBook::new(script::script_policy());
    let now = Instant::now();
    let failure = parse_outcome("5xx").unwrap();
    book.record(&script::us_sms("twilio"), &failure, Duration::from_millis(5), now);
    let destination = crate::destination::Destination::new("+12125550100".into(), script::us());
    let query = RouteQuery::for_destination(&destination, Channel::Sms);
    let live = crate::explain::Live {
        health: &book,
        switches: &OperatorSwitches::new(),
        budget: &RetryBudget::new(book.policy().budget().clone()),
        spend: &SpendBook::default(),
    };
    let explanation =
        crate::explain::explain(&table, live, &query, now, &mut StdRng::seed_from_u64(0));
    let checks: Vec<(&str, Option<&str>)> = explanation
        .rules
        .iter()
        .map(|check| (&*check.rule.name, check.mismatch.map(|m| m.as_str())))
        .collect();
    assert_eq!(
        checks,
        [("uk", Some("country")), ("routes[1]", Some("prefix")), ("routes[2]", None)]
    );
    let rows: Vec<(String, u32)> =
        explanation.health.iter().map(|row| (row.key.to_string(), row.failures)).collect();
    assert_eq!(rows, [("twilio/US/sms".to_owned(), 1), ("backup/US/sms".to_owned(), 0)]);
    assert_eq!(explanation.plan.candidates.len(), 2);
    assert!(!format!("{explanation:?}").contains("2125550100"), "the number never prints");
}

/// The providers of the property tests' world, by index.
const PROVIDERS: [&str; 4] = ["twilio", "backup", "vonage", "textonly"];

#[derive(Clone, Debug)]
enum Op {
    Advance(u64),
    Record(usize, &'static str, u64),
    Receipt(usize, bool),
    Begin(usize, AttemptKind),
    Request,
    Operator(usize, OperatorState),
}

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    let outcome = prop::sample::select(
        &["ok", "ok", "timeout", "5xx", "5xx", "invalid", "fraud", "429", "429/3", "429/40"][..],
    );
    let operator = prop::sample::select(
        &[OperatorState::Enabled, OperatorState::Draining, OperatorState::Disabled][..],
    );
    let kind = prop::sample::select(
        &[AttemptKind::First, AttemptKind::Failover, AttemptKind::Hedge, AttemptKind::Race][..],
    );
    prop_oneof![
        3 => (0u64..15_000).prop_map(Op::Advance),
        6 => (0..PROVIDERS.len(), outcome, 1u64..2_000).prop_map(|(index, outcome, ms)| Op::Record(index, outcome, ms)),
        2 => (0..PROVIDERS.len(), any::<bool>()).prop_map(|(index, delivered)| Op::Receipt(index, delivered)),
        3 => (0..PROVIDERS.len(), kind).prop_map(|(index, kind)| Op::Begin(index, kind)),
        1 => Just(Op::Request),
        1 => (0..PROVIDERS.len(), operator).prop_map(|(index, state)| Op::Operator(index, state)),
    ]
}

fn policy() -> impl proptest::strategy::Strategy<Value = HealthPolicy> {
    (1u32..4, 1_000u64..10_000, 0u64..40_000, 500u64..5_000, 1u32..=100, 1u32..10, 0u32..=100)
        .prop_map(|(failures, base, extra, trial, percentage, min_requests, delivery)| {
            let mut config = HealthConfig::defaults();
            config.consecutive_failures = failures;
            config.base_ejection_ms = base;
            config.max_ejection_ms = base + extra;
            config.trial_timeout_ms = trial;
            config.failure_percentage = percentage;
            config.failure_percentage_min_requests = min_requests;
            config.receipt_min_count = 3;
            config.receipt_min_delivery_percent = delivery;
            config.budget.burst = 3;
            config.budget.min_per_second = 0.5;
            HealthPolicy::try_new(&config).unwrap()
        })
}

/// A rule over a non-empty ordered subset of the providers (textonly only matters for voice),
/// with any emphasis and some exploration.
fn rule() -> impl proptest::strategy::Strategy<Value = RouteConfig> {
    let optimize = prop::sample::select(
        &[Optimize::Priority, Optimize::Reliability, Optimize::Latency, Optimize::Cost][..],
    );
    Just(PROVIDERS.to_vec())
        .prop_shuffle()
        .prop_flat_map(|shuffled| (1..=shuffled.len()).prop_map(move |n| shuffled[..n].to_vec()))
        .prop_flat_map(move |providers| (Just(providers), optimize.clone(), 0.0f64..0.5))
        .prop_map(|(providers, optimize, exploration)| {
            let mut route = RouteConfig::new(
                vec!["*".into()],
                vec!["sms".into(), "voice".into()],
                providers.iter().map(|name| (*name).to_owned()).collect(),
            );
            route.optimize = optimize;
            route.exploration = optimize.is_scored().then_some(exploration);
            route
        })
}

/// What the property run remembers about one key's ejection episode.
#[derive(Default)]
struct Episode {
    /// The latest `until` seen while the key was ejected; `None` when it is not in an episode.
    until: Option<Instant>,
    /// A success was recorded once the ejection time had passed: a successful probation trial.
    /// (A rate limit may still hide the recovery for a while.)
    is_trial_passed: bool,
}

fn check_plan(
    table: &RouteTable,
    book: &HealthBook,
    switches: &OperatorSwitches,
    query: &RouteQuery,
    now: Instant,
    seed: u64,
) -> Result<(), TestCaseError> {
    let plan = plan(table, book, switches, query, now, &mut StdRng::seed_from_u64(seed));
    // Same seed, same plan.
    let again = super::plan(table, book, switches, query, now, &mut StdRng::seed_from_u64(seed));
    prop_assert_eq!(&plan, &again);
    let rule = table.find(query).expect("the rule covers everything").rule;
    let mut seen: Vec<&ProviderId> = plan.candidates.iter().map(Candidate::provider).collect();
    seen.sort();
    seen.dedup();
    prop_assert_eq!(seen.len(), plan.candidates.len(), "a provider repeated in {:?}", plan);
    let explored = plan.candidates.iter().filter(|candidate| candidate.is_exploration).count();
    prop_assert!(explored <= 1);
    if explored == 1 {
        prop_assert!(plan.candidates[0].is_exploration, "only the first is ever explored");
        prop_assert!(rule.optimize().is_scored());
    }
    for candidate in &plan.candidates {
        prop_assert_eq!(candidate.key.country(), query.country);
        prop_assert_eq!(candidate.key.channel(), query.channel);
        prop_assert!(candidate.score.total.is_finite(), "{:?}", candidate.score);
        prop_assert!(switches.state(candidate.provider()).is_enabled(), "not enabled: {:?}", plan);
        prop_assert!(
            table.catalog().supports(candidate.provider(), query.channel),
            "cannot carry: {:?}",
            plan
        );
        let status = book.status(&candidate.key, now);
        let is_open_for_trial = status == (HealthStatus::Probation { trial_in_flight: false });
        prop_assert_eq!(candidate.is_trial, is_open_for_trial);
        if candidate.is_fail_open {
            prop_assert_eq!(plan.candidates.len(), 1, "fail open only when nothing else is left");
            let is_usable = status == HealthStatus::Healthy || is_open_for_trial;
            prop_assert!(!is_usable, "failed open to a usable provider: {:?}", plan);
        }
    }
    // Route problems (receipts or conversions clearly worse than peers') come after every
    // provider that delivers, in every mode.
    let problems: Vec<bool> = plan
        .candidates
        .iter()
        .map(|candidate| candidate.score.estimate.delivery.is_route_problem())
        .collect();
    prop_assert!(problems.windows(2).all(|pair| pair[0] <= pair[1]), "{:?}", plan);
    if !rule.optimize().is_scored() {
        // Priority keeps the configured order among providers that deliver, and among the rest.
        let positions: Vec<(bool, usize)> = plan
            .candidates
            .iter()
            .zip(&problems)
            .map(|(candidate, is_problem)| {
                (
                    *is_problem,
                    rule.providers().iter().position(|p| p == candidate.provider()).unwrap(),
                )
            })
            .collect();
        prop_assert!(positions.windows(2).all(|pair| pair[0] < pair[1]), "{:?}", plan);
    }
    // Every provider of the rule is accounted for exactly once.
    let mut accounted: Vec<&ProviderId> = plan
        .candidates
        .iter()
        .map(Candidate::provider)
        .chain(plan.excluded.iter().map(|exclusion| &exclusion.provider))
        .collect();
    accounted.sort();
    let mut expected: Vec<&ProviderId> = rule.providers().iter().collect();
    expected.sort();
    prop_assert_eq!(accounted, expected);
    // Never empty while an enabled provider can carry the channel.
    let has_usable = rule.providers().iter().any(|provider| {
        switches.state(provider).is_enabled() && table.catalog().supports(provider, query.channel)
    });
    prop_assert_eq!(!plan.candidates.is_empty(), has_usable, "{:?}", plan);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(384))]

    /// Plans never repeat a provider, never include a disabled, drained or incapable one, are
    /// never empty while the rule has a usable provider, and are the same for the same seed;
    /// ejection ends only through probation; the budget never goes negative; the success rate
    /// ranking reads stays within its bounds and moves the right way with each outcome.
    #[test]
    fn planning_and_health_invariants(
        policy in policy(),
        route in rule(),
        seed in any::<u64>(),
        ops in prop::collection::vec(op(), 1..80),
    ) {
        let table = RouteTable::try_new(&[route], &PriceConfig::empty(), &catalog()).unwrap();
        let mut budget = RetryBudget::new(policy.budget().clone());
        let mut spend = SpendBook::default();
        let mut book = HealthBook::new(policy);
        let mut switches = OperatorSwitches::new();
        let mut now = Instant::now();
        let mut episodes: BTreeMap<&str, Episode> = BTreeMap::new();
        let country = Country::parse("BR").unwrap();
        let key = |index: usize| HealthKey::new(provider(PROVIDERS[index]), country, Channel::Sms);
        for op in ops {
            match op {
                Op::Advance(millis) => now += Duration::from_millis(millis),
                Op::Record(index, outcome, millis) => {
                    let outcome = parse_outcome(outcome).unwrap();
                    let episode = episodes.entry(PROVIDERS[index]).or_default();
                    let is_success = matches!(outcome, AttemptOutcome::Accepted { .. });
                    if is_success && episode.until.is_some_and(|until| now >= until) {
                        episode.is_trial_passed = true;
                    }
                    let before = (book.status(&key(index), now), book.estimate(&key(index), now));
                    book.record(&key(index), &outcome, Duration::from_millis(millis), now);
                    let after = (book.status(&key(index), now), book.estimate(&key(index), now));
                    // Outside ejection episodes (which clear a key's counts), a success never
                    // lowers the success rate ranking reads, and a counted failure never raises it.
                    if before.0 == HealthStatus::Healthy && after.0 == HealthStatus::Healthy {
                        let (was, is) = (before.1.success_lower, after.1.success_lower);
                        if is_success {
                            prop_assert!(is >= was - 1e-12, "a success lowered {was} to {is}");
                        } else {
                            prop_assert!(is <= was + 1e-12, "a failure raised {was} to {is}");
                        }
                    }
                }
                Op::Receipt(index, delivered) => {
                    let delivery = if delivered { Delivery::Delivered } else { Delivery::Undelivered(ErrorClass::Transient) };
                    book.record_receipt(&key(index), delivery, now);
                }
                Op::Request => budget.deposit(now),
                Op::Begin(index, kind) => {
                    let query = RouteQuery::new(country, Channel::Sms);
                    let candidate = plan(&table, &book, &switches, &query, now, &mut StdRng::seed_from_u64(seed))
                        .candidates
                        .into_iter()
                        .find(|candidate| candidate.provider().as_str() == PROVIDERS[index])
                        .unwrap_or_else(|| plain_candidate(&book, key(index), now));
                    let status_before = book.status(&candidate.key, now);
                    let budget_before = budget.balance(now);
                    let admission = begin_attempt(&mut book, &mut budget, &mut spend, &switches, &candidate, kind, now);
                    let is_trial_running = status_before == (HealthStatus::Probation { trial_in_flight: true });
                    if is_trial_running && !candidate.is_fail_open {
                        prop_assert!(!admission.is_go(), "a second trial started");
                    }
                    if admission.is_budget() {
                        prop_assert!(kind.is_speculative());
                        prop_assert_eq!(book.status(&candidate.key, now), status_before, "a refused attempt claimed the trial");
                    }
                    if admission.is_go() && kind.is_speculative() {
                        prop_assert!(budget_before >= 1.0);
                    }
                }
                Op::Operator(index, state) => switches.set(&provider(PROVIDERS[index]), state),
            }
            prop_assert!(budget.balance(now) >= 0.0, "the budget went negative");
            for channel in Channel::ALL {
                check_plan(&table, &book, &switches, &RouteQuery::new(country, channel), now, seed)?;
            }
            for (index, name) in PROVIDERS.iter().enumerate() {
                let estimate = book.estimate(&key(index), now);
                prop_assert!(0.0 <= estimate.success_lower, "{estimate:?}");
                prop_assert!(estimate.success_lower <= estimate.success_rate + 1e-12, "{estimate:?}");
                prop_assert!(estimate.success_lower <= estimate.success_upper + 1e-12, "{estimate:?}");
                prop_assert!(estimate.success_upper <= 1.0, "{estimate:?}");
                let episode = episodes.entry(name).or_default();
                match book.status(&key(index), now) {
                    HealthStatus::Ejected { until, .. } => {
                        episode.until = Some(until);
                        episode.is_trial_passed = false;
                    }
                    HealthStatus::Probation { .. } => prop_assert!(episode.until.is_some(), "probation without ejection"),
                    HealthStatus::RateLimited { .. } => {}
                    HealthStatus::Healthy => {
                        if episode.until.take().is_some() {
                            prop_assert!(episode.is_trial_passed, "{} left ejection without a successful trial", name);
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn a_provider_is_explored_at_most_once_per_window_bucket() {
    let mut route = RouteConfig::new(
        vec!["*".into()],
        vec!["sms".into()],
        vec!["twilio".into(), "backup".into()],
    );
    route.optimize = Optimize::Cost;
    route.exploration = Some(0.5);
    let prices: PriceConfig =
        toml::from_str("[twilio]\ndefault = { sms = 0.01 }\n[backup]\ndefault = { sms = 0.011 }\n")
            .unwrap();
    let table = RouteTable::try_new(&[route], &prices, &catalog()).unwrap();
    let mut budget = RetryBudget::new(script::script_policy().budget().clone());
    let mut spend = SpendBook::default();
    let mut book = HealthBook::new(script::script_policy());
    let switches = OperatorSwitches::new();
    let mut rng = StdRng::seed_from_u64(0);
    let query = RouteQuery::new(script::us(), Channel::Sms);
    let start = Instant::now();
    // Sends every 100 ms for a minute, each dispatched as planned. No outcome is recorded, so
    // backup stays worth exploring throughout: only the rate limit holds exploration back.
    let mut explorations: Vec<Duration> = Vec::new();
    for tick in 0..600u32 {
        let now = start + Duration::from_millis(100) * tick;
        let plan = plan(&table, &book, &switches, &query, now, &mut rng);
        let first = &plan.candidates[0];
        assert!(
            begin_attempt(
                &mut book,
                &mut budget,
                &mut spend,
                &switches,
                first,
                AttemptKind::First,
                now
            )
            .is_go()
        );
        if first.is_exploration {
            explorations.push(now - start);
        }
    }
    // Half the plans would explore; the window bucket (60 s / 6) allows one per 10 s.
    assert_eq!(explorations.len(), 6, "{explorations:?}");
    for pair in explorations.windows(2) {
        assert!(pair[1] - pair[0] >= Duration::from_secs(10), "{explorations:?}");
    }
}
