//! `switchboard demo`: the whole path, live, with no accounts and no network.
//!
//! Starts one emulator per provider in `config/demo.toml`, the real server on loopback, and an
//! open-loop stream of Okta-shaped requests to five countries in turn (constant arrival rate, so
//! a slow answer does not slow the stream down). The emulators post delivery receipts to the
//! server's own listener (`server.public_base_url`), as the providers would. Partway through it
//! breaks the primary provider, later repairs it, and prints once a second which provider
//! carried the traffic, the answer latency and the outcome counts. It ends with a summary.
//!
//! Most faults break the primary's API for every country. `filtering` does not: the primary
//! keeps accepting every send, but its receipts for one country ([`FILTERED_COUNTRY`]) say the
//! carrier filtered the message (Twilio 30007). Only receipts show it, per (provider, country,
//! channel), so the live view adds a line per second of sends per country and provider, where
//! that country moves to the backup, after about a dozen of its sends (its latest receipts
//! outweigh its good history), while the others stay on the primary. The demo compresses time,
//! as it does for ejections: receipt evidence fades with a half-life of seconds
//! (`health.receipt_half_life_ms`, scaled to the rate), so the country returns to the repaired
//! primary before the end.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use hdrhistogram::Histogram;
use secrecy::ExposeSecret;
use switchboard_core::Channel;
use switchboard_server::config::FileConfig;
use switchboard_server::okta::OktaAnswer;
use switchboard_server::{Server, Settings};
use switchboard_sim::faults::{Fault, Faults};
use switchboard_sim::twilio::{RunningEmulator, TwilioAccount, TwilioEmulator};
use switchboard_sim::{CountryDelivery, Receipts};
use time::macros::datetime;
use tokio::time::Instant;

use crate::harness::{self, LoopbackListeners, LoopbackServer};

/// The bundled demo configuration, so `switchboard demo` works from any directory.
const DEMO_CONFIG: &str = include_str!("../../../config/demo.toml");

/// The demo's destinations, one request to each in turn: ISO country and number prefix.
const DESTINATIONS: &[(&str, &str)] = &[
    ("US", "+14155550"),
    ("GB", "+447400123"),
    ("FR", "+33612345"),
    ("DE", "+4915112345"),
    ("AU", "+61412345"),
];

/// The country whose messages the primary's carrier filters with `--fault filtering`.
pub const FILTERED_COUNTRY: &str = "GB";

/// Twilio's "message filtered" error code, as a filtered message's receipt carries it.
const FILTERED_CODE: &str = "30007";

/// How long after accepting a message the emulators post its receipt. Carriers take seconds;
/// a fraction of one keeps the demo short while receipts still trail the answers.
const RECEIPT_DELAY: Duration = Duration::from_millis(300);

/// Requests (of every country) per half-life of receipt evidence in the demo: 60, 12 to each
/// country, is 3 s at the default rate.
const REQUESTS_PER_RECEIPT_HALF_LIFE: u64 = 60;

/// The demo's `health.receipt_half_life_ms` at `rate` requests a second.
///
/// The demo compresses time, as its ejections last seconds where production's last 30 s and
/// more: with the default ten-minute half-life a repaired route's filtered receipts would keep
/// it demoted for minutes, longer than the demo runs. Scaled to the rate, the repaired primary
/// wins the country back after about the same number of sends at any rate; never below the 1 s
/// the configuration allows.
fn receipt_half_life_ms(rate: u32) -> u64 {
    (REQUESTS_PER_RECEIPT_HALF_LIFE * 1000 / u64::from(rate.max(1))).max(1000)
}

/// Options of `switchboard demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoOptions {
    /// Seconds of traffic to send.
    #[arg(long, default_value_t = 24)]
    pub duration_s: u64,
    /// Okta requests per second.
    #[arg(long, default_value_t = 20)]
    pub rate: u32,
    /// How the primary provider breaks: `5xx`, `hang`, `reset` or `rate-limit` (its API, for
    /// every country), or `filtering` (it accepts every send, but its receipts say GB messages
    /// were filtered: GB moves to the backup, the other countries stay).
    #[arg(long, default_value = "5xx")]
    pub fault: DemoFault,
}

