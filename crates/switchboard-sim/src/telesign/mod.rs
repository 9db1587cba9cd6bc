//! An emulator of Telesign's self-service REST API: `POST /v1/messaging`, `POST /v1/voice` and
//! `GET /v1/messaging/{reference_id}`, with both of Telesign's authentication schemes (the `TSA`
//! HMAC signature is recomputed and checked, nonces may not repeat, dates must be recent),
//! required parameters, success and error bodies, magic test numbers (table in `api.rs`), and
//! signed delivery receipts.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use switchboard_sim::telesign::{TelesignAccount, TelesignEmulator};
//! use switchboard_sim::Receipts;
//!
//! let account = TelesignAccount::new("FFFFFFFF-EEEE-DDDD-1234-AB1234567890", "c2VjcmV0");
//! let telesign = TelesignEmulator::start(account).await?;
//! telesign.set_receipts(Receipts::delivered());
//! // point an adapter at telesign.base_url() ...
//! # Ok(()) }
//! ```

mod api;

use std::collections::{HashSet, VecDeque};
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

use crate::callbacks::{CallbackLog, Receipts, SentCallback};
use crate::faults::{FaultInjector, Faults};
use crate::journal::Journal;
use crate::server::{self, RunningServer};

/// The credentials the emulator accepts, and where the account's voice receipts go.
#[derive(Clone, PartialEq, Eq)]
pub struct TelesignAccount {
    /// The customer ID.
    pub customer_id: String,
    /// The API key, base64 as the portal shows it.
    pub api_key: String,
    /// The callback URL provisioned on the account (Telesign sends voice receipts, and SMS
    /// receipts of sends without `callback_url`, there). `None`: no such receipts.
    pub account_callback_url: Option<String>,
}

impl TelesignAccount {
    /// An account with these credentials and no provisioned callback URL.
    pub fn new(customer_id: impl Into<String>, api_key: impl Into<String>) -> TelesignAccount {
        TelesignAccount {
            customer_id: customer_id.into(),
            api_key: api_key.into(),
            account_callback_url: None,
        }
    }

    /// Sets the account's provisioned callback URL.
    #[must_use]
    pub fn with_callback_url(self, url: impl Into<String>) -> TelesignAccount {
        TelesignAccount { account_callback_url: Some(url.into()), ..self }
    }
}

impl fmt::Debug for TelesignAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TelesignAccount")
            .field("customer_id", &self.customer_id)
            .field("api_key", &"***")
            .field("account_callback_url", &self.account_callback_url)
            .finish()
    }
}

/// Which endpoint a send went to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SendKind {
    /// `POST /v1/messaging`.
    Message,
    /// `POST /v1/voice`.
    Call,
}

/// How a request authenticated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthScheme {
    /// `Authorization: TSA customer_id:signature`.
    Hmac,
    /// `Authorization: Basic ...`.
    Basic,
    /// Missing or unrecognised.
    None,
}

/// One send the emulator received, recorded before auth, validation and faults are applied.
#[derive(Clone, Debug, Serialize)]
pub struct ReceivedSend {
    /// Message or call.
    pub kind: SendKind,
    /// The scheme the request used.
    pub auth_scheme: AuthScheme,
    /// Whether the credentials (and, for HMAC, the signature, date and nonce) checked out.
    pub is_authenticated: bool,
    /// `phone_number`.
    pub phone_number: Option<String>,
    /// `message` (the SMS text or the call's script).
    pub message: Option<String>,
    /// `message_type`.
    pub message_type: Option<String>,
    /// `sender_id` (messages).
    pub sender_id: Option<String>,
    /// `voice` (calls).
    pub voice: Option<String>,
    /// `callback_url`.
    pub callback_url: Option<String>,
    /// Every form parameter, in the order sent.
    pub params: Vec<(String, String)>,
    /// When the request was read.
    #[serde(skip)]
    pub received_at: SystemTime,
}

impl ReceivedSend {
    /// The first value of form parameter `name`.
    #[must_use]
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }
}

/// A Telesign emulator: cheap to clone, every clone shares faults, receipts and records.
#[derive(Clone, Debug)]
pub struct TelesignEmulator {
    state: Arc<EmulatorState>,
}

