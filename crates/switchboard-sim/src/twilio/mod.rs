//! An emulator of Twilio's REST API 2010-04-01: `Messages.json`, `Calls.json` and the account
//! resource, with Twilio's Basic auth, required parameters, error bodies and documented magic
//! test numbers (`To` `+15005550001` gives 21211, and so on; the full table is in `api.rs`),
//! and signed status callbacks to a send's `StatusCallback` (what they report is set with
//! [`TwilioEmulator::set_delivery`] or `PUT /__sim/delivery`).
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use switchboard_sim::twilio::{TwilioAccount, TwilioEmulator};
//! use switchboard_sim::{Fault, Faults};
//!
//! let account = TwilioAccount::new("AC00000000000000000000000000000000", "token");
//! let twilio = TwilioEmulator::start(account).await?;
//! twilio.set_faults(Faults::always(Fault::RateLimit { retry_after_s: 2 }));
//! // point an adapter at twilio.base_url() ...
//! assert!(twilio.received().is_empty());
//! # Ok(()) }
//! ```

mod api;
mod callbacks;

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use axum::Router;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use tokio::net::TcpListener;

pub use self::callbacks::{Delivery, SentCallback, signature};
use crate::faults::{FaultInjector, Faults};
use crate::journal::Journal;
use crate::server::{self, RunningServer};

/// The credentials the emulator accepts.
#[derive(Clone, PartialEq, Eq)]
pub struct TwilioAccount {
    /// `AC` followed by 32 hex digits; must match the path's `AccountSid`.
    pub account_sid: String,
    /// The Basic auth password.
    pub auth_token: String,
}

impl TwilioAccount {
    /// An account with these credentials.
    pub fn new(account_sid: impl Into<String>, auth_token: impl Into<String>) -> TwilioAccount {
        TwilioAccount { account_sid: account_sid.into(), auth_token: auth_token.into() }
    }
}

impl fmt::Debug for TwilioAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TwilioAccount")
            .field("account_sid", &self.account_sid)
            .field("auth_token", &"***")
            .finish()
    }
}

/// Which create endpoint a send went to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SendKind {
    /// `POST .../Messages.json`.
    Message,
    /// `POST .../Calls.json`.
    Call,
}

/// One send the emulator received, recorded before auth, validation and faults are applied.
#[derive(Clone, Debug, Serialize)]
pub struct ReceivedSend {
    /// Message or call.
    pub kind: SendKind,
    /// The `AccountSid` in the path.
    pub account_sid: String,
    /// Whether Basic auth matched the configured account.
    pub is_authenticated: bool,
    /// `To`.
    pub to: Option<String>,
    /// `From`.
    pub from: Option<String>,
    /// `MessagingServiceSid` (messages).
    pub messaging_service_sid: Option<String>,
    /// `Body` (messages).
    pub body: Option<String>,
    /// `Twiml` (calls).
    pub twiml: Option<String>,
    /// `Url` (calls).
    pub url: Option<String>,
    /// Every form parameter, in the order sent.
    pub params: Vec<(String, String)>,
    /// When the request was read.
    #[serde(serialize_with = "serialize_rfc3339")]
    pub received_at: SystemTime,
}

impl ReceivedSend {
    /// The first value of form parameter `name`.
    #[must_use]
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }
}

fn serialize_rfc3339<S: serde::Serializer>(
    at: &SystemTime,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let text = time::OffsetDateTime::from(*at)
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(serde::ser::Error::custom)?;
    serializer.serialize_str(&text)
}

/// A Twilio emulator: cheap to clone, every clone shares faults and the request record.
#[derive(Clone, Debug)]
pub struct TwilioEmulator {
    state: Arc<EmulatorState>,
}

#[derive(Debug)]
struct EmulatorState {
    account: TwilioAccount,
    faults: Arc<FaultInjector>,
    journal: Journal<ReceivedSend>,
    /// Separate from the faults' RNG so that successful sends do not shift the fault sequence.
    /// A std mutex: held only to draw one number.
    sid_rng: Mutex<StdRng>,
    /// What status callbacks report. A std mutex: held only to copy the value.
    delivery: Mutex<Delivery>,
    callbacks: Journal<SentCallback>,
    /// Posts status callbacks; never follows redirects.
    callback_client: reqwest::Client,
}

impl TwilioEmulator {
    /// An emulator for `account` whose randomness is seeded with 0.
    #[must_use]
    pub fn new(account: TwilioAccount) -> TwilioEmulator {
        TwilioEmulator::with_seed(account, 0)
    }

    /// An emulator for `account` whose randomness (fault draws, sids) is seeded with `seed`.
    #[must_use]
    pub fn with_seed(account: TwilioAccount, seed: u64) -> TwilioEmulator {
        TwilioEmulator {
            state: Arc::new(EmulatorState {
                account,
                faults: Arc::new(FaultInjector::new(seed)),
                journal: Journal::new(),
                sid_rng: Mutex::new(StdRng::seed_from_u64(seed.wrapping_add(1))),
                delivery: Mutex::new(Delivery::default()),
                callbacks: Journal::new(),
                callback_client: reqwest::Client::builder()
                    .redirect(reqwest::redirect::Policy::none())
                    .timeout(std::time::Duration::from_secs(5))
                    .build()
                    .unwrap_or_default(),
            }),
        }
    }

