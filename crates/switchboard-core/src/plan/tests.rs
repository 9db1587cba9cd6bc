use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;
use crate::domain::Country;
use crate::health::{HealthConfig, HealthPolicy};
use crate::outcome::AttemptOutcome;
use crate::route::RouteConfig;
use crate::script::{self, catalog, parse_outcome, provider};

/// One line per case; see `script.rs` for the language. Default route: every country, both
/// channels, `twilio` then `backup`; policy: 3 failures, 10 s base, 60 s cap, 5 s trial lease.
const SCRIPTS: &[&str] = &[
    "plan -> twilio, backup",
    "t=0 twilio timeout; t=1 twilio 5xx; t=2 twilio 5xx; plan -> backup | twilio:ejected@12",
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
];

#[test]
fn scripts() {
    for line in SCRIPTS {
        script::run(line);
    }
}

#[test]
fn plan_names_the_rule() {
    let routes = [RouteConfig {
        name: Some("everywhere".into()),
        countries: vec!["*".into()],
        channels: vec!["sms".into()],
        providers: vec!["twilio".into()],
    }];
    let table = RouteTable::try_new(&routes, &catalog()).unwrap();
    let book = HealthBook::new(script::script_policy());
    let query = RouteQuery { country: Country::parse("NZ").unwrap(), channel: Channel::Sms };
    let plan = plan(&table, &book, &query, Instant::now());
    let rule = plan.rule.unwrap();
    assert_eq!((rule.index, &*rule.name), (0, "everywhere"));
    assert_eq!(ExclusionReason::TrialInFlight.as_str(), "trial_in_flight");
    assert!(!ExclusionReason::Disabled.is_health());
}

/// The providers of the property tests' world, by index.
const PROVIDERS: [&str; 4] = ["twilio", "backup", "vonage", "textonly"];

#[derive(Clone, Debug)]
enum Op {
    Advance(u64),
    Record(usize, &'static str),
    Begin(usize),
    Operator(usize, OperatorState),
}

fn op() -> impl Strategy<Value = Op> {
    let outcome = prop::sample::select(
        &["ok", "ok", "timeout", "5xx", "5xx", "invalid", "fraud", "429", "429/3", "429/40"][..],
    );
    let operator = prop::sample::select(
        &[OperatorState::Enabled, OperatorState::Draining, OperatorState::Disabled][..],
    );
    prop_oneof![
        3 => (0u64..15_000).prop_map(Op::Advance),
        6 => (0..PROVIDERS.len(), outcome).prop_map(|(index, outcome)| Op::Record(index, outcome)),
        3 => (0..PROVIDERS.len()).prop_map(Op::Begin),
        1 => (0..PROVIDERS.len(), operator).prop_map(|(index, state)| Op::Operator(index, state)),
    ]
}

fn policy() -> impl Strategy<Value = HealthPolicy> {
    (1u32..4, 1_000u64..10_000, 0u64..40_000, 500u64..5_000).prop_map(
        |(failures, base, extra, trial)| {
            HealthPolicy::try_new(&HealthConfig {
                consecutive_failures: failures,
                base_ejection_ms: base,
                max_ejection_ms: base + extra,
                trial_timeout_ms: trial,
            })
            .unwrap()
        },
    )
}

/// A rule over a non-empty ordered subset of the providers (textonly only matters for voice).
fn rule_providers() -> impl Strategy<Value = Vec<&'static str>> {
    Just(PROVIDERS.to_vec())
        .prop_shuffle()
        .prop_flat_map(|shuffled| (1..=shuffled.len()).prop_map(move |n| shuffled[..n].to_vec()))
}

/// What the property run remembers about one provider's ejection episode.
#[derive(Default)]
struct Episode {
    /// The latest `until` seen while the provider was ejected; `None` when it is not in an episode.
    until: Option<Instant>,
    /// A success was recorded once the ejection time had passed: a successful probation trial.
    /// (A rate limit may still hide the recovery for a while.)
    is_trial_passed: bool,
}

