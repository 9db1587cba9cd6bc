//! `load`: the load harness of issue 13. Build the server first, then run a scenario:
//!
//! ```text
//! cargo build --release -p switchboard
//! cargo run --release -p switchboard-benches --bin load -- all
//! cargo run --release -p switchboard-benches --bin load -- rate --rate 1000 --duration 30
//! ```
//!
//! Every scenario measures the release `switchboard serve` and the bare forwarder in the same
//! run, against the same Twilio emulator, with the same client, and prints each figure and its
//! ratio to the forwarder's. BENCHMARKS.md ("Load harness") has the results.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use switchboard_benches::load::{self, Bench, Fleet, forwarder, target};

#[derive(Parser)]
#[command(about = "Load harness: the release switchboard beside a bare forwarder, over loopback")]
struct Cli {
    /// The `switchboard` binary to serve (default: `switchboard` beside this binary, i.e.
    /// `target/release/switchboard`).
    #[arg(long, global = true)]
    server_bin: Option<PathBuf>,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// Highest throughput: closed loop, N connections.
    Max {
        #[arg(long, default_value_t = 64)]
        connections: usize,
        /// Seconds per system.
        #[arg(long, default_value_t = 10)]
        duration: u64,
    },
    /// A fixed rate, open loop (default: half of a closed-loop probe); router overhead.
    Rate {
        /// Requests per second (default: half of switchboard's 5 s closed-loop throughput).
        #[arg(long)]
        rate: Option<f64>,
        /// Seconds per system.
        #[arg(long, default_value_t = 15)]
        duration: u64,
    },
    /// A provider that answers after 50 ms, many connections.
    Slow {
        #[arg(long, default_value_t = 50)]
        latency_ms: u64,
        #[arg(long, default_value_t = 400)]
        connections: usize,
        #[arg(long, default_value_t = 10)]
        duration: u64,
    },
    /// A provider that never answers, N requests in flight at once: peak RSS. The default is
    /// 9,500, not 10,000: each needs two sockets per process, and this machine's open-files
    /// limit is 20,000 (hard, not raisable in its container).
    Hang {
        #[arg(long, default_value_t = 9_500)]
        requests: u64,
        /// Requests per second (all of them arrive within requests / rate seconds).
        #[arg(long, default_value_t = 10_000.0)]
        rate: f64,
    },
    /// N codes remembered (otpExpires in 1 h): memory per code.
    Codes {
        #[arg(long, default_value_t = 100_000)]
        requests: u64,
        #[arg(long, default_value_t = 2_500.0)]
        rate: f64,
    },
    /// Issue 13 item 3: `max` and `rate` with one replica in memory, three on one Redis (a
    /// redis-server the harness starts), and the forwarder.
    Fleet {
        #[arg(long, default_value_t = 3)]
        replicas: usize,
        #[arg(long, default_value_t = 64)]
        connections: usize,
        /// Seconds per system, for each of max and rate.
        #[arg(long, default_value_t = 10)]
        duration: u64,
        /// Requests per second for the rate part (default: half of one replica's probe).
        #[arg(long)]
        rate: Option<f64>,
    },
    /// Every scenario above with its defaults.
    All,
    /// The bare forwarder itself (the harness starts it as a child process).
    #[command(hide = true)]
    Forward {
        #[arg(long)]
        listen: std::net::SocketAddr,
        #[arg(long)]
        upstream: String,
        #[arg(long)]
        account_sid: String,
        #[arg(long)]
        auth_token: String,
        #[arg(long)]
        timeout_ms: u64,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Scenario::Forward { listen, upstream, account_sid, auth_token, timeout_ms } =
        cli.scenario
    {
        anyhow::ensure!(listen.ip().is_loopback(), "the forwarder listens on loopback only");
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let upstream = forwarder::Upstream {
            base_url: upstream,
            account_sid,
            auth_token,
            timeout: Duration::from_millis(timeout_ms),
        };
        return forwarder::serve(listener, upstream).await;
    }
    let server_bin = cli.server_bin.unwrap_or_else(target::default_server_bin);
    println!(
        "switchboard load harness: {} serving on loopback (child process), Twilio emulator and \
         load generator in this process, {} CPUs",
        server_bin.display(),
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    let mut bench = Bench::start(server_bin).await?;
    let secs = Duration::from_secs;
    let single = [Fleet::SINGLE];
    match cli.scenario {
        Scenario::Max { connections, duration } => {
            load::max(&mut bench, connections, secs(duration), &single).await?;
        }
        Scenario::Rate { rate, duration } => {
            load::rate(&mut bench, rate, secs(duration), &single).await?;
        }
        Scenario::Slow { latency_ms, connections, duration } => {
            load::slow(&mut bench, Duration::from_millis(latency_ms), connections, secs(duration))
                .await?;
        }
        Scenario::Hang { requests, rate } => {
            load::hang(&mut bench, requests, rate).await?;
        }
        Scenario::Codes { requests, rate } => {
            load::codes(&mut bench, requests, rate).await?;
        }
        Scenario::Fleet { replicas, connections, duration, rate } => {
            let fleets = [Fleet::SINGLE, Fleet { replicas, redis: true }];
            load::max(&mut bench, connections, secs(duration), &fleets).await?;
            load::rate(&mut bench, rate, secs(duration), &fleets).await?;
        }
        Scenario::All => {
            load::max(&mut bench, 64, secs(10), &single).await?;
            load::rate(&mut bench, None, secs(15), &single).await?;
            load::slow(&mut bench, Duration::from_millis(50), 400, secs(10)).await?;
            load::hang(&mut bench, 9_500, 10_000.0).await?;
            load::codes(&mut bench, 100_000, 2_500.0).await?;
            let fleets = [Fleet::SINGLE, Fleet { replicas: 3, redis: true }];
            load::max(&mut bench, 64, secs(10), &fleets).await?;
            load::rate(&mut bench, None, secs(10), &fleets).await?;
        }
        Scenario::Forward { .. } => unreachable!("handled above"),
    }
    println!(
        "\nload generator + emulator (this process) peak RSS: {} KiB",
        target::own_peak_rss_kib()?
    );
    Ok(())
}
