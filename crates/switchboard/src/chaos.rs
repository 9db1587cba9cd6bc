//! `switchboard chaos`: the real server against emulated providers that keep breaking.
//!
//! Three emulated providers of two kinds (two Twilio accounts and a Sinch plan) on loopback,
//! one route cascading over them, adapters with one-second timeouts and a 2.5 s deadline. A
//! seeded schedule changes each provider's condition every few seconds: healthy, slower than
//! the timeout, hanging, resetting connections, answering 5xx, 429 with `Retry-After` or 401,
//! or not listening at all. Okta-shaped requests arrive at a fixed rate (open loop: a slow
//! answer does not slow the stream), each with a unique code and number and an `otpExpires` a
//! short life ahead, and a share is repeated as Okta does: the same `eventId` again, sometimes
//! while the first is in flight, sometimes after its answer.
//!
//! The schedule runs on until the last code has expired, then the harness waits for background
//! delivery to finish and sets every answer against the emulators' journals (each accepted send
//! carries its code): codes lost although a provider could have taken them, duplicates, late
//! answers, second sends caused by repeats. See `report` for how a send counts as accepted.
//!
//! Why a benchmark of its own beside `simulate`: the simulator runs on a paused clock with
//! emulated `Provider`s, so it cannot see what sockets, connection pools, timeouts racing a
//! deadline and refused connections do. This runs the whole stack in real time.
//!
//! The harness knows the codes it generated (it must, to match them) but never prints one, nor
//! a phone number or a message text.

mod fleet;
mod report;
mod schedule;

use std::io::Write;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use switchboard_core::Channel;
use switchboard_server::okta::OktaAnswer;
use switchboard_server::{Server, Settings};
use tokio::sync::oneshot;
use tokio::task::JoinSet;
use tokio::time::Instant;

use self::fleet::Fleet;
pub use self::report::{
    ABLE_WINDOW, Answer, AnswerOutcome, ChaosReport, CodeRecord, OKTA_TIMEOUT, ProviderFigures,
};
use self::report::{RunRecord, Send};
pub use self::schedule::{Condition, Mix};
use self::schedule::{Phase, Timeline};
use crate::harness::{self, LoopbackServer};

/// The configured `okta.deadline_ms`.
const DEADLINE_MS: u64 = 2_500;
/// Each adapter's `timeout_ms`.
const PROVIDER_TIMEOUT_MS: u64 = 1_000;
/// The hook secret the harness authenticates with.
const HOOK_SECRET: &str = "chaos-okta-hook-secret";
/// After the last code expired: time for the last background attempts to end.
const DRAIN_MARGIN: Duration = Duration::from_secs(2);
/// How often the journals are drained during the run.
const DRAIN_EVERY: Duration = Duration::from_millis(500);
/// The client gives up on an answer after this long (well past Okta's 3 s, so late answers
/// are measured rather than cut off).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(6);

/// Options of `switchboard chaos`.
#[derive(Debug, Clone, clap::Args)]
pub struct ChaosOptions {
    /// How much goes wrong: `none`, `mild`, `harsh` or `primary-slow`.
    #[arg(long, value_enum, default_value = "mild")]
    pub mix: Mix,
    /// Seeds the fault schedule, the repeats and the server's routing RNG.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Okta requests (distinct codes) to send, 1 to 100,000.
    #[arg(long, default_value_t = 3_000)]
    pub requests: u32,
    /// Requests per second, 1 to 1,000.
    #[arg(long, default_value_t = 100)]
    pub rate: u32,
    /// Each code's lifetime (`otpExpires` this far ahead), seconds, 2 to 600.
    #[arg(long, default_value_t = 30)]
    pub otp_life_s: u64,
    /// Share of codes whose request Okta repeats (same `eventId`), 0 to 1.
    #[arg(long, default_value_t = 0.1)]
    pub retry_share: f64,
    /// Replicas behind the harness's "load balancer", 1 to 5: request N goes to replica
    /// N mod replicas, and its repeat to the next one, as Okta's retry landing elsewhere.
    #[arg(long, default_value_t = 1)]
    pub replicas: usize,
    /// Where the replicas keep shared state: `memory` (each its own) or `redis` (one
    /// `redis-server` the harness starts on a free loopback port; needs it installed).
    #[arg(long, value_enum, default_value = "memory")]
    pub state: StateBackend,
    /// Pauses Redis (SIGSTOP) for `START:SECONDS` into the run, e.g. `10:5`: Redis hangs, the
    /// replicas fall back, then it resumes. Only with `--state redis`.
    #[arg(long, value_parser = parse_pause)]
    pub redis_pause: Option<(Duration, Duration)>,
}