fn check_plan(
    table: &RouteTable,
    book: &HealthBook,
    query: &RouteQuery,
    now: Instant,
) -> Result<(), TestCaseError> {
    let plan = plan(table, book, query, now);
    let rule = table.find(query.country, query.channel).expect("the rule covers everything").rule;
    let mut seen: Vec<&ProviderId> =
        plan.candidates.iter().map(|candidate| &candidate.provider).collect();
    seen.sort();
    seen.dedup();
    prop_assert_eq!(seen.len(), plan.candidates.len(), "a provider repeated in {:?}", plan);
    for candidate in &plan.candidates {
        prop_assert!(
            book.operator_state(&candidate.provider).is_enabled(),
            "not enabled: {:?}",
            plan
        );
        prop_assert!(
            table.catalog().supports(&candidate.provider, query.channel),
            "cannot carry: {:?}",
            plan
        );
        let status = book.status(&candidate.provider, now);
        let is_open_for_trial = status == (HealthStatus::Probation { trial_in_flight: false });
        prop_assert_eq!(candidate.is_trial, is_open_for_trial);
        if candidate.is_fail_open {
            prop_assert_eq!(plan.candidates.len(), 1, "fail open only when nothing else is left");
            let is_usable = status == HealthStatus::Healthy || is_open_for_trial;
            prop_assert!(!is_usable, "failed open to a usable provider: {:?}", plan);
        }
    }
    // Every provider of the rule is accounted for exactly once.
    let mut accounted: Vec<&ProviderId> = plan
        .candidates
        .iter()
        .map(|candidate| &candidate.provider)
        .chain(plan.excluded.iter().map(|exclusion| &exclusion.provider))
        .collect();
    accounted.sort();
    let mut expected: Vec<&ProviderId> = rule.providers().iter().collect();
    expected.sort();
    prop_assert_eq!(accounted, expected);
    // Never empty while an enabled provider can carry the channel.
    let has_usable = rule.providers().iter().any(|provider| {
        book.operator_state(provider).is_enabled()
            && table.catalog().supports(provider, query.channel)
    });
    prop_assert_eq!(!plan.candidates.is_empty(), has_usable, "{:?}", plan);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Plans never repeat a provider, never include a disabled, drained or incapable one, and are
    /// never empty while the rule has a usable provider; ejection ends only through probation.
    #[test]
    fn planning_and_health_invariants(
        policy in policy(),
        providers in rule_providers(),
        ops in prop::collection::vec(op(), 1..80),
    ) {
        let routes = [RouteConfig {
            name: None,
            countries: vec!["*".into()],
            channels: vec!["sms".into(), "voice".into()],
            providers: providers.iter().map(|name| (*name).to_owned()).collect(),
        }];
        let table = RouteTable::try_new(&routes, &catalog()).unwrap();
        let mut book = HealthBook::new(policy);
        let mut now = Instant::now();
        let mut episodes: BTreeMap<&str, Episode> = BTreeMap::new();
        let country = Country::parse("BR").unwrap();
        for op in ops {
            match op {
                Op::Advance(millis) => now += Duration::from_millis(millis),
                Op::Record(index, outcome) => {
                    let outcome = parse_outcome(outcome).unwrap();
                    let episode = episodes.entry(PROVIDERS[index]).or_default();
                    let is_success = matches!(outcome, AttemptOutcome::Accepted { .. });
                    if is_success && episode.until.is_some_and(|until| now >= until) {
                        episode.is_trial_passed = true;
                    }
                    book.record(&provider(PROVIDERS[index]), &outcome, now);
                }
                Op::Begin(index) => {
                    let query = RouteQuery { country, channel: Channel::Sms };
                    let candidate = plan(&table, &book, &query, now)
                        .candidates
                        .into_iter()
                        .find(|candidate| candidate.provider.as_str() == PROVIDERS[index])
                        .unwrap_or(Candidate { provider: provider(PROVIDERS[index]), is_trial: false, is_fail_open: false });
                    let status_before = book.status(&candidate.provider, now);
                    let may_send = book.begin_attempt(&candidate, now);
                    let is_trial_running = status_before == (HealthStatus::Probation { trial_in_flight: true });
                    if is_trial_running && !candidate.is_fail_open {
                        prop_assert!(!may_send, "a second trial started");
                    }
                }
                Op::Operator(index, state) => book.set_operator_state(&provider(PROVIDERS[index]), state),
            }
            for channel in Channel::ALL {
                check_plan(&table, &book, &RouteQuery { country, channel }, now)?;
            }
            for name in PROVIDERS {
                let episode = episodes.entry(name).or_default();
                match book.status(&provider(name), now) {
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
