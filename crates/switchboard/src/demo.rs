//! `switchboard demo`: the whole path, live, with no accounts and no network.
//!
//! Starts one emulator per provider in `config/demo.toml`, the real server on loopback, and an
//! open-loop stream of Okta-shaped requests (constant arrival rate, so a slow answer does not
//! slow the stream down). Partway through it breaks the primary provider, later repairs it, and
//! prints once a second which provider carried the traffic, the answer latency and the outcome
//! counts. It ends with a summary.

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
use time::macros::datetime;
use tokio::time::Instant;

use crate::harness::{self, LoopbackServer};

/// The bundled demo configuration, so `switchboard demo` works from any directory.
const DEMO_CONFIG: &str = include_str!("../../../config/demo.toml");

/// Options of `switchboard demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoOptions {
    /// Seconds of traffic to send.
    #[arg(long, default_value_t = 24)]
    pub duration_s: u64,
    /// Okta requests per second.
    #[arg(long, default_value_t = 20)]
    pub rate: u32,
    /// How the primary provider breaks: `5xx`, `hang`, `reset` or `rate-limit`.
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
}

impl DemoFault {
    fn fault(self) -> Fault {
        match self {
            DemoFault::ServerError => Fault::Status { status: 503, code: Some(20503) },
            DemoFault::Hang => Fault::Hang,
            DemoFault::Reset => Fault::Reset,
            DemoFault::RateLimit => Fault::RateLimit { retry_after_s: 5 },
        }
    }

    fn describe(self) -> &'static str {
        match self {
            DemoFault::ServerError => "answers HTTP 503",
            DemoFault::Hang => "hangs",
            DemoFault::Reset => "resets connections",
            DemoFault::RateLimit => "answers 429 Retry-After: 5",
        }
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
    }
    let settings = Settings::from_file(file).context("demo config")?;
    let deadline = settings.okta.deadline;
    let path = settings.okta.path.clone();
    let server = LoopbackServer::start(Server::new(settings), &path).await?;
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
        "  the primary ({primary}) {} at {}s and is repaired at {}s\n",
        options.fault.describe(),
        break_at.as_secs(),
        repair_at.as_secs()
    )?;

    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build()?;
    let window = Arc::new(Mutex::new(Window::default()));
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
                let faults = match phase {
                    Phase::Broken => Faults::always(options.fault.fault()),
                    _ => Faults::none(),
                }
                .with_latency(Duration::from_millis(60), Duration::from_millis(40));
                emulator.set_faults(faults);
            }
            writeln!(
                out,
                "  --- {}s: primary {} ---",
                elapsed.as_secs(),
                if phase == Phase::Broken { options.fault.describe() } else { "repaired" }
            )?;
        }
        sequence += 1;
        let request = okta_request(sequence);
        let task_client = client.clone();
        let url = hook_url.clone();
        let task_window = Arc::clone(&window);
        let task_summary = Arc::clone(&summary);
        let request_phase = phase;
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
            if let Some(provider) = provider {
                *window.carried.entry(provider.clone()).or_default() += 1;
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
            );
            writeln!(out, "{line}")?;
            out.flush()?;
        }
    }
    while in_flight.join_next().await.is_some() {}
    server.stop().await?;

    let summary = Arc::try_unwrap(summary)
        .map_err(|_| anyhow::anyhow!("demo tasks still running"))?
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    write_summary(&mut out, &summary, &emulators, deadline)?;
    Ok(summary)
}

/// An Okta request as Okta sends it, with a fresh event id, number and code.
fn okta_request(sequence: u64) -> serde_json::Value {
    const NUMBERS: &[&str] = &["+14155550", "+447700900", "+33612345", "+4915112345", "+61412345"];
    let prefix = NUMBERS[(sequence as usize) % NUMBERS.len()];
    let phone = format!("{prefix}{:03}", sequence % 1000);
    let code = harness::passcode(sequence, 104_729);
    let channel = if sequence.is_multiple_of(10) { Channel::Voice } else { Channel::Sms };
    harness::okta_request(sequence, channel, &phone, &code)
        .event_id(format!("demo-{sequence:08}"))
        .expires(datetime!(2099-01-01 00:05 UTC))
        .to_json()
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
    *window = Window::default();
    line
}

fn write_summary(
    out: &mut impl Write,
    summary: &DemoSummary,
    emulators: &[(String, RunningEmulator)],
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
    for (id, emulator) in emulators {
        writeln!(out, "  emulator {id} received {} sends", emulator.received().len())?;
    }
    Ok(())
}