/// Where `switchboard chaos`'s replicas keep shared state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum StateBackend {
    /// Each replica in its own memory.
    Memory,
    /// One Redis shared by all.
    Redis,
}

fn parse_pause(text: &str) -> Result<(Duration, Duration), String> {
    let (start, length) = text.split_once(':').ok_or("expected START:SECONDS, e.g. 10:5")?;
    let seconds = |part: &str| {
        part.trim()
            .parse::<f64>()
            .ok()
            .filter(|value| value.is_finite() && *value >= 0.0 && *value <= 3_600.0)
            .map(Duration::from_secs_f64)
            .ok_or_else(|| format!("{part:?} is not a number of seconds between 0 and 3600"))
    };
    Ok((seconds(start)?, seconds(length)?))
}

/// How a code's request is repeated.
#[derive(Clone, Copy, Debug)]
enum Repeat {
    /// This long after the first was sent, whether or not it was answered.
    WhileInFlight(Duration),
    /// This long after the first was answered.
    AfterAnswer(Duration),
}

/// Runs the benchmark, writing the figures to `out`; fails only on harness errors.
pub async fn run(options: ChaosOptions, mut out: impl Write) -> anyhow::Result<ChaosReport> {
    anyhow::ensure!(
        (1..=100_000).contains(&options.requests),
        "--requests must be between 1 and 100000"
    );
    anyhow::ensure!((1..=20_000).contains(&options.rate), "--rate must be between 1 and 20000");
    anyhow::ensure!(
        (2..=600).contains(&options.otp_life_s),
        "--otp-life-s must be between 2 and 600"
    );
    anyhow::ensure!(
        (0.0..=1.0).contains(&options.retry_share),
        "--retry-share must be between 0 and 1"
    );
    anyhow::ensure!((1..=5).contains(&options.replicas), "--replicas must be between 1 and 5");
    anyhow::ensure!(
        options.redis_pause.is_none() || options.state == StateBackend::Redis,
        "--redis-pause needs --state redis"
    );

    let otp_life = Duration::from_secs(options.otp_life_s);
    let send_span = Duration::from_secs_f64(f64::from(options.requests) / f64::from(options.rate));
    let horizon = send_span + otp_life + DRAIN_MARGIN;

    let fleet = Fleet::start(options.seed).await?;
    let provider_ids = fleet.ids();
    let planned = schedule::build(options.mix, options.seed, provider_ids.len(), horizon);
    let redis =
        (options.state == StateBackend::Redis).then(switchboard_sim::redis::RedisServer::start);
    let config = server_config(&fleet, redis.as_ref().map(|redis| redis.url()).as_deref());
    let mut servers = Vec::with_capacity(options.replicas);
    let mut deadline = Duration::ZERO;
    for replica in 0..options.replicas {
        let settings = Settings::parse(&config, |_| None)
            .map_err(|error| anyhow::anyhow!("chaos server config: {error}"))?;
        deadline = settings.okta.deadline;
        let path = settings.okta.path.clone();
        let server = Server::new(settings).with_rng_seed(options.seed ^ replica as u64);
        servers.push(LoopbackServer::start(server, &path).await?);
    }
    let hook_urls: Vec<String> = servers.iter().map(|server| server.hook_url.clone()).collect();

    writeln!(
        out,
        "switchboard chaos: mix {}, seed {}, {} requests at {}/s, OTP life {} s, retry share {:.0}%",
        mix_name(options.mix),
        options.seed,
        options.requests,
        options.rate,
        options.otp_life_s,
        options.retry_share * 100.0
    )?;
    writeln!(
        out,
        "  route cascade {}; adapter timeout {PROVIDER_TIMEOUT_MS} ms, deadline {} ms, {:.0} s of faults",
        provider_ids.join(" > "),
        deadline.as_millis(),
        horizon.as_secs_f64()
    )?;
    writeln!(
        out,
        "  {} replica(s), state in {}{}",
        options.replicas,
        match options.state {
            StateBackend::Memory => "memory (each replica its own)",
            StateBackend::Redis => "one redis-server",
        },
        options.redis_pause.map_or(String::new(), |(start, length)| format!(
            ", redis paused {:.0}-{:.0} s",
            start.as_secs_f64(),
            (start + length).as_secs_f64()
        ))
    )?;
    out.flush()?;

    let started = Instant::now();
    // Redis hangs for the window, then answers again.
    let pause = match (&redis, options.redis_pause) {
        (Some(redis), Some((start, length))) => {
            let pid = redis.pid().context("redis-server is running")?;
            Some(tokio::spawn(async move {
                tokio::time::sleep_until(started + start).await;
                signal(pid, "-STOP");
                tokio::time::sleep(length).await;
                signal(pid, "-CONT");
            }))
        }
        _ => None,
    };
    let started_wall = SystemTime::now();
    let (finish_driver, driver_finish) = oneshot::channel::<()>();
    let driver = tokio::spawn(drive_faults(
        fleet,
        planned,
        options.seed,
        started,
        started_wall,
        driver_finish,
    ));

    let (codes, answers) =
        send_traffic(&options, &hook_urls, otp_life, started, started_wall).await?;
    let answered_in = started.elapsed();
    // What the fleet keeps in Redis with every code of the run still alive: for sizing.
    let redis_held = match (&redis, options.redis_pause) {
        (Some(redis), None) => Some(redis_usage(redis)),
        _ => None,
    };

    // The schedule goes on through the last code's life; then background delivery has ended.
    tokio::time::sleep_until(started + horizon).await;
    if let Some(pause) = pause {
        pause.await.context("redis pause task")?;
    }
    for server in servers {
        server.stop().await?;
    }
    drop(redis);
    let _ = finish_driver.send(());
    let (received, applied) = driver.await.context("fault driver task")??;

    let index_by_code: std::collections::HashMap<&str, usize> =
        codes.iter().enumerate().map(|(index, code)| (code.code.as_str(), index)).collect();
    let sends: Vec<Send> = received
        .iter()
        .map(|send| {
            let at = send.received_at.duration_since(started_wall).unwrap_or_default();
            Send {
                provider: send.provider,
                code_index: send.code.as_deref().and_then(|code| index_by_code.get(code).copied()),
                at,
                condition: report::condition_of(&applied, send.provider, at),
            }
        })
        .collect();
    let report = report::account(&RunRecord {
        codes: &codes,
        answers: &answers,
        sends: &sends,
        provider_ids: &provider_ids,
        applied: &applied,
        horizon,
        deadline,
    });
    report.write(&mut out)?;
    writeln!(
        out,
        "  throughput: {} answers in {:.1} s ({:.0}/s offered, {:.0}/s answered)",
        answers.len(),
        answered_in.as_secs_f64(),
        f64::from(options.rate),
        answers.len() as f64 / answered_in.as_secs_f64().max(0.001)
    )?;
    if let Some((keys, bytes)) = redis_held {
        writeln!(
            out,
            "  redis after the last answer: {keys} keys, {:.1} MB used ({:.0} bytes per code)",
            bytes as f64 / 1e6,
            bytes as f64 / f64::from(options.requests)
        )?;
    }
    out.flush()?;
    anyhow::ensure!(
        report.sends_unmatched == 0,
        "{} sends carried no code of this run: the harness cannot account for them",
        report.sends_unmatched
    );
    Ok(report)
}

