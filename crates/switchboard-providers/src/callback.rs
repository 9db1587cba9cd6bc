//! Provider callbacks: delivery receipts, and content a provider fetches from us during a send
//! (Plivo's answer XML for a call).
//!
//! The server owns the HTTP route (`{public_base_url}/callbacks/{provider id}/...`) and hands
//! each request, untouched, to the provider it names. Only the adapter knows the provider's
//! signature scheme and payload, so it verifies and parses; the server only correlates the
//! receipts with its attempts and feeds provider health. A request whose signature does not
//! verify must have no effect at all.

use bytes::Bytes;
use http::HeaderMap;
use switchboard_core::ErrorClass;

/// An HTTP request a provider made to switchboard's callback endpoint.
#[derive(Debug, Clone)]
pub struct Callback {
    /// `GET` or `POST` (upper case).
    pub method: String,
    /// The full public URL the provider called, query included, as the provider saw it
    /// (`{public_base_url}/callbacks/{id}/status?x=1`): signatures cover it.
    pub url: String,
    /// The path below `/callbacks/{id}` (`/status`, `/answer`), for adapters with several.
    pub subpath: String,
    /// The request headers.
    pub headers: HeaderMap,
    /// The raw body.
    pub body: Bytes,
}

/// What a delivery receipt says about one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryState {
    /// The handset (or the carrier, for SMS) confirmed delivery; for calls, the call was answered.
    Delivered,
    /// The message will not be delivered; the class says why.
    Undelivered(ErrorClass),
    /// An intermediate state (queued, sent, ringing); says nothing about health yet.
    Pending,
}

/// One receipt, correlated by the provider's message id (the one `send` returned).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    /// The provider's message or call id.
    pub message_id: String,
    /// What happened.
    pub state: DeliveryState,
    /// The provider's own status or error code, when it gave one (log-safe).
    pub provider_code: Option<String>,
}

/// What the adapter wants answered, and what it learned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallbackReply {
    /// Receipts found in the request (often one, none for an answer-URL fetch).
    pub receipts: Vec<Receipt>,
    /// HTTP status to answer with.
    pub status: u16,
    /// `Content-Type` of `body`.
    pub content_type: &'static str,
    /// Response body (empty for plain receipts; call XML for an answer URL).
    pub body: String,
}

impl CallbackReply {
    /// `200` with an empty body, carrying receipts.
    #[must_use]
    pub fn receipts(receipts: Vec<Receipt>) -> CallbackReply {
        CallbackReply { receipts, status: 200, content_type: "text/plain", body: String::new() }
    }
}

/// Why a callback was refused. Every variant means: no effect on any state.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    /// The signature is missing or does not verify (answered 401/403).
    #[error("callback signature missing or invalid")]
    BadSignature,
    /// The payload cannot be read (answered 400); the text is log-safe.
    #[error("malformed callback: {0}")]
    Malformed(String),
    /// No such callback path, or the referenced call is unknown or expired (answered 404).
    #[error("unknown callback")]
    NotFound,
    /// This provider takes no callbacks (answered 404).
    #[error("this provider takes no callbacks")]
    Unsupported,
}

/// A store beyond this process for content a provider fetches from us during a send (Plivo's
/// call scripts), so that the fetch may land on any replica behind a load balancer. The server
/// implements it (the adapters know nothing of where it keeps them) and hands it to every
/// adapter through [`crate::Provider::share_scripts`]. A script is in one place only, so it is
/// served once: here when it was kept, otherwise (the store unreachable) in the adapter's own
/// book, where only the replica that made it can serve it.
///
/// The token is the secret part of the URL the provider fetches: an implementation must not
/// keep it, or the script, in a form that reveals either.
#[async_trait::async_trait]
pub trait SharedScripts: Send + Sync + std::fmt::Debug {
    /// Keeps `script` under `token` for `ttl`; false when it could not (the adapter keeps it
    /// then). On a send's path: an implementation bounds it tightly.
    async fn keep(
        &self,
        token: &str,
        script: &switchboard_core::MessageText,
        ttl: std::time::Duration,
    ) -> bool;
    /// Takes the script kept under `token`: once, and `None` when it is unknown, taken, expired
    /// or cannot be had.
    async fn take(&self, token: &str) -> Option<switchboard_core::MessageText>;
    /// Forgets the script under `token` (its call was never placed, or it was served from the
    /// adapter's own book after a `keep` that timed out may still have landed), in the
    /// background.
    fn forget(&self, token: &str);
}

/// What an adapter needs from the server to build its callbacks.
#[derive(Clone, Debug, Default)]
pub struct BuildContext {
    /// `{public_base_url}/callbacks/{provider id}` when `server.public_base_url` is configured;
    /// without it, adapters ask for no callbacks (and providers that need one, such as Plivo
    /// voice, refuse the channel at load time).
    pub callback_base: Option<String>,
}

impl BuildContext {
    /// The callback base, checked (`http`/`https`, no query) and without a trailing `/`; `None`
    /// when the server has no public URL.
    pub(crate) fn checked_callback_base(
        &self,
        key_prefix: &str,
    ) -> Result<Option<String>, switchboard_core::ConfigError> {
        self.callback_base
            .as_deref()
            .map(|base| crate::url::callback_base(key_prefix, base))
            .transpose()
    }
}