/// The failure injected into the primary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DemoFault {
    /// HTTP 503 with Twilio's error body.
    #[value(name = "5xx")]
    ServerError,
    /// Accepts the request and never answers.
    Hang,
    /// Resets the connection after reading the request.
    Reset,
    /// 429 with `Retry-After`.
    RateLimit,
    /// Accepts every send, but the receipts of messages to GB say the carrier filtered them
    /// (Twilio 30007), and those phones get nothing.
    // The doc above is `--help` text, so it names the country rather than linking
    // `FILTERED_COUNTRY`.
    Filtering,
}

impl DemoFault {
    /// What the primary's API does while broken; `None`: it answers as usual.
    fn fault(self) -> Option<Fault> {
        match self {
            DemoFault::ServerError => Some(Fault::Status { status: 503, code: Some(20503) }),
            DemoFault::Hang => Some(Fault::Hang),
            DemoFault::Reset => Some(Fault::Reset),
            DemoFault::RateLimit => Some(Fault::RateLimit { retry_after_s: 5 }),
            DemoFault::Filtering => None,
        }
    }

    /// What the primary's receipts say in `phase`.
    fn receipts(self, phase: Phase) -> Receipts {
        let delivered = Receipts::delivered().with_delay(RECEIPT_DELAY);
        match (self, phase) {
            (DemoFault::Filtering, Phase::Broken) => delivered.with_rule(
                CountryDelivery::to(&[FILTERED_COUNTRY]).delivered(0.0, &[FILTERED_CODE]),
            ),
            _ => delivered,
        }
    }

    fn describe(self) -> String {
        match self {
            DemoFault::ServerError => "answers HTTP 503".to_owned(),
            DemoFault::Hang => "hangs".to_owned(),
            DemoFault::Reset => "resets connections".to_owned(),
            DemoFault::RateLimit => "answers 429 Retry-After: 5".to_owned(),
            DemoFault::Filtering => format!(
                "accepts every send, but its receipts say {FILTERED_COUNTRY} messages were \
                 filtered ({FILTERED_CODE})"
            ),
        }
    }

    /// Whether the fault is one country's, so the view shows traffic per country.
    fn is_per_country(self) -> bool {
        self == DemoFault::Filtering
    }
}

/// The phase the demo is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Every provider healthy.
    Healthy,
    /// The primary is broken.
    Broken,
    /// The primary is repaired and should earn its traffic back.
    Repaired,
}

impl Phase {
    fn label(self) -> &'static str {
        match self {
            Phase::Healthy => "healthy",
            Phase::Broken => "BROKEN",
            Phase::Repaired => "repaired",
        }
    }
}

/// What the demo saw, for the summary and for tests.
#[derive(Debug, Default)]
pub struct DemoSummary {
    /// Requests sent.
    pub sent: u64,
    /// Answers by Okta status (`SUCCESSFUL`, `FAILED`), or `error` for a transport failure.
    pub answers: BTreeMap<String, u64>,
    /// Accepted messages per provider and phase.
    pub carried: BTreeMap<(Phase, String), u64>,
    /// Accepted messages per phase, destination country and provider.
    pub carried_by_country: BTreeMap<(Phase, String, String), u64>,
    /// With `--fault filtering`: the provider that accepted each request to
    /// [`FILTERED_COUNTRY`] while the primary filtered it, in the order sent (`None`: no
    /// provider accepted it in time).
    pub filtered_sends: Vec<Option<String>>,
    /// Answers that took more than one attempt.
    pub failovers: u64,
    /// Answers later than the configured deadline.
    pub late: u64,
    /// Answer latency histogram, microseconds.
    pub latency_us: Option<Histogram<u64>>,
}

