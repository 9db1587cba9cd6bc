//! The load harness (issue 13): the release `switchboard serve` as a child process in front of
//! the Twilio emulator over loopback, and in the same run the bare forwarder (one provider call
//! per request, nothing else) in front of the same emulator, driven by the same client, so
//! every figure is also printed as a ratio to the forwarder's.
//!
//! The emulator and the load generator share this process (two cores: one process fewer to
//! schedule); each system under load is its own child process, started afresh for each
//! measurement, so its peak RSS (`VmHWM`) is its own and that measurement's.

pub mod client;
pub mod forwarder;
pub mod report;
pub mod target;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use switchboard_core::Channel;
use switchboard_server::okta::OktaRequest;
use switchboard_sim::faults::{Fault, Faults};
use switchboard_sim::twilio::{RunningEmulator, TwilioAccount, TwilioEmulator};

use self::client::Load;
use self::forwarder::Upstream;
use self::report::{Measured, Table};
use self::target::{ServerSettings, Target};

const ACCOUNT_SID: &str = "AC44444444444444444444444444444444";
const AUTH_TOKEN: &str = "load-twilio-token";
/// The end user's address in every request (a documentation range).
const USER_ADDRESS: &str = "198.51.100.7";
/// A healthy provider's adapter timeout, as the chaos harness's.
const HEALTHY_TIMEOUT_MS: u64 = 1_000;
/// The adapter's longest timeout: a hanging provider holds each delivery this long.
const HANG_TIMEOUT_MS: u64 = 60_000;
/// The forwarder answers a hanging provider's request when switchboard does: at Okta's
/// deadline (2,500 ms) less the 100 ms switchboard keeps to write the answer.
const FORWARDER_HANG_TIMEOUT: Duration = Duration::from_millis(2_400);
/// Warm-up before each measurement: this many connections for this long, not counted.
const WARM_UP: (usize, Duration) = (16, Duration::from_secs(1));

/// Request `index`'s phone: a US number of its own (+1 415 2xx xxxx), unique for 7 million.
#[must_use]
pub fn phone(index: u64) -> String {
    format!("+1415{:07}", 2_000_000 + index % 7_000_000)
}

/// Request `index`'s six-digit code (7,919 is prime to 10^6: distinct for a million requests).
#[must_use]
pub fn passcode(index: u64) -> String {
    format!("{:06}", (index * 7_919) % 1_000_000)
}

/// Request `index`'s body: a fresh `eventId`, its own number, code and user, `otpExpires`
/// `life` from now.
#[must_use]
pub fn okta_body(index: u64, life: Duration) -> Bytes {
    OktaRequest::new(Channel::Sms, phone(index), passcode(index))
        .user_id(format!("00u{index:017}"))
        .ip_address(USER_ADDRESS)
        .expires_in(life)
        .to_string()
        .into()
}

/// What every scenario shares: the emulator, where children put their configs and logs, the
/// server binary, and the next unused request index.
pub struct Bench {
    twilio: RunningEmulator,
    dir: tempfile::TempDir,
    server_bin: PathBuf,
    next_index: u64,
    otp_life: Duration,
    /// Sends the emulator received since it started, drained from its bounded journal.
    sends: Arc<AtomicU64>,
}

