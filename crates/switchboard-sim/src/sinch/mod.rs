//! An emulator of Sinch's SMS REST API (`POST` and `GET /xms/v1/{service_plan_id}/batches`)
//! and Voice callouts (`POST /calling/v1/callouts`): Bearer token auth for SMS, Basic or signed
//! application auth for calls, required fields and limits as the specs state, Sinch's success
//! and error bodies, the shared faults, per-recipient delivery reports posted to a batch's
//! `callback_url`, and signed DiCE events posted to the application's callback URL.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use switchboard_sim::sinch::{SinchAccount, SinchEmulator};
//! use switchboard_sim::ReceiptPlan;
//!
//! let account = SinchAccount::new("plan1", "token", "669E367E-6BBA-48AB", "BeIukql3pTKJ8RGL5zo0DA==");
//! let sinch = SinchEmulator::start(account).await?;
//! sinch.set_receipts(ReceiptPlan::delivered());
//! // point an adapter's sms_base_url and voice_base_url at sinch.base_url() ...
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
use tokio::net::TcpListener;

use crate::faults::{FaultInjector, Faults};
use crate::journal::Journal;
use crate::receipts::{ReceiptPlan, ReceiptPoster, SentReceipt};
use crate::server::{self, RunningServer};

/// The credentials the emulator accepts.
#[derive(Clone, PartialEq, Eq)]
pub struct SinchAccount {
    /// The SMS service plan id (path segment).
    pub service_plan_id: String,
    /// The plan's API token (`Authorization: Bearer`).
    pub api_token: String,
    /// The Voice application key.
    pub application_key: String,
    /// The Voice application secret, base64 as the dashboard shows it.
    pub application_secret: String,
}

impl SinchAccount {
    /// An account with these credentials.
    pub fn new(
        service_plan_id: impl Into<String>,
        api_token: impl Into<String>,
        application_key: impl Into<String>,
        application_secret: impl Into<String>,
    ) -> SinchAccount {
        SinchAccount {
            service_plan_id: service_plan_id.into(),
            api_token: api_token.into(),
            application_key: application_key.into(),
            application_secret: application_secret.into(),
        }
    }
}

impl fmt::Debug for SinchAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SinchAccount")
            .field("service_plan_id", &self.service_plan_id)
            .field("api_token", &"***")
            .field("application_key", &self.application_key)
            .field("application_secret", &"***")
            .finish()
    }
}

/// Which API a send went to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SendKind {
    /// `POST /xms/v1/{service_plan_id}/batches`.
    Batch,
    /// `POST /calling/v1/callouts`.
    Callout,
}

/// One send the emulator received, recorded before auth, validation and faults are applied.
#[derive(Clone, Debug, Serialize)]
pub struct ReceivedSend {
    /// SMS or call.
    pub kind: SendKind,
    /// The `service_plan_id` in the path (batches).
    pub service_plan_id: Option<String>,
    /// Whether the credentials (Bearer token; Basic or signed application auth) verified.
    pub is_authenticated: bool,
    /// How a callout authenticated: `basic`, `signed`, or `None`.
    pub auth_scheme: Option<String>,
    /// `to[0]` (batches) or `ttsCallout.destination.endpoint` (callouts).
    pub to: Option<String>,
    /// `from` (batches) or `ttsCallout.cli` (callouts).
    pub from: Option<String>,
    /// `body` (batches) or `ttsCallout.text` (callouts).
    pub text: Option<String>,
    /// The JSON body as received (`Null` when it was not JSON).
    pub body: serde_json::Value,
    /// The `Content-Type` the request carried.
    pub content_type: Option<String>,
    /// When the request was read.
    #[serde(serialize_with = "crate::serialize_rfc3339")]
    pub received_at: SystemTime,
}

/// A Sinch emulator: cheap to clone, every clone shares faults, receipts and the record.
#[derive(Clone, Debug)]
pub struct SinchEmulator {
    state: Arc<EmulatorState>,
}

#[derive(Debug)]
struct EmulatorState {
    account: SinchAccount,
    faults: Arc<FaultInjector>,
    journal: Journal<ReceivedSend>,
    receipts: Arc<ReceiptPoster>,
    /// The application's callback URL (a dashboard setting), where DiCE events go.
    /// A std mutex: sections only clone or assign it.
    voice_callback_url: Mutex<Option<String>>,
    /// Separate from the faults' RNG so that successful sends do not shift the fault sequence.
    /// A std mutex: held only to draw one number.
    id_rng: Mutex<StdRng>,
}

impl SinchEmulator {
    /// An emulator for `account` whose randomness is seeded with 0.
    #[must_use]
    pub fn new(account: SinchAccount) -> SinchEmulator {
        SinchEmulator::with_seed(account, 0)
    }