fn mix_name(mix: Mix) -> &'static str {
    match mix {
        Mix::None => "none",
        Mix::Mild => "mild",
        Mix::Harsh => "harsh",
        Mix::PrimarySlow => "primary-slow",
        Mix::AllHang => "all-hang",
    }
}

/// The server's configuration: shipped defaults but for the deadline, the adapters' timeouts
/// and the guard, which watches only (the harness's traffic, hundreds of codes a minute from
/// one address, is what SMS pumping looks like).
fn server_config(fleet: &Fleet, redis_url: Option<&str>) -> String {
    let route: Vec<String> = fleet.ids().iter().map(|id| format!("\"{id}\"")).collect();
    format!(
        r#"[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"

[okta]
path = "/okta/telephony"
deadline_ms = {DEADLINE_MS}
report = "always_success"
default_region = "US"

[okta.auth]
header = "Authorization"
secrets = ["{HOOK_SECRET}"]

[logging]
format = "text"
phone_hash_key = "chaos-phone-hash-key"

[guard]
mode = "monitor"

{state}
{providers}
[[routes]]
name = "everywhere"
countries = ["*"]
providers = [{route}]
"#,
        providers = fleet.provider_config(PROVIDER_TIMEOUT_MS),
        route = route.join(", "),
        state = redis_url.map_or(String::new(), |url| format!(
            "[state]\nbackend = \"redis\"\nurl = \"{url}\"\n"
        ))
    )
}

