//! An emulator of Infobip's SMS v3 (`POST /sms/3/messages`, `GET /sms/3/logs`) and voice
//! text-to-speech (`POST /tts/3/advanced`) APIs, with `App` API-key auth, request validation,
//! the published success and error bodies (JSON `ApiError` for SMS v3, `ApiException` for
//! voice), per-message REJECTED statuses for magic numbers (table in `api.rs`), and delivery
//! reports posted to the request's `webhooks.delivery.url` or `notifyUrl`.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use switchboard_sim::infobip::{InfobipAccount, InfobipEmulator};
//! use switchboard_sim::Receipts;
//!
//! let infobip = InfobipEmulator::start(InfobipAccount::new("api-key")).await?;
//! infobip.set_receipts(Receipts::delivered());
//! // point an adapter at infobip.base_url() ...
//! # Ok(()) }
//! ```

mod api;

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
use serde_json::Value;
use tokio::net::TcpListener;

use crate::callbacks::{CallbackLog, Receipts, SentCallback};
use crate::faults::{FaultInjector, Faults};
use crate::journal::Journal;
use crate::server::{self, RunningServer};

/// The credentials the emulator accepts.
#[derive(Clone, PartialEq, Eq)]
pub struct InfobipAccount {
    /// The API key expected in `Authorization: App <key>`.
    pub api_key: String,
}

impl InfobipAccount {
    /// An account with this API key.
    pub fn new(api_key: impl Into<String>) -> InfobipAccount {
        InfobipAccount { api_key: api_key.into() }
    }
}

impl fmt::Debug for InfobipAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InfobipAccount").field("api_key", &"***").finish()
    }
}

/// Which endpoint a request went to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestKind {
    /// `POST /sms/3/messages`.
    Sms,
    /// `POST /tts/3/advanced`.
    Voice,
    /// `GET /sms/3/logs`.
    Logs,
}

/// One API request the emulator received, recorded before auth, validation and faults.
#[derive(Clone, Debug, Serialize)]
pub struct ReceivedRequest {
    /// Which endpoint.
    pub kind: RequestKind,
    /// `GET` or `POST`.
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The query string, if any.
    pub query: Option<String>,
    /// The `Authorization` scheme used (`App`, `Basic`, ...), if any.
    pub auth_scheme: Option<String>,
    /// Whether the API key matched.
    pub is_authenticated: bool,
    /// The JSON body (`null` when absent or not JSON).
    pub body: Value,
    /// The first destination's `to`.
    pub to: Option<String>,
    /// The SMS `content.text` or the call's `text`.
    pub text: Option<String>,
    /// The SMS `sender` or the call's `from`.
    pub sender: Option<String>,
    /// Where the report was asked for (`webhooks.delivery.url` or `notifyUrl`).
    pub report_url: Option<String>,
    /// When the request was read.
    #[serde(skip)]
    pub received_at: SystemTime,
}

/// An Infobip emulator: cheap to clone, every clone shares faults, receipts and records.
#[derive(Clone, Debug)]
pub struct InfobipEmulator {
    state: Arc<EmulatorState>,
}

#[derive(Debug)]
struct EmulatorState {
    account: InfobipAccount,
    faults: Arc<FaultInjector>,
    journal: Journal<ReceivedRequest>,
    callbacks: Arc<CallbackLog>,
    /// Message ids; separate from the faults' RNG so sends do not shift the fault sequence.
    rng: Mutex<StdRng>,
}

impl InfobipEmulator {
    /// An emulator for `account` whose randomness is seeded with 0.
    #[must_use]
    pub fn new(account: InfobipAccount) -> InfobipEmulator {
        InfobipEmulator::with_seed(account, 0)
    }

    /// An emulator for `account` whose randomness (fault draws, ids) is seeded with `seed`.
    #[must_use]
    pub fn with_seed(account: InfobipAccount, seed: u64) -> InfobipEmulator {
        InfobipEmulator {
            state: Arc::new(EmulatorState {
                account,
                faults: Arc::new(FaultInjector::new(seed)),
                journal: Journal::new(),
                callbacks: Arc::new(CallbackLog::new()),
                rng: Mutex::new(StdRng::seed_from_u64(seed.wrapping_add(1))),
            }),
        }
    }

