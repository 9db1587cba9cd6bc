//! The routing core's hot paths: matching a route and planning (with and without scoring),
//! recording an outcome or a receipt, asking for an extra send, explaining, and parsing a
//! destination. Each runs once per hook request (plan, parse), per attempt (begin, record) or per
//! receipt.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use rand::SeedableRng;
use rand::rngs::StdRng;
use switchboard_core::budget::RetryBudget;
use switchboard_core::health::{HealthBook, HealthConfig, HealthKey, HealthPolicy};
use switchboard_core::plan::{RouteQuery, plan};
use switchboard_core::price::PriceConfig;
use switchboard_core::route::{Optimize, ProviderCatalog, RouteConfig, RouteTable, StrategyName};
use switchboard_core::spend::SpendBook;
use switchboard_core::switch::OperatorSwitches;
use switchboard_core::{AttemptKind, begin_attempt};
use switchboard_core::{
    AttemptOutcome, Certainty, Channel, Country, Delivery, Destination, ErrorClass, Failure, Live,
    ProviderId, explain,
};

const PROVIDERS: [&str; 6] = ["twilio", "vonage", "sinch", "infobip", "telesign", "plivo"];

/// Twenty priority rules ahead of a scored catch-all over all six providers (cost emphasis,
/// learned hedge delay), with prices for every provider, as a multi-region deployment might have.
fn table() -> RouteTable {
    let catalog = ProviderCatalog::new(
        PROVIDERS.iter().map(|id| (ProviderId::parse(id).unwrap(), Channel::ALL.to_vec())),
    );
    let countries = [
        "US", "CA", "GB", "FR", "DE", "ES", "IT", "NL", "BE", "SE", "NO", "DK", "FI", "PL", "PT",
        "IE", "AU", "NZ", "JP", "BR",
    ];
    let mut routes: Vec<RouteConfig> = countries
        .iter()
        .enumerate()
        .map(|(index, country)| {
            RouteConfig::new(
                vec![(*country).to_owned()],
                Channel::ALL.iter().map(|channel| channel.as_str().to_owned()).collect(),
                (0..3).map(|k| PROVIDERS[(index + k) % PROVIDERS.len()].to_owned()).collect(),
            )
        })
        .collect();
    let mut rest = RouteConfig::new(
        vec!["*".into()],
        Channel::ALL.iter().map(|channel| channel.as_str().to_owned()).collect(),
        PROVIDERS.iter().map(|p| (*p).to_owned()).collect(),
    );
    rest.name = Some("rest".into());
    rest.optimize = Optimize::Cost;
    rest.strategy = StrategyName::Hedge;
    routes.push(rest);
    let prices: String = PROVIDERS
        .iter()
        .enumerate()
        .map(|(index, provider)| {
            format!(
                "[{provider}]\ndefault = {{ sms = 0.0{}, voice_minute = 0.02 }}\ncountries.ZA = {{ sms = 0.03 }}\n",
                index + 1
            )
        })
        .collect();
    let prices: PriceConfig = toml::from_str(&prices).unwrap();
    RouteTable::try_new(&routes, &prices, &catalog).unwrap()
}

fn failure() -> AttemptOutcome {
    AttemptOutcome::Failed(Failure {
        class: ErrorClass::Transient,
        certainty: Certainty::NotSent,
        retry_after: None,
    })
}

fn accepted() -> AttemptOutcome {
    AttemptOutcome::Accepted { message_id: "SM00000000000000000000000000000000".into() }
}

fn key(provider: &str, country: &str, channel: Channel) -> HealthKey {
    HealthKey::new(ProviderId::parse(provider).unwrap(), Country::parse(country).unwrap(), channel)
}

/// A book with history on every provider for ZA voice (latency, successes, receipts) and one
/// provider ejected for BR SMS.
fn book(now: Instant) -> HealthBook {
    let policy = HealthPolicy::try_new(&HealthConfig::defaults()).unwrap();
    let mut health = HealthBook::new(policy);
    for _ in 0..5 {
        health.record(
            &key("vonage", "BR", Channel::Sms),
            &failure(),
            Duration::from_millis(5),
            now,
        );
    }
    for (index, provider) in PROVIDERS.iter().enumerate() {
        let za = key(provider, "ZA", Channel::Voice);
        for sample in 0..50u64 {
            let at = now + Duration::from_millis(sample * 100);
            let latency = Duration::from_millis(150 + 40 * index as u64 + sample % 7);
            health.record(&za, &accepted(), latency, at);
            health.record_receipt(&za, Delivery::Delivered, at);
        }
    }
    health
}

