//! Provider adapters: the only code in switchboard that knows a provider's wire format.
//!
//! Each provider lives in its own folder (config, request builder, response classifier, client).
//! An adapter turns an [`OutboundMessage`] into the provider's HTTP request and the provider's
//! answer into an [`AttemptOutcome`]-compatible result, classifying every failure into the shared
//! [`ErrorClass`]es. Adapters never log or return a passcode, a message body or a credential:
//! error details are built from status codes and provider error codes only.

mod error;
pub mod twilio;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use switchboard_core::{Channel, OutboundMessage, ProviderId};

pub use error::ProviderError;

/// A provider's acceptance of one message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    /// The provider's id for the message or call (Twilio `SM…`/`CA…`).
    pub message_id: String,
}

/// One configured provider account.
///
/// A small object-safe trait, held as `Arc<dyn Provider>`: the server and the core never see
/// which provider they are talking to.
#[async_trait]
pub trait Provider: Send + Sync + fmt::Debug {
    /// The operator's id for this account.
    fn id(&self) -> &ProviderId;

    /// The provider's kind as written in config (`twilio`); also the `provider` Okta is told.
    fn kind(&self) -> &'static str;

    /// Whether this account can deliver on `channel`.
    fn supports(&self, channel: Channel) -> bool;

    /// Sends one message. Must not retry on its own: retries and failover belong to dispatch.
    ///
    /// The caller bounds the call with its own deadline and treats a cancelled future as a
    /// timeout; `send` itself also enforces the provider's configured per-request timeout.
    async fn send(&self, message: &OutboundMessage) -> Result<Accepted, ProviderError>;

    /// A cheap check that the API is reachable and the credentials work. Never sends a message.
    async fn probe(&self) -> Result<(), ProviderError>;
}

/// A shared provider handle.
pub type SharedProvider = Arc<dyn Provider>;