/// Applies each provider's phases at their offsets and drains the journals, until told to
/// finish (after the server stopped); returns every send and when each phase was applied.
async fn drive_faults(
    mut fleet: Fleet,
    planned: Vec<Timeline>,
    seed: u64,
    started: Instant,
    started_wall: SystemTime,
    mut finish: oneshot::Receiver<()>,
) -> anyhow::Result<(Vec<fleet::ReceivedSend>, Vec<Timeline>)> {
    // (offset, provider, phase index), in time order.
    let mut switches: Vec<(Duration, usize, usize)> = planned
        .iter()
        .enumerate()
        .flat_map(|(provider, timeline)| {
            timeline.iter().enumerate().map(move |(index, phase)| (phase.start, provider, index))
        })
        .collect();
    switches.sort_unstable();
    let mut applied: Vec<Timeline> = vec![Vec::new(); planned.len()];
    let mut received = Vec::new();
    let mut next_switch = 0;
    let mut next_drain = started + DRAIN_EVERY;
    loop {
        let switch_at = switches.get(next_switch).map(|(offset, _, _)| started + *offset);
        let wake_at = switch_at.map_or(next_drain, |at| at.min(next_drain));
        tokio::select! {
            biased;
            _ = &mut finish => break,
            () = tokio::time::sleep_until(wake_at) => {}
        }
        if switch_at.is_some_and(|at| at <= Instant::now()) {
            let (_, provider, index) = switches[next_switch];
            next_switch += 1;
            let condition = planned[provider][index].condition;
            // The wall-clock offset, on the journals' clock, taken before the switch: a send
            // read after this instant may already see the new condition.
            let start = SystemTime::now().duration_since(started_wall).unwrap_or_default();
            let phase_seed = seed ^ ((provider as u64) << 40) ^ index as u64;
            fleet.members[provider].apply(condition, phase_seed).await?;
            // The first phase is in force from the start, whatever the exact instant.
            let start = if index == 0 { Duration::ZERO } else { start };
            applied[provider].push(Phase { start, condition });
        }
        if Instant::now() >= next_drain {
            received.extend(fleet.take_received());
            next_drain += DRAIN_EVERY;
        }
    }
    received.extend(fleet.take_received());
    fleet.stop().await;
    Ok((received, applied))
}

/// Sends every code at the configured rate, with its repeats; returns the codes and every
/// answer once all are in.
async fn send_traffic(
    options: &ChaosOptions,
    hook_urls: &[String],
    otp_life: Duration,
    started: Instant,
    started_wall: SystemTime,
) -> anyhow::Result<(Vec<CodeRecord>, Vec<Answer>)> {
    let client = reqwest::Client::builder()
        .timeout(CLIENT_TIMEOUT)
        .pool_max_idle_per_host(512)
        .build()
        .context("building the HTTP client")?;
    let mut rng = StdRng::seed_from_u64(options.seed ^ 0x7265_7065_6174);
    let code_offset = rng.random_range(0..1_000_000u64);
    let interval = Duration::from_secs_f64(1.0 / f64::from(options.rate));
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut codes = Vec::with_capacity(options.requests as usize);
    let mut answers = Vec::new();
    let mut in_flight: JoinSet<Vec<(Answer, Duration)>> = JoinSet::new();
    for index in 0..options.requests as usize {
        ticker.tick().await;
        let repeat = rng.random_bool(options.retry_share).then(|| {
            if rng.random_bool(0.5) {
                Repeat::WhileInFlight(Duration::from_millis(rng.random_range(100..2_000)))
            } else {
                Repeat::AfterAnswer(Duration::from_millis(rng.random_range(0..1_000)))
            }
        });
        let code = harness::passcode(index as u64, code_offset);
        let sent_at = started.elapsed();
        let expires_wall = SystemTime::now() + otp_life;
        let expires_at = expires_wall.duration_since(started_wall).unwrap_or_default();
        let body = okta_request(options.seed, index, &code, expires_wall);
        codes.push(CodeRecord { code, sent_at, expires_at, repeat_sent_at: None });
        let client = client.clone();
        // The load balancer: round robin, and a repeat lands on the next replica.
        let url = hook_urls[index % hook_urls.len()].clone();
        let again_url = hook_urls[(index + 1) % hook_urls.len()].clone();
        in_flight.spawn(async move {
            let mut answers = Vec::new();
            match repeat {
                None => answers.push(post(&client, &url, &body, index, false, started).await),
                Some(Repeat::WhileInFlight(delay)) => {
                    let repeat = async {
                        tokio::time::sleep(delay).await;
                        post(&client, &again_url, &body, index, true, started).await
                    };
                    let (first, again) =
                        tokio::join!(post(&client, &url, &body, index, false, started), repeat);
                    answers.extend([first, again]);
                }
                Some(Repeat::AfterAnswer(delay)) => {
                    answers.push(post(&client, &url, &body, index, false, started).await);
                    tokio::time::sleep(delay).await;
                    answers.push(post(&client, &again_url, &body, index, true, started).await);
                }
            }
            answers
        });
        while let Some(joined) = in_flight.try_join_next() {
            absorb(joined, &mut codes, &mut answers)?;
        }
    }
    // Requests are bounded by the client timeout, so this ends.
    while let Some(joined) = in_flight.join_next().await {
        absorb(joined, &mut codes, &mut answers)?;
    }
    Ok((codes, answers))
}

