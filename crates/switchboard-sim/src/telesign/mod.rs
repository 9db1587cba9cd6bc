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
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use serde::Serialize;

use crate::callbacks::{CallbackLog, Receipts};
use crate::emulator::{AccountApi, Emulator, Running};

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

// Per-provider record, alike in shape across emulators on purpose: its fields are this
// provider's wire format.
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
    #[serde(serialize_with = "crate::serialize_rfc3339")]
    pub received_at: SystemTime,
}

impl ReceivedSend {
    /// The first value of form parameter `name`.
    #[must_use]
    pub fn param(&self, name: &str) -> Option<&str> {
        crate::request::first_param(&self.params, name)
    }
}

/// Telesign's half of a [`TelesignEmulator`]: the account, the receipts it posts, and the
/// nonces it has seen.
#[derive(Debug)]
pub struct Telesign {
    account: TelesignAccount,
    callbacks: Arc<CallbackLog>,
    /// Recently seen nonces (Telesign refuses a reused one, -30012), bounded.
    nonces: Mutex<(HashSet<String>, VecDeque<String>)>,
}

/// Nonces remembered for reuse detection.
const NONCE_MEMORY: usize = 10_000;

/// A Telesign emulator: cheap to clone, every clone shares faults, receipts and records.
pub type TelesignEmulator = Emulator<Telesign>;

/// A Telesign emulator serving on a loopback port; stops on shutdown or drop.
pub type RunningEmulator = Running<Telesign>;

crate::callbacks::callback_emulator!(Telesign, received = ReceivedSend, routes = api::routes);

impl AccountApi for Telesign {
    type Account = TelesignAccount;

    fn for_account(account: TelesignAccount) -> Telesign {
        Telesign {
            account,
            callbacks: Arc::new(CallbackLog::new(Receipts::none())),
            nonces: Mutex::new((HashSet::new(), VecDeque::new())),
        }
    }

    fn account(&self) -> &TelesignAccount {
        &self.account
    }
}

impl TelesignEmulator {
    /// 32 upper-case hex digits, like Telesign's reference ids.
    fn new_reference_id(&self) -> String {
        format!("{:032X}", self.random_u128())
    }

    /// Remembers `nonce`; false when it was seen recently.
    fn is_fresh_nonce(&self, nonce: &str) -> bool {
        let mut guard = self.api().nonces.lock().unwrap_or_else(PoisonError::into_inner);
        let (seen, order) = &mut *guard;
        if !seen.insert(nonce.to_owned()) {
            return false;
        }
        order.push_back(nonce.to_owned());
        if order.len() > NONCE_MEMORY
            && let Some(oldest) = order.pop_front()
        {
            seen.remove(&oldest);
        }
        true
    }
}
