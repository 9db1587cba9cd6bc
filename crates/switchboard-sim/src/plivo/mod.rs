//! An emulator of Plivo's REST API: `POST /v1/Account/{auth_id}/Message/`,
//! `POST /v1/Account/{auth_id}/Call/` and `GET /v1/Account/{auth_id}/`, with Basic auth,
//! parameter validation, Plivo's success and error bodies, and the requests Plivo makes back:
//! V3-signed SMS status callbacks, and for every call the fetch of its `answer_url` (the XML it
//! got is recorded, so a test can hear what the callee would), then a signed hangup callback.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use switchboard_sim::plivo::{PlivoAccount, PlivoEmulator};
//!
//! let plivo = PlivoEmulator::start(PlivoAccount::new("MAXXXXXXXXXXXXXXXXXX", "token")).await?;
//! // point an adapter at plivo.base_url(), place a call, then:
//! let fetched = plivo.wait_for_callbacks(1).await;
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

use crate::callbacks::{CallbackKind, CallbackLog, Receipts, SentCallback};
use crate::faults::{FaultInjector, Faults};
use crate::journal::Journal;
use crate::server::{self, RunningServer};

/// The credentials the emulator accepts; the token also signs its callbacks.
#[derive(Clone, PartialEq, Eq)]
pub struct PlivoAccount {
    /// `MA`/`SA` and 18 characters; must match the path.
    pub auth_id: String,
    /// The Basic auth password and the V3 signing key.
    pub auth_token: String,
}

impl PlivoAccount {
    /// An account with these credentials.
    pub fn new(auth_id: impl Into<String>, auth_token: impl Into<String>) -> PlivoAccount {
        PlivoAccount { auth_id: auth_id.into(), auth_token: auth_token.into() }
    }
}

impl fmt::Debug for PlivoAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlivoAccount")
            .field("auth_id", &self.auth_id)
            .field("auth_token", &"***")
            .finish()
    }
}

/// Which create endpoint a send went to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SendKind {
    /// `POST .../Message/`.
    Message,
    /// `POST .../Call/`.
    Call,
}

/// One send the emulator received, recorded before auth, validation and faults are applied.
#[derive(Clone, Debug, Serialize)]
pub struct ReceivedSend {
    /// Message or call.
    pub kind: SendKind,
    /// The `auth_id` in the path.
    pub auth_id: String,
    /// Whether Basic auth matched the account.
    pub is_authenticated: bool,
    /// `src` (messages) or `from` (calls).
    pub from: Option<String>,
    /// `dst` (messages) or `to` (calls).
    pub to: Option<String>,
    /// `text` (messages).
    pub text: Option<String>,
    /// `answer_url` (calls).
    pub answer_url: Option<String>,
    /// `url` (message status) or `hangup_url` (calls).
    pub callback_url: Option<String>,
    /// The JSON body as sent.
    pub body: Value,
    /// When the request was read.
    #[serde(skip)]
    pub received_at: SystemTime,
}

/// A Plivo emulator: cheap to clone, every clone shares faults, receipts and records.
#[derive(Clone, Debug)]
pub struct PlivoEmulator {
    state: Arc<EmulatorState>,
}

#[derive(Debug)]
struct EmulatorState {
    account: PlivoAccount,
    faults: Arc<FaultInjector>,
    journal: Journal<ReceivedSend>,
    callbacks: Arc<CallbackLog>,
    /// Message ids; separate from the faults' RNG so sends do not shift the fault sequence.
    rng: Mutex<StdRng>,
}

impl PlivoEmulator {
    /// An emulator for `account` whose randomness is seeded with 0.
    #[must_use]
    pub fn new(account: PlivoAccount) -> PlivoEmulator {
        PlivoEmulator::with_seed(account, 0)
    }

    /// An emulator for `account` whose randomness (fault draws, ids) is seeded with `seed`.
    #[must_use]
    pub fn with_seed(account: PlivoAccount, seed: u64) -> PlivoEmulator {
        PlivoEmulator {
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
    pub async fn start(account: PlivoAccount) -> io::Result<RunningEmulator> {
        PlivoEmulator::new(account).spawn().await
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

    /// The Plivo API and `/__sim/*` routes.
    pub fn router(&self) -> Router {
        api::routes(self.clone())
            .merge(crate::admin::routes(Arc::clone(&self.state.faults), self.state.journal.clone()))
            .merge(crate::callbacks::routes(Arc::clone(&self.state.callbacks)))
    }

    /// The account this emulator accepts.
    #[must_use]
    pub fn account(&self) -> &PlivoAccount {
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

    /// Every send received so far, oldest first.
    #[must_use]
    pub fn received(&self) -> Vec<ReceivedSend> {
        self.state.journal.snapshot()
    }

    /// Every receipt posted so far, with the answer it got.
    #[must_use]
    pub fn callbacks(&self) -> Vec<SentCallback> {
        self.state.callbacks.sent()
    }

    /// The call scripts fetched from answer URLs so far (the XML is in `response_body`).
    #[must_use]
    pub fn answer_fetches(&self) -> Vec<SentCallback> {
        self.callbacks().into_iter().filter(|c| c.kind == CallbackKind::AnswerFetch).collect()
    }

    /// Waits until `n` callbacks (receipts and answer fetches) were made (and answered or failed); bound it with a timeout.
    pub async fn wait_for_callbacks(&self, n: usize) -> Vec<SentCallback> {
        self.state.callbacks.wait_for(n).await
    }

    /// Forgets the received sends and posted receipts.
    pub fn clear(&self) {
        self.state.journal.clear();
        self.state.callbacks.clear();
    }

    fn record(&self, send: ReceivedSend) {
        self.state.journal.push(send);
    }

    fn fault_injector(&self) -> &FaultInjector {
        &self.state.faults
    }

    fn callback_log(&self) -> Arc<CallbackLog> {
        Arc::clone(&self.state.callbacks)
    }

    /// A UUID-shaped id, like Plivo's message, request and call uuids.
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
    emulator: PlivoEmulator,
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
    pub fn emulator(&self) -> &PlivoEmulator {
        &self.emulator
    }

    /// See [`PlivoEmulator::set_faults`].
    pub fn set_faults(&self, faults: Faults) {
        self.emulator.set_faults(faults);
    }

    /// See [`PlivoEmulator::set_receipts`].
    pub fn set_receipts(&self, receipts: Receipts) {
        self.emulator.set_receipts(receipts);
    }

    /// See [`PlivoEmulator::received`].
    #[must_use]
    pub fn received(&self) -> Vec<ReceivedSend> {
        self.emulator.received()
    }

    /// See [`PlivoEmulator::callbacks`].
    #[must_use]
    pub fn callbacks(&self) -> Vec<SentCallback> {
        self.emulator.callbacks()
    }

    /// See [`PlivoEmulator::answer_fetches`].
    #[must_use]
    pub fn answer_fetches(&self) -> Vec<SentCallback> {
        self.emulator.answer_fetches()
    }

    /// See [`PlivoEmulator::wait_for_callbacks`].
    pub async fn wait_for_callbacks(&self, n: usize) -> Vec<SentCallback> {
        self.emulator.wait_for_callbacks(n).await
    }

    /// See [`PlivoEmulator::clear`].
    pub fn clear(&self) {
        self.emulator.clear();
    }

    /// Stops accepting, drops open connections and waits for the server task to end.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}
