//! An emulator of Twilio's REST API 2010-04-01: `Messages.json`, `Calls.json` and the account
//! resource, with Twilio's Basic auth, required parameters, error bodies and documented magic
//! test numbers (`To` `+15005550001` gives 21211, and so on; the full table is in `api.rs`),
//! and signed status callbacks to a send's `StatusCallback` (what they report is set with
//! `set_receipts` or `PUT /__sim/receipts`; unlike the other emulators, Twilio's starts with
//! "delivered", as the demo and the end-to-end tests expect callbacks without asking).
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
use std::time::SystemTime;

use serde::Serialize;

pub use self::callbacks::signature;
use crate::callbacks::Receipts;
use crate::emulator::{Emulator, Running};

/// The REST API version in every path and answer; `api` and `callbacks` both name it.
const API_VERSION: &str = "2010-04-01";

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

// Per-provider record, alike in shape across emulators on purpose: its fields are this
// provider's wire format.
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

/// A Twilio emulator: cheap to clone, every clone shares faults and the request record.
pub type TwilioEmulator = Emulator<Twilio>;

/// A Twilio emulator serving on a loopback port; stops on shutdown or drop.
pub type RunningEmulator = Running<Twilio>;

// Receipts report Twilio's `ErrorCode` (such as 30003) when undelivered.
crate::callbacks::callback_emulator! {
    /// Twilio's half of a [`TwilioEmulator`]: the account and the status callbacks.
    pub struct Twilio { account: TwilioAccount, receipts: Receipts::delivered() }
    received = ReceivedSend, routes = api::routes;
}

impl TwilioEmulator {
    /// `prefix` followed by 32 random hex digits, like Twilio's sids.
    fn new_sid(&self, prefix: &str) -> String {
        format!("{prefix}{:032x}", self.random_u128())
    }
}