#[derive(Default)]
struct Window {
    carried: BTreeMap<String, u64>,
    /// By (country, provider).
    carried_by_country: BTreeMap<(String, String), u64>,
    answers: BTreeMap<String, u64>,
    failovers: u64,
    latency_us: Vec<u64>,
}

/// Runs the demo, writing the live view and the summary to `out`.
pub async fn run(options: DemoOptions, mut out: impl Write) -> anyhow::Result<DemoSummary> {
    anyhow::ensure!(options.rate >= 1 && options.rate <= 500, "--rate must be between 1 and 500");
    anyhow::ensure!(options.duration_s >= 3, "--duration-s must be at least 3");

    let mut file = FileConfig::parse(DEMO_CONFIG, |_| None).context("bundled demo config")?;
    let mut emulators: Vec<(String, RunningEmulator)> = Vec::new();
    for (id, provider) in &mut file.providers {
        let switchboard_providers::ProviderConfig::Twilio(twilio) = provider else {
            anyhow::bail!("demo config: provider {id} is not a twilio provider");
        };
        let account = TwilioAccount::new(&twilio.account_sid, twilio.auth_token.expose_secret());
        let emulator =
            TwilioEmulator::start(account).await.context("starting a Twilio emulator")?;
        twilio.base_url = emulator.base_url();
        emulators.push((id.clone(), emulator));
    }
    let route_order = file
        .routes
        .first()
        .map(|route| route.providers.clone())
        .context("demo config has no route")?;
    emulators.sort_by_key(|(id, _)| route_order.iter().position(|p| p == id).unwrap_or(usize::MAX));
    let primary = route_order[0].clone();
    // Realistic API latencies: the backup is a little slower, so the ranking is visible.
    for (index, (_, emulator)) in emulators.iter().enumerate() {
        let base = 60 + 30 * index as u64;
        emulator.set_faults(
            Faults::none()
                .with_latency(Duration::from_millis(base), Duration::from_millis(40))
                .with_seed(7 + index as u64),
        );
        emulator.set_receipts(options.fault.receipts(Phase::Healthy));
    }
    // The server's public URL is its own hook listener, so every send asks for receipts there
    // and the emulators post them back, as providers post to a deployed server.
    let listeners = LoopbackListeners::bind().await?;
    file.server.public_base_url = Some(listeners.hook_base_url()?);
    file.health.receipt_half_life_ms = receipt_half_life_ms(options.rate);
    let settings = Settings::from_file(file).context("demo config")?;
    let deadline = settings.okta.deadline;
    let path = settings.okta.path.clone();
    let server = LoopbackServer::serve(listeners, Server::new(settings), &path)?;
    let hook_url = server.hook_url.clone();
    let metrics_url = format!("{}/metrics", server.admin_url);

    let duration = Duration::from_secs(options.duration_s);
    let break_at = duration.mul_f64(0.3);
    let repair_at = duration.mul_f64(0.65);
    writeln!(
        out,
        "switchboard demo: {} requests/s for {}s through {} emulated providers",
        options.rate,
        options.duration_s,
        emulators.len()
    )?;
    writeln!(
        out,
        "  the primary ({primary}) {} at {}s and is repaired at {}s",
        options.fault.describe(),
        break_at.as_secs(),
        repair_at.as_secs()
    )?;
    let provider_ids: Vec<&str> = emulators.iter().map(|(id, _)| id.as_str()).collect();
    if options.fault.is_per_country() {
        writeln!(
            out,
            "  each second also shows the sends per country, accepted by {} (a provider's \
             health state is its worst country's)",
            provider_ids.join(" / ")
        )?;
    }
    writeln!(out)?;

    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build()?;
    let window = Arc::new(Mutex::new(Window::default()));
    // Who accepted each request to the filtered country while filtered, by sequence: answers
    // come back out of order.
    let filtered: Arc<Mutex<BTreeMap<u64, Option<String>>>> = Arc::default();
    let summary = Arc::new(Mutex::new(DemoSummary {
        latency_us: Some(Histogram::new_with_bounds(1, 60_000_000, 3)?),
        ..DemoSummary::default()
    }));
    let started = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / f64::from(options.rate));
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut report_at = started + Duration::from_secs(1);
    let mut phase = Phase::Healthy;
    let mut in_flight = tokio::task::JoinSet::new();
    let mut sequence: u64 = 0;

    while started.elapsed() < duration {
        ticker.tick().await;
        let elapsed = started.elapsed();
        let wanted = if elapsed >= repair_at {
            Phase::Repaired
        } else if elapsed >= break_at {
            Phase::Broken
        } else {
            Phase::Healthy
        };
        if wanted != phase {
            phase = wanted;
            if let Some((_, emulator)) = emulators.iter().find(|(id, _)| *id == primary) {
                let faults = match (phase, options.fault.fault()) {
                    (Phase::Broken, Some(fault)) => Faults::always(fault),
                    _ => Faults::none(),
                }
                .with_latency(Duration::from_millis(60), Duration::from_millis(40));
                emulator.set_faults(faults);
                emulator.set_receipts(options.fault.receipts(phase));
            }
            let change = match (phase, options.fault) {
                (Phase::Broken, fault) => fault.describe(),
                // Only receipts of sends it makes could show the primary delivers there again,
                // and it gets none while ranked last: it is tried again as the old ones fade.
                (_, DemoFault::Filtering) => format!(
                    "delivers to {FILTERED_COUNTRY} again ({FILTERED_COUNTRY} returns to it as \
                     its filtered receipts fade)"
                ),
                _ => "repaired".to_owned(),
            };
            writeln!(out, "  --- {}s: primary {change} ---", elapsed.as_secs())?;
        }
        sequence += 1;
        let (country, request) = okta_request(sequence);
        let task_client = client.clone();
        let url = hook_url.clone();
        let task_window = Arc::clone(&window);
        let task_summary = Arc::clone(&summary);
        let request_phase = phase;
        let task_filtered = (options.fault == DemoFault::Filtering
            && phase == Phase::Broken
            && country == FILTERED_COUNTRY)
            .then(|| (sequence, Arc::clone(&filtered)));
        in_flight.spawn(async move {
            let sent = Instant::now();
            let answer = task_client
                .post(&url)
                .header("Authorization", "demo-okta-hook-secret")
                .json(&request)
                .send()
                .await;
            let latency = sent.elapsed();
            let (status, provider, attempts) = match answer {
                Ok(response) => match response.json::<serde_json::Value>().await {
                    Ok(body) => read_answer(OktaAnswer::from_json(&body).ok()),
                    Err(_) => ("error".to_owned(), None, 0),
                },
                Err(_) => ("error".to_owned(), None, 0),
            };
            let mut window = task_window.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let mut summary =
                task_summary.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX).max(1);
            window.latency_us.push(micros);
            if let Some(histogram) = summary.latency_us.as_mut() {
                let _ = histogram.record(micros);
            }
            *window.answers.entry(status.clone()).or_default() += 1;
            *summary.answers.entry(status).or_default() += 1;
            if attempts > 1 {
                window.failovers += 1;
                summary.failovers += 1;
            }
            if latency > deadline {
                summary.late += 1;
            }
            if let Some((sequence, filtered)) = task_filtered {
                let mut filtered =
                    filtered.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                filtered.insert(sequence, provider.clone());
            }
            if let Some(provider) = provider {
                *window.carried.entry(provider.clone()).or_default() += 1;
                *window
                    .carried_by_country
                    .entry((country.to_owned(), provider.clone()))
                    .or_default() += 1;
                *summary
                    .carried_by_country
                    .entry((request_phase, country.to_owned(), provider.clone()))
                    .or_default() += 1;
                *summary.carried.entry((request_phase, provider)).or_default() += 1;
            }
        });
        summary.lock().unwrap_or_else(std::sync::PoisonError::into_inner).sent += 1;
        while in_flight.try_join_next().is_some() {}

        if Instant::now() >= report_at {
            report_at += Duration::from_secs(1);
            let states = provider_states(&client, &metrics_url).await;
            let line = render_window(
                &mut window.lock().unwrap_or_else(std::sync::PoisonError::into_inner),
                started.elapsed(),
                phase,
                &emulators,
                &states,
                options.fault.is_per_country(),
            );
            writeln!(out, "{line}")?;
            out.flush()?;
        }
    }
    while in_flight.join_next().await.is_some() {}
    server.stop().await?;

    let mut summary = Arc::try_unwrap(summary)
        .map_err(|_| anyhow::anyhow!("demo tasks still running"))?
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    summary.filtered_sends =
        std::mem::take(&mut *filtered.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
            .into_values()
            .collect();
    write_summary(&mut out, &summary, &emulators, options.fault, deadline)?;
    Ok(summary)
}

