//! An emulator of Vonage's SMS API (`POST /sms/json`, `GET /account/get-balance`) and Voice API
//! (`POST /v1/calls`, `GET /v1/calls`): Vonage's auth (api_key with api_secret or a `sig`; an
//! RS256 application JWT checked against the application's public key), required parameters
//! and limits as `sms.yml`, the Voice spec and `ncco-schema.json` state, success and error
//! bodies as Vonage sends them (SMS errors inside HTTP 200), the shared faults, and signed
//! delivery receipts and call events posted to the URLs the sends name.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use switchboard_sim::vonage::{VonageAccount, VonageEmulator, TEST_PUBLIC_KEY_PEM};
//! use switchboard_sim::ReceiptPlan;
//!
//! let account = VonageAccount::new("abcd1234", "s3cret")
//!     .with_signature_secret("sig-secret")
//!     .with_application("aaaaaaaa-bbbb-4ccc-8ddd-0123456789ab", TEST_PUBLIC_KEY_PEM);
//! let vonage = VonageEmulator::start(account).await?;
//! vonage.set_receipts(ReceiptPlan::delivered());
//! // point an adapter's sms_base_url and voice_base_url at vonage.base_url() ...
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
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

use crate::faults::{FaultInjector, Faults};
use crate::journal::Journal;
use crate::receipts::{ReceiptPlan, ReceiptPoster, SentReceipt};
use crate::server::{self, RunningServer};

/// A 2048-bit RSA private key for tests and the demo (never for a real application).
pub const TEST_PRIVATE_KEY_PEM: &str = include_str!("../../testdata/vonage-test-private-key.pem");
/// The public half of [`TEST_PRIVATE_KEY_PEM`].
pub const TEST_PUBLIC_KEY_PEM: &str = include_str!("../../testdata/vonage-test-public-key.pem");

/// How the account's signature secret signs (the dashboard setting).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignatureMethod {
    /// `md5(params + secret)`.
    Md5Hash,
    /// HMAC-MD5.
    Md5,
    /// HMAC-SHA1.
    Sha1,
    /// HMAC-SHA256.
    Sha256,
    /// HMAC-SHA512.
    Sha512,
}

/// The credentials the emulator accepts.
#[derive(Clone, PartialEq, Eq)]
pub struct VonageAccount {
    /// The API key.
    pub api_key: String,
    /// The API secret.
    pub api_secret: String,
    /// The signature secret; `None` refuses signed requests and sends receipts unsigned.
    pub signature_secret: Option<String>,
    /// How the signature secret signs.
    pub signature_method: SignatureMethod,
    /// The Voice application id the JWT must name.
    pub application_id: Option<String>,
    /// The application's public key (PEM) the JWT must verify with.
    pub public_key_pem: Option<String>,
}

impl VonageAccount {
    /// An SMS-only account with these credentials.
    pub fn new(api_key: impl Into<String>, api_secret: impl Into<String>) -> VonageAccount {
        VonageAccount {
            api_key: api_key.into(),
            api_secret: api_secret.into(),
            signature_secret: None,
            signature_method: SignatureMethod::Md5Hash,
            application_id: None,
            public_key_pem: None,
        }
    }

    /// Adds a signature secret (`md5hash`).
    #[must_use]
    pub fn with_signature_secret(self, secret: impl Into<String>) -> VonageAccount {
        VonageAccount { signature_secret: Some(secret.into()), ..self }
    }

    /// Changes how the signature secret signs.
    #[must_use]
    pub fn with_signature_method(self, method: SignatureMethod) -> VonageAccount {
        VonageAccount { signature_method: method, ..self }
    }

    /// Adds a Voice application.
    #[must_use]
    pub fn with_application(
        self,
        application_id: impl Into<String>,
        public_key_pem: impl Into<String>,
    ) -> VonageAccount {
        VonageAccount {
            application_id: Some(application_id.into()),
            public_key_pem: Some(public_key_pem.into()),
            ..self
        }
    }
}

impl fmt::Debug for VonageAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VonageAccount")
            .field("api_key", &self.api_key)
            .field("api_secret", &"***")
            .field("signature_secret", &self.signature_secret.as_ref().map(|_| "***"))
            .field("signature_method", &self.signature_method)
            .field("application_id", &self.application_id)
            .finish_non_exhaustive()
    }
}

/// Which API a send went to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SendKind {
    /// `POST /sms/json`.
    Sms,
    /// `POST /v1/calls`.
    Call,
}

