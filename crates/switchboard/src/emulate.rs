//! `switchboard emulate`: run a provider emulator in its own process, for trying switchboard
//! (`serve` with `config/demo.toml`) without accounts or network.

use std::future::Future;
use std::net::SocketAddr;

use anyhow::Context;
use switchboard_sim::twilio::{TwilioAccount, TwilioEmulator};

/// Options of `switchboard emulate`.
#[derive(Debug, clap::Args)]
pub struct EmulateOptions {
    /// Which provider API to emulate.
    #[command(subcommand)]
    pub provider: EmulatedProvider,
}

/// The emulators available.
#[derive(Debug, clap::Subcommand)]
pub enum EmulatedProvider {
    /// Twilio's REST API (Messages.json, Calls.json, the account resource).
    Twilio {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:4010")]
        listen: SocketAddr,
        /// Account SID the emulator accepts.
        #[arg(long, default_value = "AC00000000000000000000000000000001")]
        account_sid: String,
        /// Auth token the emulator accepts.
        #[arg(long, env = "SWITCHBOARD_EMULATOR_AUTH_TOKEN", default_value = "demo-primary-token")]
        auth_token: String,
    },
}

/// Serves the emulator until `shutdown` completes.
pub async fn run(
    options: EmulateOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    match options.provider {
        EmulatedProvider::Twilio { listen, account_sid, auth_token } => {
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("cannot listen on {listen}"))?;
            let account = TwilioAccount::new(&account_sid, &auth_token);
            let bound = listener.local_addr().context("listener address")?;
            eprintln!(
                "twilio emulator on http://{bound} (faults: PUT /__sim/faults, journal: GET /__sim/requests)"
            );
            TwilioEmulator::new(account).serve(listener, shutdown).await;
            Ok(())
        }
    }
}