impl Bench {
    /// Starts the Twilio emulator on loopback.
    pub async fn start(server_bin: PathBuf) -> anyhow::Result<Bench> {
        anyhow::ensure!(
            server_bin.is_file(),
            "no server binary at {} (cargo build --release -p switchboard, or --server-bin)",
            server_bin.display()
        );
        let twilio = TwilioEmulator::start(TwilioAccount::new(ACCOUNT_SID, AUTH_TOKEN)).await?;
        let sends = Arc::new(AtomicU64::new(0));
        // The journal keeps only its newest 10,000 records: drain it often, counting.
        let (emulator, counted) = (twilio.emulator().clone(), Arc::clone(&sends));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                counted.fetch_add(emulator.take_received().len() as u64, Ordering::Relaxed);
            }
        });
        Ok(Bench {
            twilio,
            dir: tempfile::Builder::new().prefix("switchboard-load-").tempdir()?,
            server_bin,
            next_index: 0,
            otp_life: Duration::from_secs(300),
            sends,
        })
    }

    fn settings(&self, timeout_ms: u64) -> ServerSettings {
        ServerSettings {
            twilio_url: self.twilio.base_url(),
            account_sid: ACCOUNT_SID.to_owned(),
            auth_token: AUTH_TOKEN.to_owned(),
            timeout_ms,
            max_in_flight: None,
            max_connections: None,
            redis_url: None,
        }
    }

    fn upstream(&self, timeout: Duration) -> Upstream {
        Upstream {
            base_url: self.twilio.base_url(),
            account_sid: ACCOUNT_SID.to_owned(),
            auth_token: AUTH_TOKEN.to_owned(),
            timeout,
        }
    }

    fn switchboard(
        &self,
        name: &str,
        settings: &ServerSettings,
        replicas: usize,
    ) -> anyhow::Result<Target> {
        Target::switchboard(name, &self.server_bin, settings, replicas, self.dir.path())
    }

    fn forwarder(&self, timeout: Duration) -> anyhow::Result<Target> {
        Target::forwarder(&self.upstream(timeout), self.dir.path())
    }

    fn load(&self, target: &Target, timeout: Duration) -> Load {
        let with_auth = !target.name.starts_with("forwarder");
        let life = self.otp_life;
        Load {
            urls: Arc::new(target.urls.clone()),
            auth: with_auth.then(|| ("Authorization".to_owned(), target::HOOK_SECRET.to_owned())),
            body: Arc::new(move |index| okta_body(index, life)),
            timeout,
        }
    }

    /// Sends the emulator has received so far.
    fn sends(&self) -> u64 {
        let drained = self.twilio.take_received().len() as u64;
        self.sends.fetch_add(drained, Ordering::Relaxed) + drained
    }

    fn take(&mut self, count: u64) -> u64 {
        let first = self.next_index;
        self.next_index += count;
        first
    }

    async fn warm_up(&mut self, load: &Load) -> anyhow::Result<()> {
        let first = self.next_index;
        let (_, next) = client::closed_loop(load, first, WARM_UP.0, WARM_UP.1).await?;
        self.next_index = next;
        Ok(())
    }

    async fn closed(
        &mut self,
        target: &Target,
        connections: usize,
        duration: Duration,
    ) -> anyhow::Result<Measured> {
        let load = self.load(target, Duration::from_secs(10));
        self.warm_up(&load).await?;
        let first = self.next_index;
        let sends = self.sends();
        let (outcome, next) = client::closed_loop(&load, first, connections, duration).await?;
        self.next_index = next;
        Measured::of(target, outcome, self.sends() - sends)
    }

    async fn open(
        &mut self,
        target: &Target,
        rate: f64,
        count: u64,
        timeout: Duration,
        warm_up: bool,
    ) -> anyhow::Result<Measured> {
        let load = self.load(target, timeout);
        if warm_up {
            self.warm_up(&load).await?;
        }
        let first = self.take(count);
        let sends = self.sends();
        let outcome = client::open_loop(&load, first, count, rate, OPEN_LOOP_MAX_IN_FLIGHT).await?;
        Measured::of(target, outcome, self.sends() - sends)
    }
}

/// The open loop's cap on requests in flight: generous (a request that finds it full waits,
/// and is charged for the wait).
const OPEN_LOOP_MAX_IN_FLIGHT: usize = 20_000;

/// Where switchboard's state lives in a run, and how many replicas share it.
#[derive(Clone, Copy, Debug)]
pub struct Fleet {
    /// Replicas behind the client's round-robin.
    pub replicas: usize,
    /// `[state] backend = "redis"` on a `redis-server` the harness starts.
    pub redis: bool,
}

impl Fleet {
    /// One replica in memory.
    pub const SINGLE: Fleet = Fleet { replicas: 1, redis: false };

    fn name(self) -> String {
        match (self.replicas, self.redis) {
            (1, false) => "switchboard".to_owned(),
            (n, false) => format!("switchboard x{n} memory"),
            (n, true) => format!("switchboard x{n} redis"),
        }
    }
}

/// A `redis-server` for a fleet run, if it asks for one.
fn redis_for(fleet: Fleet) -> anyhow::Result<Option<switchboard_sim::redis::RedisServer>> {
    if !fleet.redis {
        return Ok(None);
    }
    // `start` panics when redis-server is missing; say what to do instead.
    std::panic::catch_unwind(switchboard_sim::redis::RedisServer::start)
        .map(Some)
        .map_err(|_| anyhow::anyhow!("cannot start redis-server (scripts/setup.sh installs it)"))
}

