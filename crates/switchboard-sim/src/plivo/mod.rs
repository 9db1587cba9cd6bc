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
use std::time::SystemTime;

use serde::Serialize;
use serde_json::Value;

use crate::callbacks::{CallbackKind, Receipts, SentCallback};
use crate::emulator::{Emulator, Running};

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

// Per-provider record, alike in shape across emulators on purpose: its fields are this
// provider's wire format.
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
    #[serde(serialize_with = "crate::serialize_rfc3339")]
    pub received_at: SystemTime,
}

/// A Plivo emulator: cheap to clone, every clone shares faults, receipts and records.
pub type PlivoEmulator = Emulator<Plivo>;

/// A Plivo emulator serving on a loopback port; stops on shutdown or drop.
pub type RunningEmulator = Running<Plivo>;

crate::callbacks::callback_emulator! {
    /// Plivo's half of a [`PlivoEmulator`]: the account and the callbacks it makes.
    pub struct Plivo { account: PlivoAccount, receipts: Receipts::none() }
    received = ReceivedSend, routes = api::routes;
}

impl PlivoEmulator {
    /// The call scripts fetched from answer URLs so far (the XML is in `response_body`).
    #[must_use]
    pub fn answer_fetches(&self) -> Vec<SentCallback> {
        self.callbacks().into_iter().filter(|c| c.kind == CallbackKind::AnswerFetch).collect()
    }
}
