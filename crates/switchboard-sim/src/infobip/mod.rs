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
use std::time::SystemTime;

use serde::Serialize;
use serde_json::Value;

use crate::callbacks::Receipts;
use crate::emulator::{Emulator, Running};

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

// Per-provider record, alike in shape across emulators on purpose: its fields are this
// provider's wire format.
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
    #[serde(serialize_with = "crate::serialize_rfc3339")]
    pub received_at: SystemTime,
}

/// An Infobip emulator: cheap to clone, every clone shares faults, receipts and records.
pub type InfobipEmulator = Emulator<Infobip>;

/// An Infobip emulator serving on a loopback port; stops on shutdown or drop.
pub type RunningEmulator = Running<Infobip>;

crate::callbacks::callback_emulator! {
    /// Infobip's half of an [`InfobipEmulator`]: the account and the delivery reports it posts.
    pub struct Infobip { account: InfobipAccount, receipts: Receipts::none() }
    received = ReceivedRequest, routes = api::routes;
}
