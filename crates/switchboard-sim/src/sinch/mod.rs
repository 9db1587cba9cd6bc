//! An emulator of Sinch's SMS REST API (`POST` and `GET /xms/v1/{service_plan_id}/batches`)
//! and Voice callouts (`POST /calling/v1/callouts`): Bearer token auth for SMS, Basic or signed
//! application auth for calls, required fields and limits as the specs state, Sinch's success
//! and error bodies, the shared faults, delivery reports (per recipient, or a summary of the
//! batch) posted to a batch's `callback_url`, and signed DiCE events posted to the application's
//! callback URL.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use switchboard_sim::sinch::{SinchAccount, SinchEmulator};
//! use switchboard_sim::Receipts;
//!
//! let account = SinchAccount::new("plan1", "token", "669E367E-6BBA-48AB", "BeIukql3pTKJ8RGL5zo0DA==");
//! let sinch = SinchEmulator::start(account).await?;
//! sinch.set_receipts(Receipts::delivered());
//! // point an adapter's sms_base_url and voice_base_url at sinch.base_url() ...
//! # Ok(()) }
//! ```

mod api;
mod callbacks;

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use serde::Serialize;

use crate::callbacks::{CallbackLog, Receipts};
use crate::emulator::{AccountApi, Emulator, Running};

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

// Per-provider record, alike in shape across emulators on purpose: its fields are this
// provider's wire format.
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

/// Sinch's half of a [`SinchEmulator`]: the account, the receipts it posts and where DiCE
/// events go.
#[derive(Debug)]
pub struct Sinch {
    account: SinchAccount,
    callbacks: Arc<CallbackLog>,
    /// The application's callback URL (a dashboard setting), where DiCE events go.
    /// A std mutex: sections only clone or assign it.
    voice_callback_url: Mutex<Option<String>>,
}

/// A Sinch emulator: cheap to clone, every clone shares faults, receipts and the record.
pub type SinchEmulator = Emulator<Sinch>;

/// A Sinch emulator serving on a loopback port (use its base URL as the adapter's
/// `sms_base_url` and `voice_base_url`); stops on shutdown or drop.
pub type RunningEmulator = Running<Sinch>;

// Receipts report a delivery report code for SMS and a DiCE result (such as `NOANSWER`) for
// calls.
crate::callbacks::callback_emulator!(Sinch, received = ReceivedSend, routes = api::routes);

impl AccountApi for Sinch {
    type Account = SinchAccount;

    fn for_account(account: SinchAccount) -> Sinch {
        Sinch {
            account,
            callbacks: Arc::new(CallbackLog::new(Receipts::none())),
            voice_callback_url: Mutex::new(None),
        }
    }

    fn account(&self) -> &SinchAccount {
        &self.account
    }
}

impl SinchEmulator {
    /// Sets the Voice application's callback URL (Sinch's dashboard setting): where DiCE events
    /// of callouts that enable them are posted.
    pub fn set_voice_callback_url(&self, url: Option<String>) {
        *self.api().voice_callback_url.lock().unwrap_or_else(PoisonError::into_inner) = url;
    }

    fn voice_callback_url(&self) -> Option<String> {
        self.api().voice_callback_url.lock().unwrap_or_else(PoisonError::into_inner).clone()
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
}