/// Scenario `max`: the highest throughput, closed loop (as fast as possible, so *not* free of
/// coordinated omission: its latencies are the closed loop's).
pub async fn max(
    bench: &mut Bench,
    connections: usize,
    duration: Duration,
    fleets: &[Fleet],
) -> anyhow::Result<Vec<Measured>> {
    let mut table = Table::new(
        "max",
        &format!(
            "highest throughput: closed loop, {connections} connections, {} s each after 1 s of warm-up; \
             latencies are the closed loop's (coordinated), see `rate` for open-loop ones",
            duration.as_secs()
        ),
    );
    let settings = bench.settings(HEALTHY_TIMEOUT_MS);
    for &fleet in fleets {
        let redis = redis_for(fleet)?;
        let settings =
            ServerSettings { redis_url: redis.as_ref().map(|r| r.url()), ..settings.clone() };
        let target = bench.switchboard(&fleet.name(), &settings, fleet.replicas)?;
        table.push(bench.closed(&target, connections, duration).await?);
    }
    let forwarder = bench.forwarder(Duration::from_millis(HEALTHY_TIMEOUT_MS))?;
    table.push(bench.closed(&forwarder, connections, duration).await?);
    Ok(table.print(false))
}

/// Scenario `rate`: a fixed rate, open loop; the router's overhead is switchboard's latency
/// minus the forwarder's. Without `rate`, half of a 5 s closed-loop probe of the first fleet.
pub async fn rate(
    bench: &mut Bench,
    rate: Option<f64>,
    duration: Duration,
    fleets: &[Fleet],
) -> anyhow::Result<Vec<Measured>> {
    let rate = match rate {
        Some(rate) => rate,
        None => {
            let fleet = fleets.first().copied().unwrap_or(Fleet::SINGLE);
            let redis = redis_for(fleet)?;
            let settings = ServerSettings {
                redis_url: redis.as_ref().map(|r| r.url()),
                ..bench.settings(HEALTHY_TIMEOUT_MS)
            };
            let target = bench.switchboard(&fleet.name(), &settings, fleet.replicas)?;
            let probe = bench.closed(&target, 64, Duration::from_secs(5)).await?;
            let half = (probe.outcome.throughput() / 2.0).floor();
            println!(
                "rate: {} did {:.0} req/s in a 5 s closed-loop probe (64 connections); half is {half:.0}/s",
                fleet.name(),
                probe.outcome.throughput()
            );
            half
        }
    };
    let count = (rate * duration.as_secs_f64()).round() as u64;
    let mut table = Table::new(
        "rate",
        &format!(
            "fixed rate, open loop: {count} requests at {rate:.0}/s ({} s) after 1 s of warm-up, \
             latency from each request's due time (coordinated-omission free)",
            duration.as_secs()
        ),
    );
    let timeout = Duration::from_secs(10);
    for &fleet in fleets {
        let redis = redis_for(fleet)?;
        let settings = ServerSettings {
            redis_url: redis.as_ref().map(|r| r.url()),
            ..bench.settings(HEALTHY_TIMEOUT_MS)
        };
        let target = bench.switchboard(&fleet.name(), &settings, fleet.replicas)?;
        table.push(bench.open(&target, rate, count, timeout, true).await?);
    }
    let forwarder = bench.forwarder(Duration::from_millis(HEALTHY_TIMEOUT_MS))?;
    table.push(bench.open(&forwarder, rate, count, timeout, true).await?);
    Ok(table.print(true))
}

/// Scenario `slow`: the provider answers after `latency`; a closed loop of many connections.
pub async fn slow(
    bench: &mut Bench,
    latency: Duration,
    connections: usize,
    duration: Duration,
) -> anyhow::Result<Vec<Measured>> {
    bench.twilio.set_faults(Faults::none().with_latency(latency, Duration::ZERO));
    let mut table = Table::new(
        "slow",
        &format!(
            "slow provider ({} ms per send): closed loop, {connections} connections, {} s each \
             after 1 s of warm-up; server.max_in_flight raised to {connections} + 512",
            latency.as_millis(),
            duration.as_secs()
        ),
    );
    let settings = ServerSettings {
        max_in_flight: Some(connections + 512),
        ..bench.settings(HEALTHY_TIMEOUT_MS)
    };
    let result = async {
        let target = bench.switchboard("switchboard", &settings, 1)?;
        table.push(bench.closed(&target, connections, duration).await?);
        drop(target);
        let forwarder = bench.forwarder(Duration::from_millis(HEALTHY_TIMEOUT_MS))?;
        table.push(bench.closed(&forwarder, connections, duration).await?);
        anyhow::Ok(())
    }
    .await;
    bench.twilio.set_faults(Faults::none());
    result?;
    Ok(table.print(true))
}

