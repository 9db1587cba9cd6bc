//! The routing core's hot paths: matching a route and planning, recording an outcome, and
//! parsing a destination. Each runs once per hook request (plan, parse) or per attempt (record).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use switchboard_core::health::{HealthBook, HealthConfig, HealthPolicy};
use switchboard_core::plan::{RouteQuery, plan};
use switchboard_core::route::{ProviderCatalog, RouteConfig, RouteTable};
use switchboard_core::{
    AttemptOutcome, Certainty, Channel, Country, Destination, ErrorClass, Failure, ProviderId,
};

const PROVIDERS: [&str; 6] = ["twilio", "vonage", "sinch", "infobip", "telesign", "plivo"];

/// Twenty country rules ahead of a catch-all, as a multi-region deployment might have.
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
        .map(|(index, country)| RouteConfig {
            name: None,
            countries: vec![(*country).to_owned()],
            channels: Vec::new(),
            providers: (0..3)
                .map(|k| PROVIDERS[(index + k) % PROVIDERS.len()].to_owned())
                .collect(),
        })
        .collect();
    routes.push(RouteConfig {
        name: Some("rest".into()),
        countries: vec!["*".into()],
        channels: Vec::new(),
        providers: PROVIDERS.iter().map(|p| (*p).to_owned()).collect(),
    });
    RouteTable::try_new(&routes, &catalog).unwrap()
}

fn bench_plan(c: &mut Criterion) {
    let table = table();
    let policy = HealthPolicy::try_new(&HealthConfig::defaults()).unwrap();
    let mut health = HealthBook::new(policy);
    let now = Instant::now();
    // One provider ejected, so planning walks the exclusion path too.
    let failure = AttemptOutcome::Failed(Failure {
        class: ErrorClass::Transient,
        certainty: Certainty::NotSent,
        retry_after: None,
    });
    for _ in 0..5 {
        health.record(&ProviderId::parse("vonage").unwrap(), &failure, now);
    }
    let query = RouteQuery { country: Country::parse("BR").unwrap(), channel: Channel::Sms };
    c.bench_function("plan/last_country_rule_one_ejected", |b| {
        b.iter(|| plan(black_box(&table), black_box(&health), black_box(&query), now))
    });
    let query = RouteQuery { country: Country::parse("ZA").unwrap(), channel: Channel::Voice };
    c.bench_function("plan/catch_all", |b| {
        b.iter(|| plan(black_box(&table), &health, black_box(&query), now))
    });
}

fn bench_record(c: &mut Criterion) {
    let policy = HealthPolicy::try_new(&HealthConfig::defaults()).unwrap();
    let mut health = HealthBook::new(policy);
    let provider = ProviderId::parse("twilio").unwrap();
    let accepted =
        AttemptOutcome::Accepted { message_id: "SM00000000000000000000000000000000".into() };
    let mut now = Instant::now();
    c.bench_function("health/record_accepted", |b| {
        b.iter(|| {
            now += Duration::from_millis(1);
            health.record(black_box(&provider), black_box(&accepted), now);
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

criterion_group!(benches, bench_plan, bench_record, bench_destination);
criterion_main!(benches);