fn bench_plan(c: &mut Criterion) {
    let table = table();
    let now = Instant::now();
    let health = book(now);
    let switches = OperatorSwitches::new();
    let later = now + Duration::from_secs(6);
    let mut rng = StdRng::seed_from_u64(7);
    // Priority order: one provider ejected, so planning walks the exclusion path too.
    let query = RouteQuery::new(Country::parse("BR").unwrap(), Channel::Sms);
    c.bench_function("plan/priority_last_country_rule_one_ejected", |b| {
        b.iter(|| {
            plan(black_box(&table), black_box(&health), &switches, black_box(&query), now, &mut rng)
        })
    });
    // Scoring over six providers with history, prices, exploration and a learned hedge delay.
    let query = RouteQuery::new(Country::parse("ZA").unwrap(), Channel::Voice);
    c.bench_function("plan/scored_six_providers_cost_hedge_auto", |b| {
        b.iter(|| plan(black_box(&table), &health, &switches, black_box(&query), later, &mut rng))
    });
    let query = RouteQuery::new(Country::parse("ZA").unwrap(), Channel::Sms).with_segments(2);
    c.bench_function("plan/scored_six_providers_no_history", |b| {
        b.iter(|| plan(black_box(&table), &health, &switches, black_box(&query), later, &mut rng))
    });
    let query = RouteQuery::new(Country::parse("ZA").unwrap(), Channel::Voice);
    let budget = RetryBudget::new(health.policy().budget().clone());
    let spend = SpendBook::default();
    c.bench_function("explain/scored_six_providers", |b| {
        b.iter(|| {
            let live =
                Live { health: &health, switches: &switches, budget: &budget, spend: &spend };
            explain(black_box(&table), live, black_box(&query), later, &mut rng)
        })
    });
}

fn bench_record(c: &mut Criterion) {
    let policy = HealthPolicy::try_new(&HealthConfig::defaults()).unwrap();
    let mut health = HealthBook::new(policy);
    let twilio = key("twilio", "US", Channel::Sms);
    let accepted = accepted();
    let mut now = Instant::now();
    c.bench_function("health/record_accepted", |b| {
        b.iter(|| {
            now += Duration::from_millis(1);
            health.record(
                black_box(&twilio),
                black_box(&accepted),
                Duration::from_millis(180),
                now,
            );
        })
    });
    c.bench_function("health/record_receipt", |b| {
        b.iter(|| {
            now += Duration::from_millis(1);
            health.record_receipt(black_box(&twilio), Delivery::Delivered, now);
        })
    });
}

fn bench_begin_attempt(c: &mut Criterion) {
    let table = table();
    let mut now = Instant::now();
    let mut health = book(now);
    let mut budget = RetryBudget::new(health.policy().budget().clone());
    let switches = OperatorSwitches::new();
    let mut spend = SpendBook::default();
    let query = RouteQuery::new(Country::parse("ZA").unwrap(), Channel::Voice);
    let candidate = plan(&table, &health, &switches, &query, now, &mut StdRng::seed_from_u64(1))
        .candidates
        .swap_remove(1);
    c.bench_function("health/begin_request_and_failover", |b| {
        b.iter(|| {
            now += Duration::from_millis(1);
            budget.deposit(now);
            begin_attempt(
                &mut health,
                &mut budget,
                &mut spend,
                &switches,
                black_box(&candidate),
                AttemptKind::Failover,
                now,
            )
        })
    });
}

fn bench_destination(c: &mut Criterion) {
    let us = Country::parse("US");
    c.bench_function("destination/parse_e164", |b| {
        b.iter(|| Destination::parse(black_box("+447700900123"), us))
    });
    c.bench_function("destination/parse_national_with_default_region", |b| {
        b.iter(|| Destination::parse(black_box("(415) 555-0100"), us))
    });
}

criterion_group!(benches, bench_plan, bench_record, bench_begin_attempt, bench_destination);
criterion_main!(benches);