/// Scenario `hang`: the provider reads every request and never answers; `requests` arrive
/// within `requests / rate` seconds and all are in flight at once. Reports peak RSS.
pub async fn hang(bench: &mut Bench, requests: u64, rate: f64) -> anyhow::Result<Vec<Measured>> {
    // Each hung request holds two sockets in the server (Okta's, the provider's) and two in
    // this process (the client's, the emulator's); every process inherits this limit.
    let needed = requests * 2 + 500;
    if let Some(limit) = target::open_files_limit() {
        anyhow::ensure!(
            needed <= limit,
            "{requests} hung requests need {needed} open files per process (two sockets each), \
             the limit is {limit}: raise it (`ulimit -n`) or lower --requests"
        );
    }
    let mut table = Table::new(
        "hang",
        &format!(
            "hanging provider: {requests} requests at {rate:.0}/s, open loop, every one in flight at \
             once; switchboard answers at its deadline (2.5 s) and keeps each delivery for the \
             adapter's timeout ({} s); the forwarder gives up at {} ms",
            HANG_TIMEOUT_MS / 1_000,
            FORWARDER_HANG_TIMEOUT.as_millis()
        ),
    );
    let settings = ServerSettings {
        max_in_flight: Some(requests as usize + 1_000),
        max_connections: Some(requests as usize + 1_000),
        ..bench.settings(HANG_TIMEOUT_MS)
    };
    let timeout = Duration::from_secs(10);
    let result = async {
        let target = bench.switchboard("switchboard", &settings, 1)?;
        // Warm up with the provider healthy, then hang it.
        bench.warm_up(&bench.load(&target, timeout)).await?;
        bench.twilio.set_faults(Faults::always(Fault::Hang));
        table.push(bench.open(&target, rate, requests, timeout, false).await?);
        drop(target);
        bench.twilio.set_faults(Faults::none());
        let forwarder = bench.forwarder(FORWARDER_HANG_TIMEOUT)?;
        bench.warm_up(&bench.load(&forwarder, timeout)).await?;
        bench.twilio.set_faults(Faults::always(Fault::Hang));
        table.push(bench.open(&forwarder, rate, requests, timeout, false).await?);
        anyhow::Ok(())
    }
    .await;
    bench.twilio.set_faults(Faults::none());
    result?;
    let measured = table.print(false);
    for row in &measured {
        let within = row.outcome.latency.count_between(0, 3_000_000);
        println!(
            "  {:<24} answered within 3 s (Okta's timeout): {within} of {}",
            row.name, row.outcome.sent
        );
    }
    Ok(measured)
}

/// Scenario `codes`: `requests` codes, each to a number of its own, with `otpExpires` an hour
/// away, so switchboard remembers every one; memory per code = (RSS after − RSS before) / codes.
pub async fn codes(bench: &mut Bench, requests: u64, rate: f64) -> anyhow::Result<Vec<Measured>> {
    bench.otp_life = Duration::from_secs(3_600);
    let mut table = Table::new(
        "codes",
        &format!(
            "{requests} codes remembered: unique eventId, number and code, otpExpires in 1 h, \
             {rate:.0}/s open loop after 1 s of warm-up; RSS read before, and 2 s after the last answer"
        ),
    );
    let result = async {
        let mut rows = Vec::new();
        let settings = bench.settings(HEALTHY_TIMEOUT_MS);
        for is_switchboard in [true, false] {
            let target = if is_switchboard {
                bench.switchboard("switchboard", &settings, 1)?
            } else {
                bench.forwarder(Duration::from_millis(HEALTHY_TIMEOUT_MS))?
            };
            let timeout = Duration::from_secs(10);
            bench.warm_up(&bench.load(&target, timeout)).await?;
            let before = target.rss_kib()?;
            let measured = bench.open(&target, rate, requests, timeout, false).await?;
            tokio::time::sleep(Duration::from_secs(2)).await;
            let after = target.rss_kib()?;
            rows.push((measured.name.clone(), before, after));
            table.push(measured);
        }
        anyhow::Ok(rows)
    }
    .await;
    bench.otp_life = Duration::from_secs(300);
    let rows = result?;
    let measured = table.print(false);
    for (name, before, after) in rows {
        let per_code = after.saturating_sub(before) as f64 * 1_024.0 / requests as f64;
        println!(
            "  {name:<24} RSS before {before} KiB, after {after} KiB: {per_code:.0} bytes per code"
        );
    }
    Ok(measured)
}