/// An Okta request as Okta sends it, with a fresh event id, number and code, and the country
/// it is for: [`DESTINATIONS`] in turn.
fn okta_request(sequence: u64) -> (&'static str, serde_json::Value) {
    let (country, prefix) = DESTINATIONS[(sequence as usize) % DESTINATIONS.len()];
    let phone = format!("{prefix}{:03}", sequence % 1000);
    let code = harness::passcode(sequence, 104_729);
    let channel = if sequence.is_multiple_of(10) { Channel::Voice } else { Channel::Sms };
    let request = harness::okta_request(sequence, channel, &phone, &code)
        .event_id(format!("demo-{sequence:08}"))
        .expires(datetime!(2099-01-01 00:05 UTC))
        .to_json();
    (country, request)
}

/// `GB 0/4`: per country in [`DESTINATIONS`] order, the sends each provider accepted, in the
/// providers' order.
fn per_country(
    emulators: &[(String, RunningEmulator)],
    carried: impl Fn(&str, &str) -> u64,
) -> String {
    let cells: Vec<String> = DESTINATIONS
        .iter()
        .map(|(country, _)| {
            let counts: Vec<String> =
                emulators.iter().map(|(id, _)| carried(country, id).to_string()).collect();
            format!("{country} {:<7}", counts.join("/"))
        })
        .collect();
    cells.join(" ").trim_end().to_owned()
}

