//! The `switchboard` command: serve the Okta hook, check a config, run the demo, an emulator or
//! the simulator.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use switchboard::{chaos, demo, emulate, simulate};
use switchboard_server::config::LogFormat;
use switchboard_server::{Server, Settings};

#[derive(Parser)]
#[command(
    name = "switchboard",
    version,
    about = "Okta telephony inline hook with multi-provider OTP routing"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the Okta hook and the admin endpoints.
    Serve {
        /// Configuration file.
        #[arg(long, short, env = "SWITCHBOARD_CONFIG")]
        config: PathBuf,
    },
    /// Validate a configuration file without starting anything; exits non-zero naming the bad key.
    CheckConfig {
        /// Configuration file.
        config: PathBuf,
    },
    /// Explain how a number would be routed: the matching rule, every candidate with its health,
    /// latency, price and score, and why each was chosen or left out.
    Explain {
        /// Configuration file.
        #[arg(long, short, env = "SWITCHBOARD_CONFIG")]
        config: PathBuf,
        /// The phone number, as Okta sends it (`+447700900123`).
        number: String,
        /// `sms` or `voice`.
        #[arg(long, default_value = "sms")]
        channel: String,
        /// Okta request type (`verification`, `enrollment`, `password_reset`, `account_unlock`),
        /// for rules that depend on it.
        #[arg(long)]
        request_type: Option<String>,
        /// Ask a running server's admin listener (`http://127.0.0.1:9090`) for live health; the
        /// token comes from `SWITCHBOARD_ADMIN_TOKEN`.
        #[arg(long)]
        admin: Option<String>,
    },
    /// Run switchboard against emulated providers, break one (its API, or with `--fault
    /// filtering` its delivery to one country), and watch traffic fail over.
    Demo(demo::DemoOptions),
    /// Benchmark the real server against emulated providers whose faults change every few
    /// seconds: lost codes, duplicates, late answers and second sends, from the emulators'
    /// journals.
    Chaos(chaos::ChaosOptions),
    /// Run a provider emulator (for trying switchboard without accounts).
    Emulate(emulate::EmulateOptions),
    /// Replay a scenario in virtual time through the real server and two baselines.
    Simulate(simulate::SimulateOptions),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve { config } => serve(config).await,
            Command::CheckConfig { config } => check_config(&config),
            Command::Explain { config, number, channel, request_type, admin } => {
                explain(&config, number, &channel, request_type, admin).await
            }
            Command::Demo(options) => {
                let _logs = init_logging(LogFormat::Text, "warn");
                demo::run(options, std::io::stdout()).await.map(|_| ())
            }
            Command::Chaos(options) => {
                // The server logs every failed attempt; under chaos that is thousands of lines.
                let _logs = init_logging(LogFormat::Text, "error");
                chaos::run(options, std::io::stdout()).await.map(|_| ())
            }
            Command::Emulate(options) => {
                let _logs = init_logging(LogFormat::Text, "info");
                emulate::run(options, shutdown_signal()).await
            }
            Command::Simulate(options) => {
                // The simulator starts its own paused-clock runtimes, which cannot nest in this
                // one: run it on a plain thread.
                std::thread::spawn(move || simulate::run(&options, std::io::stdout()).map(|_| ()))
                    .join()
                    .map_err(|_| anyhow::anyhow!("the simulator panicked"))?
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: PathBuf) -> anyhow::Result<()> {
    let settings =
        Settings::load(&config).with_context(|| format!("config {}", config.display()))?;
    // Held until `serve` returns: dropping it writes out the lines still queued.
    let _logs = init_logging(settings.logging.format, "info");
    let hook_listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("server.listen {}", settings.listen))?;
    let admin_listener = tokio::net::TcpListener::bind(settings.admin_listen)
        .await
        .with_context(|| format!("server.admin_listen {}", settings.admin_listen))?;
    let grace = settings.shutdown_grace;
    // The bound addresses, not the configured ones: with port 0 the OS picks.
    tracing::info!(
        listen = %hook_listener.local_addr()?,
        admin_listen = %admin_listener.local_addr()?,
        path = %settings.okta.path,
        providers = settings.providers.len(),
        "switchboard serving"
    );
    let server = Server::new(settings).with_source(config.clone());
    // Operators edit rules and rotate mounted secrets in place: pick changes up by polling
    // (works on every filesystem and in Kubernetes' symlink-swapped secret volumes) and on SIGHUP.
    let watcher = server.watch(Duration::from_secs(2));
    #[cfg(unix)]
    let hangups = {
        let server = server.clone();
        let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .context("cannot listen for SIGHUP")?;
        tokio::spawn(async move {
            while hangup.recv().await.is_some() {
                tracing::info!("SIGHUP: reloading configuration");
                // Errors are logged and counted inside; the running config stays.
                let _ = server.reload_from_source();
            }
        })
    };
    server.run(hook_listener, admin_listener, grace, shutdown_signal()).await?;
    watcher.stop().await;
    #[cfg(unix)]
    hangups.abort();
    tracing::info!("switchboard stopped");
    Ok(())
}