/// One send the emulator received, recorded before auth, validation and faults are applied.
#[derive(Clone, Debug, Serialize)]
pub struct ReceivedSend {
    /// SMS or call.
    pub kind: SendKind,
    /// Whether the credentials (secret, `sig` or JWT) verified.
    pub is_authenticated: bool,
    /// `to` (SMS) or the first phone leg's `number` (calls).
    pub to: Option<String>,
    /// `from` (SMS) or `from.number` (calls).
    pub from: Option<String>,
    /// `text` (SMS) or the first talk action's `text` (calls).
    pub text: Option<String>,
    /// Every SMS form parameter, in the order sent (empty for calls).
    pub params: Vec<(String, String)>,
    /// The JSON body of a call (`Null` for SMS).
    pub body: serde_json::Value,
    /// The `Content-Type` the request carried.
    pub content_type: Option<String>,
    /// When the request was read.
    #[serde(serialize_with = "crate::serialize_rfc3339")]
    pub received_at: SystemTime,
}

impl ReceivedSend {
    /// The first value of SMS form parameter `name`.
    #[must_use]
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }
}

/// A Vonage emulator: cheap to clone, every clone shares faults, receipts and the record.
#[derive(Clone, Debug)]
pub struct VonageEmulator {
    state: Arc<EmulatorState>,
}

#[derive(Debug)]
struct EmulatorState {
    account: VonageAccount,
    faults: Arc<FaultInjector>,
    journal: Journal<ReceivedSend>,
    receipts: Arc<ReceiptPoster>,
    /// Separate from the faults' RNG so that successful sends do not shift the fault sequence.
    /// A std mutex: held only to draw one number.
    id_rng: Mutex<StdRng>,
}

impl VonageEmulator {
    /// An emulator for `account` whose randomness is seeded with 0.
    #[must_use]
    pub fn new(account: VonageAccount) -> VonageEmulator {
        VonageEmulator::with_seed(account, 0)
    }

    /// An emulator for `account` whose randomness (fault draws, ids) is seeded with `seed`.
    #[must_use]
    pub fn with_seed(account: VonageAccount, seed: u64) -> VonageEmulator {
        VonageEmulator {
            state: Arc::new(EmulatorState {
                account,
                faults: Arc::new(FaultInjector::new(seed)),
                journal: Journal::new(),
                receipts: Arc::new(ReceiptPoster::new()),
                id_rng: Mutex::new(StdRng::seed_from_u64(seed.wrapping_add(1))),
            }),
        }
    }

    /// Binds `127.0.0.1:0` and serves a new emulator for `account` on a background task.
    pub async fn start(account: VonageAccount) -> io::Result<RunningEmulator> {
        VonageEmulator::new(account).spawn().await
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

    /// The Vonage APIs and `/__sim/*` routes.
    pub fn router(&self) -> Router {
        api::routes(self.clone())
            .merge(crate::admin::routes(Arc::clone(&self.state.faults), self.state.journal.clone()))
    }

    /// The account this emulator accepts.
    #[must_use]
    pub fn account(&self) -> &VonageAccount {
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

    /// Sets what receipts report from now on (err-code for SMS, call status for calls).
    pub fn set_receipts(&self, plan: ReceiptPlan) {
        self.state.receipts.set_plan(plan);
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

    /// A message id like Vonage's (`0A0000000123ABCD1`: `0A` and 15 upper-case hex digits).
    fn new_message_id(&self) -> String {
        let value = self.random_u128() & ((1 << 60) - 1);
        format!("0A{value:015X}")
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
    emulator: VonageEmulator,
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
    pub fn emulator(&self) -> &VonageEmulator {
        &self.emulator
    }

    /// See [`VonageEmulator::set_faults`].
    pub fn set_faults(&self, faults: Faults) {
        self.emulator.set_faults(faults);
    }

    /// See [`VonageEmulator::faults`].
    #[must_use]
    pub fn faults(&self) -> Faults {
        self.emulator.faults()
    }

    /// See [`VonageEmulator::set_receipts`].
    pub fn set_receipts(&self, plan: ReceiptPlan) {
        self.emulator.set_receipts(plan);
    }

    /// See [`VonageEmulator::receipts_sent`].
    #[must_use]
    pub fn receipts_sent(&self) -> Vec<SentReceipt> {
        self.emulator.receipts_sent()
    }

    /// See [`VonageEmulator::received`].
    #[must_use]
    pub fn received(&self) -> Vec<ReceivedSend> {
        self.emulator.received()
    }

    /// See [`VonageEmulator::clear`].
    pub fn clear(&self) {
        self.emulator.clear();
    }

    /// Stops accepting, drops open connections and waits for the server task to end.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}