/// `(status, provider that accepted, attempts)` from Okta's answer, `malformed` when it is not
/// one Okta would read.
fn read_answer(answer: Option<OktaAnswer>) -> (String, Option<String>, u32) {
    let Some(answer) = answer else { return ("malformed".to_owned(), None, 0) };
    let attempts = answer.metadata("attempts").and_then(|n| n.parse().ok()).unwrap_or(0);
    let delivered = answer.metadata("outcome") == Some("delivered");
    let provider = delivered.then_some(answer.provider);
    (answer.status.as_str().to_owned(), provider, attempts)
}

/// Each provider's health state, as the server's own `/metrics` reports it.
async fn provider_states(client: &reqwest::Client, metrics_url: &str) -> BTreeMap<String, String> {
    let Ok(response) = client.get(metrics_url).send().await else { return BTreeMap::new() };
    let Ok(text) = response.text().await else { return BTreeMap::new() };
    text.lines()
        .filter(|line| line.starts_with("switchboard_provider_health{") && line.ends_with("} 1"))
        .filter_map(|line| {
            let provider = line.split("provider=\"").nth(1)?.split('"').next()?;
            let state = line.split("state=\"").nth(1)?.split('"').next()?;
            Some((provider.to_owned(), state.to_owned()))
        })
        .collect()
}