fn check_config(config: &std::path::Path) -> anyhow::Result<()> {
    let settings =
        Settings::load(config).with_context(|| format!("config {}", config.display()))?;
    println!(
        "{}: ok ({} providers, {} routes, hook on {}{}, admin on {})",
        config.display(),
        settings.providers.len(),
        settings.routes.rules().len(),
        settings.listen,
        settings.okta.path,
        settings.admin_listen,
    );
    Ok(())
}

async fn explain(
    config: &std::path::Path,
    number: String,
    channel: &str,
    request_type: Option<String>,
    admin: Option<String>,
) -> anyhow::Result<()> {
    let channel = switchboard_core::Channel::parse(channel)
        .with_context(|| format!("--channel {channel}: must be sms or voice"))?;
    if let Some(admin) = admin {
        let token = std::env::var("SWITCHBOARD_ADMIN_TOKEN")
            .context("SWITCHBOARD_ADMIN_TOKEN must hold the admin token for --admin")?;
        let mut query = vec![
            ("number", number),
            ("channel", channel.as_str().to_owned()),
            ("format", "text".into()),
        ];
        if let Some(request_type) = request_type {
            query.push(("request_type", request_type));
        }
        let url = format!("{}/admin/explain", admin.trim_end_matches('/'));
        let response = reqwest::Client::new()
            .get(&url)
            .bearer_auth(token)
            .query(&query)
            .send()
            .await
            .with_context(|| format!("--admin {url}"))?;
        let status = response.status();
        let body = response.text().await.context("reading the answer")?;
        anyhow::ensure!(status.is_success(), "{url}: {status}: {body}");
        print!("{body}");
        return Ok(());
    }
    let settings =
        Settings::load(config).with_context(|| format!("config {}", config.display()))?;
    let purpose = match request_type {
        Some(text) => Some(switchboard_server::explain::parse_purpose(&text).with_context(|| format!("--request-type {text}: must be enrollment, verification, account_unlock or password_reset"))?),
        None => None,
    };
    let query = switchboard_server::explain::ExplainQuery { number, channel, purpose };
    let text = switchboard_server::explain::explain_offline(&settings, &query)
        .map_err(|error| anyhow::anyhow!("number: {error}"))?;
    print!("{text}");
    Ok(())
}

/// Logs to standard error through a writer thread of its own: a worker formats its line and
/// queues it, and never waits on the write itself, so a slow log sink (a full pipe to the
/// container runtime, a busy disk) cannot stall the hook. The writer thread batches what is
/// queued into one write (`BufWriter`, flushed whenever the queue is empty). The queue holds
/// 128,000 lines; past that a worker waits rather than drop a line. Lines still queued are written
/// when the returned guard drops.
fn init_logging(
    format: LogFormat,
    default_level: &str,
) -> tracing_appender::non_blocking::WorkerGuard {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("switchboard-log")
        .finish(std::io::BufWriter::with_capacity(64 * 1024, std::io::stderr()));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer);
    let result = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
    if let Err(error) = result {
        eprintln!("warning: logging already initialised: {error}");
    }
    guard
}

/// Completes on Ctrl-C or SIGTERM (what Kubernetes sends before killing a pod).
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received; draining");
}