    /// Binds `127.0.0.1:0` and serves a new emulator for `account` on a background task.
    pub async fn start(account: InfobipAccount) -> io::Result<RunningEmulator> {
        InfobipEmulator::new(account).spawn().await
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

    /// The Infobip API and `/__sim/*` routes.
    pub fn router(&self) -> Router {
        api::routes(self.clone())
            .merge(crate::admin::routes(Arc::clone(&self.state.faults), self.state.journal.clone()))
            .merge(crate::callbacks::routes(Arc::clone(&self.state.callbacks)))
    }

    /// The account this emulator accepts.
    #[must_use]
    pub fn account(&self) -> &InfobipAccount {
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

    /// Sets what the receipts of later sends say.
    pub fn set_receipts(&self, receipts: Receipts) {
        self.state.callbacks.set_receipts(receipts);
    }

    /// The receipt policy in force.
    #[must_use]
    pub fn receipts(&self) -> Receipts {
        self.state.callbacks.receipts()
    }

    /// Every API request received so far, oldest first.
    #[must_use]
    pub fn received(&self) -> Vec<ReceivedRequest> {
        self.state.journal.snapshot()
    }

    /// Every receipt posted so far, with the answer it got.
    #[must_use]
    pub fn callbacks(&self) -> Vec<SentCallback> {
        self.state.callbacks.sent()
    }

    /// Waits until `n` receipts were posted (and answered or failed); bound it with a timeout.
    pub async fn wait_for_callbacks(&self, n: usize) -> Vec<SentCallback> {
        self.state.callbacks.wait_for(n).await
    }

    /// Forgets the received sends and posted receipts.
    pub fn clear(&self) {
        self.state.journal.clear();
        self.state.callbacks.clear();
    }

    fn record(&self, send: ReceivedRequest) {
        self.state.journal.push(send);
    }

    fn fault_injector(&self) -> &FaultInjector {
        &self.state.faults
    }

    fn callback_log(&self) -> Arc<CallbackLog> {
        Arc::clone(&self.state.callbacks)
    }

    /// A UUID-shaped id, like Infobip's message and bulk ids.
    fn new_id(&self) -> String {
        let value: u128 = self.state.rng.lock().unwrap_or_else(PoisonError::into_inner).random();
        let hex = format!("{value:032x}");
        format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
    }
}

/// An emulator serving on a loopback port; stops on [`RunningEmulator::shutdown`] or drop.
#[derive(Debug)]
#[must_use = "dropping the handle stops the emulator"]
pub struct RunningEmulator {
    emulator: InfobipEmulator,
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

    /// The emulator handle (shares faults, receipts and records with this server).
    #[must_use]
    pub fn emulator(&self) -> &InfobipEmulator {
        &self.emulator
    }

    /// See [`InfobipEmulator::set_faults`].
    pub fn set_faults(&self, faults: Faults) {
        self.emulator.set_faults(faults);
    }

    /// See [`InfobipEmulator::set_receipts`].
    pub fn set_receipts(&self, receipts: Receipts) {
        self.emulator.set_receipts(receipts);
    }

    /// See [`InfobipEmulator::received`].
    #[must_use]
    pub fn received(&self) -> Vec<ReceivedRequest> {
        self.emulator.received()
    }

    /// See [`InfobipEmulator::callbacks`].
    #[must_use]
    pub fn callbacks(&self) -> Vec<SentCallback> {
        self.emulator.callbacks()
    }

    /// See [`InfobipEmulator::wait_for_callbacks`].
    pub async fn wait_for_callbacks(&self, n: usize) -> Vec<SentCallback> {
        self.emulator.wait_for_callbacks(n).await
    }

    /// See [`InfobipEmulator::clear`].
    pub fn clear(&self) {
        self.emulator.clear();
    }

    /// Stops accepting, drops open connections and waits for the server task to end.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}
