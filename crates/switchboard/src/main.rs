//! The `switchboard` command: serve the Okta hook, check a config, run the demo, an emulator or
//! the simulator.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use switchboard::{demo, emulate, simulate};
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
    /// Run switchboard against emulated providers, break one, and watch traffic fail over.
    Demo(demo::DemoOptions),
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
            Command::Demo(options) => {
                init_logging(LogFormat::Text, "warn");
                demo::run(options, std::io::stdout()).await.map(|_| ())
            }
            Command::Emulate(options) => {
                init_logging(LogFormat::Text, "info");
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
    init_logging(settings.logging.format, "info");
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
    watcher.abort();
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

fn init_logging(format: LogFormat, default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
    if let Err(error) = result {
        eprintln!("warning: logging already initialised: {error}");
    }
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