/// The harness's Redis: its key count and `used_memory` in bytes.
fn redis_usage(redis: &switchboard_sim::redis::RedisServer) -> (u64, u64) {
    let number = |text: &str, field: &str| -> u64 {
        text.lines()
            .find_map(|line| line.strip_prefix(field))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or(0)
    };
    let keys = number(&redis.command(&["DBSIZE"]), ":");
    let bytes = number(&redis.command(&["INFO", "memory"]), "used_memory:");
    (keys, bytes)
}

/// SIGSTOP/SIGCONT to the harness's redis-server.
fn signal(pid: u32, signal: &str) {
    let _ = std::process::Command::new("kill").arg(signal).arg(pid.to_string()).status();
}

/// Keeps a finished request task's answers, noting when repeats were sent.
fn absorb(
    joined: Result<Vec<(Answer, Duration)>, tokio::task::JoinError>,
    codes: &mut [CodeRecord],
    answers: &mut Vec<Answer>,
) -> anyhow::Result<()> {
    for (answer, sent_at) in joined.context("a request task failed")? {
        if answer.is_repeat {
            codes[answer.code_index].repeat_sent_at = Some(sent_at);
        }
        answers.push(answer);
    }
    Ok(())
}

/// Posts one request; the answer and when it was sent (from the run's start).
async fn post(
    client: &reqwest::Client,
    url: &str,
    body: &serde_json::Value,
    code_index: usize,
    is_repeat: bool,
    started: Instant,
) -> (Answer, Duration) {
    let sent = Instant::now();
    let (outcome, detail) =
        match client.post(url).header("Authorization", HOOK_SECRET).json(body).send().await {
            Ok(response) if response.status() == reqwest::StatusCode::OK => {
                match response.json::<serde_json::Value>().await {
                    Ok(answer) => match OktaAnswer::from_json(&answer) {
                        Ok(answer) => {
                            // `outcome=…; attempts=…`: what switchboard tells Okta's System Log.
                            let detail = answer.metadata("outcome").map(str::to_owned);
                            (AnswerOutcome::Status(answer.status.as_str().to_owned()), detail)
                        }
                        Err(_) => (AnswerOutcome::Status("malformed".to_owned()), None),
                    },
                    Err(_) => (AnswerOutcome::NoAnswer, None),
                }
            }
            Ok(response) => (AnswerOutcome::Http(response.status().as_u16()), None),
            Err(_) => (AnswerOutcome::NoAnswer, None),
        };
    let answer = Answer { code_index, is_repeat, latency: sent.elapsed(), outcome, detail };
    (answer, sent.duration_since(started))
}

/// An Okta request with a unique event id, number and code.
fn okta_request(seed: u64, index: usize, code: &str, expires: SystemTime) -> serde_json::Value {
    // Four in five numbers are American, one British mobile; all distinct.
    let phone = if index % 5 == 4 {
        format!("+447400{:06}", index / 5)
    } else {
        format!("+1415{:07}", 2_000_000 + index)
    };
    harness::okta_request(index as u64, Channel::Sms, &phone, code)
        .event_id(format!("chaos-{seed}-{index:06}"))
        .expires(expires)
        .to_json()
}
