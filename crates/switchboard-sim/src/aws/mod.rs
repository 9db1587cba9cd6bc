//! An emulator of AWS End User Messaging SMS and Voice v2 (`pinpoint-sms-voice-v2`):
//! `SendTextMessage`, `SendVoiceMessage` and `DescribeAccountAttributes` over awsJson1_0
//! (`POST /`, `X-Amz-Target: PinpointSMSVoiceV2.<operation>`), with SigV4 verified by
//! recomputing the signature, input members checked as the botocore model declares them, and
//! AWS's JSON error shapes.
//!
//! Magic destination numbers (the emulator's own, AWS has no such list):
//! `+15550100001` ValidationException INVALID_PARAMETER on DestinationPhoneNumber,
//! `…02` ConflictException DESTINATION_PHONE_NUMBER_OPTED_OUT,
//! `…03` ValidationException DESTINATION_COUNTRY_BLOCKED,
//! `…04` ServiceQuotaExceededException MONTHLY_SPEND_LIMIT_REACHED_FOR_TEXT (`_VOICE` for calls),
//! `…05` AccessDeniedException ACCOUNT_DISABLED,
//! `…06` ConflictException DESTINATION_PHONE_NUMBER_NOT_VERIFIED (a sandbox account),
//! `…07` ResourceNotFoundException, `…08` ThrottlingException.
//!
//! HTTP statuses are not in the model (research notes section 10): client errors answer 400,
//! `InternalServerException` 500, as inferred there; the adapter reads `__type`, not the status.

mod api;
mod model;
mod sigv4;

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
use crate::server::{self, RunningServer};

/// The credentials and region the emulator accepts.
#[derive(Clone, PartialEq, Eq)]
pub struct AwsAccount {
    /// The access key id in the credential scope.
    pub access_key_id: String,
    /// The secret the signature is recomputed with.
    pub secret_access_key: String,
    /// When set, requests must carry it as `X-Amz-Security-Token`; when unset, must not.
    pub session_token: Option<String>,
    /// The region the credential scope must name.
    pub region: String,
}

impl AwsAccount {
    /// Long-term credentials for `region`.
    pub fn new(
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
        region: impl Into<String>,
    ) -> AwsAccount {
        AwsAccount {
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
            session_token: None,
            region: region.into(),
        }
    }

    /// Temporary credentials: the same, with a session token.
    #[must_use]
    pub fn with_session_token(self, token: impl Into<String>) -> AwsAccount {
        AwsAccount { session_token: Some(token.into()), ..self }
    }
}

impl fmt::Debug for AwsAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsAccount")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"***")
            .field("session_token", &self.session_token.as_ref().map(|_| "***"))
            .field("region", &self.region)
            .finish()
    }
}

/// One request the emulator received, recorded before auth, validation and faults.
#[derive(Clone, Debug, Serialize)]
pub struct ReceivedCall {
    /// The operation named by `X-Amz-Target` (`SendTextMessage`), if it had the service prefix.
    pub operation: Option<String>,
    /// The raw `X-Amz-Target`.
    pub target: Option<String>,
    /// The raw `Content-Type`.
    pub content_type: Option<String>,
    /// Whether the SigV4 signature verified for the configured account.
    pub is_signature_valid: bool,
    /// The JSON body (`null` when it was not JSON).
    pub body: serde_json::Value,
    /// When the request was read.
    #[serde(skip)]
    pub received_at: SystemTime,
}

/// An AWS SMS and Voice v2 emulator: cheap to clone, every clone shares faults and the record.
#[derive(Clone, Debug)]
pub struct AwsEmulator {
    state: Arc<EmulatorState>,
}

#[derive(Debug)]
struct EmulatorState {
    account: AwsAccount,
    faults: Arc<FaultInjector>,
    journal: Journal<ReceivedCall>,
    /// Message ids; separate from the faults' RNG. A std mutex held to draw one number.
    id_rng: Mutex<StdRng>,
}

impl AwsEmulator {
    /// An emulator for `account`, randomness seeded with 0.
    #[must_use]
    pub fn new(account: AwsAccount) -> AwsEmulator {
        AwsEmulator::with_seed(account, 0)
    }

    /// An emulator for `account` whose randomness (fault draws, message ids) is seeded.
    #[must_use]
    pub fn with_seed(account: AwsAccount, seed: u64) -> AwsEmulator {
        AwsEmulator {
            state: Arc::new(EmulatorState {
                account,
                faults: Arc::new(FaultInjector::new(seed)),
                journal: Journal::new(),
                id_rng: Mutex::new(StdRng::seed_from_u64(seed.wrapping_add(1))),
            }),
        }
    }

    /// Binds `127.0.0.1:0` and serves a new emulator for `account`.
    pub async fn start(account: AwsAccount) -> io::Result<RunningEmulator> {
        AwsEmulator::new(account).spawn().await
    }

    /// Binds `127.0.0.1:0` and serves this emulator on a background task.
    pub async fn spawn(self) -> io::Result<RunningEmulator> {
        let server = RunningServer::start(self.router()).await?;
        Ok(RunningEmulator { emulator: self, server })
    }

    /// Serves this emulator on `listener` until `shutdown` completes.
    pub async fn serve(self, listener: TcpListener, shutdown: impl Future<Output = ()> + Send) {
        server::serve(listener, self.router(), shutdown).await;
    }

    /// The API (`POST /`) and `/__sim/*` routes.
    pub fn router(&self) -> Router {
        api::routes(self.clone())
            .merge(crate::admin::routes(Arc::clone(&self.state.faults), self.state.journal.clone()))
    }

    /// The account this emulator accepts.
    #[must_use]
    pub fn account(&self) -> &AwsAccount {
        &self.state.account
    }

    /// Replaces the faults in force.
    ///
    /// # Panics
    /// If [`Faults::check`] refuses them.
    pub fn set_faults(&self, faults: Faults) {
        self.state.faults.set(faults);
    }

    /// Every request received so far, oldest first.
    #[must_use]
    pub fn received(&self) -> Vec<ReceivedCall> {
        self.state.journal.snapshot()
    }

    /// Forgets the received requests.
    pub fn clear(&self) {
        self.state.journal.clear();
    }

    fn record(&self, call: ReceivedCall) {
        self.state.journal.push(call);
    }

    fn fault_injector(&self) -> &FaultInjector {
        &self.state.faults
    }

    /// A UUID-shaped message id.
    fn new_message_id(&self) -> String {
        let value: u128 = self.state.id_rng.lock().unwrap_or_else(PoisonError::into_inner).random();
        let hex = format!("{value:032x}");
        format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
    }
}

/// An emulator serving on a loopback port; stops on [`RunningEmulator::shutdown`] or drop.
#[derive(Debug)]
#[must_use = "dropping the handle stops the emulator"]
pub struct RunningEmulator {
    emulator: AwsEmulator,
    server: RunningServer,
}

impl RunningEmulator {
    /// `http://127.0.0.1:PORT`, to use as the adapter's `endpoint_url`.
    #[must_use]
    pub fn base_url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// The bound address.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// The emulator handle.
    #[must_use]
    pub fn emulator(&self) -> &AwsEmulator {
        &self.emulator
    }

    /// See [`AwsEmulator::set_faults`].
    pub fn set_faults(&self, faults: Faults) {
        self.emulator.set_faults(faults);
    }

    /// See [`AwsEmulator::received`].
    #[must_use]
    pub fn received(&self) -> Vec<ReceivedCall> {
        self.emulator.received()
    }

    /// Stops accepting, drops open connections and waits for the server task to end.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}