fn render_window(
    window: &mut Window,
    elapsed: Duration,
    phase: Phase,
    emulators: &[(String, RunningEmulator)],
    states: &BTreeMap<String, String>,
    is_per_country: bool,
) -> String {
    let mut line = format!("  t={:>3}s [{:<8}]", elapsed.as_secs(), phase.label());
    for (id, _) in emulators {
        let count = window.carried.get(id).copied().unwrap_or(0);
        let state = states.get(id).map_or("healthy", String::as_str);
        line.push_str(&format!(
            "  {id} {count:>3} {:<10} {state:<9}",
            "#".repeat(count.min(10) as usize)
        ));
    }
    window.latency_us.sort_unstable();
    let percentile = |p: f64| harness::percentile(&window.latency_us, p) / 1000;
    line.push_str(&format!(" | answer p50 {:>4}ms p99 {:>4}ms", percentile(0.5), percentile(0.99)));
    let answers: Vec<String> =
        window.answers.iter().map(|(status, n)| format!("{status} {n}")).collect();
    line.push_str(&format!(" | {} | failovers {}", answers.join(" "), window.failovers));
    if is_per_country {
        let by_country = per_country(emulators, |country, id| {
            let key = (country.to_owned(), id.to_owned());
            window.carried_by_country.get(&key).copied().unwrap_or(0)
        });
        line.push_str(&format!("\n  {:<16}by country  {by_country}", ""));
    }
    *window = Window::default();
    line
}

fn write_summary(
    out: &mut impl Write,
    summary: &DemoSummary,
    emulators: &[(String, RunningEmulator)],
    fault: DemoFault,
    deadline: Duration,
) -> std::io::Result<()> {
    writeln!(out, "\nsummary")?;
    writeln!(out, "  requests sent      {}", summary.sent)?;
    for (status, count) in &summary.answers {
        writeln!(out, "  answered {status:<10} {count}")?;
    }
    writeln!(out, "  failovers          {}", summary.failovers)?;
    writeln!(out, "  later than {}ms  {}", deadline.as_millis(), summary.late)?;
    if let Some(histogram) = &summary.latency_us {
        writeln!(
            out,
            "  answer latency     p50 {}ms  p99 {}ms  max {}ms",
            histogram.value_at_quantile(0.5) / 1000,
            histogram.value_at_quantile(0.99) / 1000,
            histogram.max() / 1000
        )?;
    }
    writeln!(out, "  accepted by provider, per phase:")?;
    for phase in [Phase::Healthy, Phase::Broken, Phase::Repaired] {
        let row: Vec<String> = emulators
            .iter()
            .map(|(id, _)| {
                format!("{id} {}", summary.carried.get(&(phase, id.clone())).copied().unwrap_or(0))
            })
            .collect();
        writeln!(out, "    {:<9} {}", phase.label(), row.join("  "))?;
    }
    if fault.is_per_country() {
        let ids: Vec<&str> = emulators.iter().map(|(id, _)| id.as_str()).collect();
        writeln!(out, "  accepted per country ({}), per phase:", ids.join(" / "))?;
        for phase in [Phase::Healthy, Phase::Broken, Phase::Repaired] {
            let row = per_country(emulators, |country, id| {
                let key = (phase, country.to_owned(), id.to_owned());
                summary.carried_by_country.get(&key).copied().unwrap_or(0)
            });
            writeln!(out, "    {:<9} {row}", phase.label())?;
        }
        if let Some((primary, _)) = emulators.first() {
            let sends = &summary.filtered_sends;
            let on_primary = sends.iter().filter(|p| p.as_deref() == Some(primary)).count();
            let carried = match sends.iter().rposition(|p| p.as_deref() == Some(primary)) {
                Some(last) => format!(
                    "{primary} carried {on_primary}, the last of them send {}; the {} after it \
                     went elsewhere",
                    last + 1,
                    sends.len() - last - 1
                ),
                None => format!("{primary} carried none"),
            };
            writeln!(out, "  {FILTERED_COUNTRY} while filtered: {} sends; {carried}", sends.len())?;
        }
    }
    for (id, emulator) in emulators {
        let handsets = emulator.handsets();
        let missed = handsets.iter().filter(|handset| !handset.delivered).count();
        writeln!(
            out,
            "  emulator {id} received {} sends, accepted {}, {missed} never reached the phone",
            emulator.received().len(),
            handsets.len()
        )?;
    }
    Ok(())
}