    /// Binds `127.0.0.1:0` and serves a new emulator for `account` on a background task.
    pub async fn start(account: TwilioAccount) -> io::Result<RunningEmulator> {
        TwilioEmulator::new(account).spawn().await
    }

    /// Binds `127.0.0.1:0` and serves this emulator on a background task.
    pub async fn spawn(self) -> io::Result<RunningEmulator> {
        let server = RunningServer::start(self.router()).await?;
        Ok(RunningEmulator { emulator: self, server })
    }

    /// Serves this emulator on `listener` until `shutdown` completes (for a standalone process).
    pub async fn serve(self, listener: TcpListener, shutdown: impl Future<Output = ()> + Send) {
        server::serve(listener, self.router(), shutdown).await;
    }

    /// The Twilio API and `/__sim/*` routes. Served by anything other than [`TwilioEmulator::serve`]
    /// or [`TwilioEmulator::spawn`], an injected reset degrades to a hang.
    pub fn router(&self) -> Router {
        api::routes(self.clone())
            .merge(crate::admin::routes(Arc::clone(&self.state.faults), self.state.journal.clone()))
    }

    /// The account this emulator accepts.
    #[must_use]
    pub fn account(&self) -> &TwilioAccount {
        &self.state.account
    }

    /// Replaces the faults in force.
    ///
    /// # Panics
    /// If [`Faults::check`] refuses them.
    pub fn set_faults(&self, faults: Faults) {
        self.state.faults.set(faults);
    }

    /// The faults in force.
    #[must_use]
    pub fn faults(&self) -> Faults {
        self.state.faults.get()
    }

    /// Every send received so far, oldest first.
    #[must_use]
    pub fn received(&self) -> Vec<ReceivedSend> {
        self.state.journal.snapshot()
    }

    /// Forgets the received sends.
    pub fn clear(&self) {
        self.state.journal.clear();
    }

    /// Completes once `n` sends have been received in all (clearing does not reset the count):
    /// what tests await instead of sleeping.
    pub async fn wait_for_sends(&self, n: usize) {
        self.state.journal.wait_for_pushed(n).await;
    }

    /// Sets what the status callbacks of later sends report (default: delivered).
    pub fn set_delivery(&self, delivery: Delivery) {
        *self.state.delivery.lock().unwrap_or_else(PoisonError::into_inner) = delivery;
    }

    /// What the status callbacks of later sends report.
    #[must_use]
    pub fn delivery(&self) -> Delivery {
        *self.state.delivery.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every status callback posted so far, oldest first (recorded once answered).
    #[must_use]
    pub fn callbacks(&self) -> Vec<SentCallback> {
        self.state.callbacks.snapshot()
    }

    fn record(&self, send: ReceivedSend) {
        self.state.journal.push(send);
    }

    fn record_callback(&self, callback: SentCallback) {
        self.state.callbacks.push(callback);
    }

    fn callback_client(&self) -> &reqwest::Client {
        &self.state.callback_client
    }

    fn fault_injector(&self) -> &FaultInjector {
        &self.state.faults
    }

    /// `prefix` followed by 32 random hex digits, like Twilio's sids.
    fn new_sid(&self, prefix: &str) -> String {
        let value: u128 =
            self.state.sid_rng.lock().unwrap_or_else(PoisonError::into_inner).random();
        format!("{prefix}{value:032x}")
    }
}

/// An emulator serving on a loopback port; stops on [`RunningEmulator::shutdown`] or drop.
#[derive(Debug)]
#[must_use = "dropping the handle stops the emulator"]
pub struct RunningEmulator {
    emulator: TwilioEmulator,
    server: RunningServer,
}

impl RunningEmulator {
    /// `http://127.0.0.1:PORT`, to use as the adapter's `base_url`.
    #[must_use]
    pub fn base_url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// The bound address.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// The emulator handle (shares faults and the record with this server).
    #[must_use]
    pub fn emulator(&self) -> &TwilioEmulator {
        &self.emulator
    }

    /// See [`TwilioEmulator::set_faults`].
    pub fn set_faults(&self, faults: Faults) {
        self.emulator.set_faults(faults);
    }

    /// See [`TwilioEmulator::faults`].
    #[must_use]
    pub fn faults(&self) -> Faults {
        self.emulator.faults()
    }

    /// See [`TwilioEmulator::received`].
    #[must_use]
    pub fn received(&self) -> Vec<ReceivedSend> {
        self.emulator.received()
    }

    /// See [`TwilioEmulator::set_delivery`].
    pub fn set_delivery(&self, delivery: Delivery) {
        self.emulator.set_delivery(delivery);
    }

    /// See [`TwilioEmulator::callbacks`].
    #[must_use]
    pub fn callbacks(&self) -> Vec<SentCallback> {
        self.emulator.callbacks()
    }

    /// See [`TwilioEmulator::clear`].
    pub fn clear(&self) {
        self.emulator.clear();
    }

    /// See [`TwilioEmulator::wait_for_sends`].
    pub async fn wait_for_sends(&self, n: usize) {
        self.emulator.wait_for_sends(n).await;
    }

    /// Stops accepting, drops open connections and waits for the server task to end.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}