#[derive(Debug)]
struct EmulatorState {
    account: TelesignAccount,
    faults: Arc<FaultInjector>,
    journal: Journal<ReceivedSend>,
    callbacks: Arc<CallbackLog>,
    /// Reference ids; separate from the faults' RNG so sends do not shift the fault sequence.
    rng: Mutex<StdRng>,
    /// Recently seen nonces (Telesign refuses a reused one, -30012), bounded.
    nonces: Mutex<(HashSet<String>, VecDeque<String>)>,
}

/// Nonces remembered for reuse detection.
const NONCE_MEMORY: usize = 10_000;

impl TelesignEmulator {
    /// An emulator for `account` whose randomness is seeded with 0.
    #[must_use]
    pub fn new(account: TelesignAccount) -> TelesignEmulator {
        TelesignEmulator::with_seed(account, 0)
    }

    /// An emulator for `account` whose randomness (fault draws, ids) is seeded with `seed`.
    #[must_use]
    pub fn with_seed(account: TelesignAccount, seed: u64) -> TelesignEmulator {
        TelesignEmulator {
            state: Arc::new(EmulatorState {
                account,
                faults: Arc::new(FaultInjector::new(seed)),
                journal: Journal::new(),
                callbacks: Arc::new(CallbackLog::new()),
                rng: Mutex::new(StdRng::seed_from_u64(seed.wrapping_add(1))),
                nonces: Mutex::new((HashSet::new(), VecDeque::new())),
            }),
        }
    }

    /// Binds `127.0.0.1:0` and serves a new emulator for `account` on a background task.
    pub async fn start(account: TelesignAccount) -> io::Result<RunningEmulator> {
        TelesignEmulator::new(account).spawn().await
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

    /// The Telesign API and `/__sim/*` routes.
    pub fn router(&self) -> Router {
        api::routes(self.clone())
            .merge(crate::admin::routes(Arc::clone(&self.state.faults), self.state.journal.clone()))
            .merge(crate::callbacks::routes(Arc::clone(&self.state.callbacks)))
    }

    /// The account this emulator accepts.
    #[must_use]
    pub fn account(&self) -> &TelesignAccount {
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

    /// Waits until `n` receipts were posted (and answered or failed); bound it with a timeout.
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

    /// 32 upper-case hex digits, like Telesign's reference ids.
    fn new_reference_id(&self) -> String {
        let value: u128 = self.state.rng.lock().unwrap_or_else(PoisonError::into_inner).random();
        format!("{value:032X}")
    }

    /// Remembers `nonce`; false when it was seen recently.
    fn is_fresh_nonce(&self, nonce: &str) -> bool {
        let mut guard = self.state.nonces.lock().unwrap_or_else(PoisonError::into_inner);
        let (seen, order) = &mut *guard;
        if !seen.insert(nonce.to_owned()) {
            return false;
        }
        order.push_back(nonce.to_owned());
        if order.len() > NONCE_MEMORY {
            if let Some(oldest) = order.pop_front() {
                seen.remove(&oldest);
            }
        }
        true
    }
}

/// An emulator serving on a loopback port; stops on [`RunningEmulator::shutdown`] or drop.
#[derive(Debug)]
#[must_use = "dropping the handle stops the emulator"]
pub struct RunningEmulator {
    emulator: TelesignEmulator,
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
    pub fn emulator(&self) -> &TelesignEmulator {
        &self.emulator
    }

    /// See [`TelesignEmulator::set_faults`].
    pub fn set_faults(&self, faults: Faults) {
        self.emulator.set_faults(faults);
    }

    /// See [`TelesignEmulator::set_receipts`].
    pub fn set_receipts(&self, receipts: Receipts) {
        self.emulator.set_receipts(receipts);
    }

    /// See [`TelesignEmulator::received`].
    #[must_use]
    pub fn received(&self) -> Vec<ReceivedSend> {
        self.emulator.received()
    }

    /// See [`TelesignEmulator::callbacks`].
    #[must_use]
    pub fn callbacks(&self) -> Vec<SentCallback> {
        self.emulator.callbacks()
    }

    /// See [`TelesignEmulator::wait_for_callbacks`].
    pub async fn wait_for_callbacks(&self, n: usize) -> Vec<SentCallback> {
        self.emulator.wait_for_callbacks(n).await
    }

    /// See [`TelesignEmulator::clear`].
    pub fn clear(&self) {
        self.emulator.clear();
    }

    /// Stops accepting, drops open connections and waits for the server task to end.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}