    /// An emulator for `account` whose randomness (fault draws, ids) is seeded with `seed`.
    #[must_use]
    pub fn with_seed(account: SinchAccount, seed: u64) -> SinchEmulator {
        SinchEmulator {
            state: Arc::new(EmulatorState {
                account,
                faults: Arc::new(FaultInjector::new(seed)),
                journal: Journal::new(),
                receipts: Arc::new(ReceiptPoster::new()),
                voice_callback_url: Mutex::new(None),
                id_rng: Mutex::new(StdRng::seed_from_u64(seed.wrapping_add(1))),
            }),
        }
    }

    /// Binds `127.0.0.1:0` and serves a new emulator for `account` on a background task.
    pub async fn start(account: SinchAccount) -> io::Result<RunningEmulator> {
        SinchEmulator::new(account).spawn().await
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

    /// The Sinch APIs and `/__sim/*` routes.
    pub fn router(&self) -> Router {
        api::routes(self.clone())
            .merge(crate::admin::routes(Arc::clone(&self.state.faults), self.state.journal.clone()))
    }

    /// The account this emulator accepts.
    #[must_use]
    pub fn account(&self) -> &SinchAccount {
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

    /// Sets what receipts report from now on (report code for SMS, DiCE result for calls).
    pub fn set_receipts(&self, plan: ReceiptPlan) {
        self.state.receipts.set_plan(plan);
    }

    /// Sets the Voice application's callback URL (Sinch's dashboard setting): where DiCE events
    /// of callouts that enable them are posted.
    pub fn set_voice_callback_url(&self, url: Option<String>) {
        *self.state.voice_callback_url.lock().unwrap_or_else(PoisonError::into_inner) = url;
    }

    fn voice_callback_url(&self) -> Option<String> {
        self.state.voice_callback_url.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Every receipt posted so far (recorded once its POST finished), oldest first.
    #[must_use]
    pub fn receipts_sent(&self) -> Vec<SentReceipt> {
        self.state.receipts.sent()
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

    fn record(&self, send: ReceivedSend) {
        self.state.journal.push(send);
    }

    fn fault_injector(&self) -> &FaultInjector {
        &self.state.faults
    }

    fn receipts(&self) -> &Arc<ReceiptPoster> {
        &self.state.receipts
    }

    fn random_u128(&self) -> u128 {
        self.state.id_rng.lock().unwrap_or_else(PoisonError::into_inner).random()
    }

    /// A batch id like Sinch's: a 26-character ULID (Crockford base 32).
    fn new_batch_id(&self) -> String {
        const ALPHABET: &[u8] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
        let mut value = self.random_u128();
        let mut id = [b'0'; 26];
        for slot in id.iter_mut().rev() {
            *slot = ALPHABET[(value % 32) as usize];
            value /= 32;
        }
        // The first character of a ULID is at most 7.
        id[0] = b'0' + (id[0] % 8);
        String::from_utf8_lossy(&id).into_owned()
    }

    /// A version 4 UUID.
    fn new_uuid(&self) -> String {
        let mut bytes = self.random_u128().to_be_bytes();
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        let hex = hex::encode(bytes);
        format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
    }
}

/// An emulator serving on a loopback port; stops on [`RunningEmulator::shutdown`] or drop.
#[derive(Debug)]
#[must_use = "dropping the handle stops the emulator"]
pub struct RunningEmulator {
    emulator: SinchEmulator,
    server: RunningServer,
}

impl RunningEmulator {
    /// `http://127.0.0.1:PORT`, to use as the adapter's `sms_base_url` and `voice_base_url`.
    #[must_use]
    pub fn base_url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// The bound address.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// The emulator handle (shares faults, receipts and the record with this server).
    #[must_use]
    pub fn emulator(&self) -> &SinchEmulator {
        &self.emulator
    }

    /// See [`SinchEmulator::set_faults`].
    pub fn set_faults(&self, faults: Faults) {
        self.emulator.set_faults(faults);
    }

    /// See [`SinchEmulator::faults`].
    #[must_use]
    pub fn faults(&self) -> Faults {
        self.emulator.faults()
    }

    /// See [`SinchEmulator::set_voice_callback_url`].
    pub fn set_voice_callback_url(&self, url: Option<String>) {
        self.emulator.set_voice_callback_url(url);
    }

    /// See [`SinchEmulator::set_receipts`].
    pub fn set_receipts(&self, plan: ReceiptPlan) {
        self.emulator.set_receipts(plan);
    }

    /// See [`SinchEmulator::receipts_sent`].
    #[must_use]
    pub fn receipts_sent(&self) -> Vec<SentReceipt> {
        self.emulator.receipts_sent()
    }

    /// See [`SinchEmulator::received`].
    #[must_use]
    pub fn received(&self) -> Vec<ReceivedSend> {
        self.emulator.received()
    }

    /// See [`SinchEmulator::clear`].
    pub fn clear(&self) {
        self.emulator.clear();
    }

    /// Stops accepting, drops open connections and waits for the server task to end.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}
