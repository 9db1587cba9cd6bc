//! The adapters' one error type.

use std::time::Duration;

use switchboard_core::{Certainty, ErrorClass, Failure};

/// A failed send or probe: which class of failure, whether the provider may have taken the
/// message, and a detail that is safe to log.
///
/// `detail` is built from HTTP statuses and provider error codes only: never a request or
/// response body, a passcode, a phone number or a credential.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
#[error("{provider_kind} {class}: {detail}")]
pub struct ProviderError {
    /// The provider kind that failed (`twilio`).
    pub provider_kind: &'static str,
    /// Shared error class.
    pub class: ErrorClass,
    /// Whether the provider may have taken the message.
    pub certainty: Certainty,
    /// For rate limits: the provider's `Retry-After`.
    pub retry_after: Option<Duration>,
    /// The provider's own error code, when it gave one (`21211`).
    pub provider_code: Option<String>,
    /// A short, log-safe description.
    pub detail: String,
}

impl ProviderError {
    /// A failure before anything reached the provider.
    pub fn not_sent(
        provider_kind: &'static str,
        class: ErrorClass,
        detail: impl Into<String>,
    ) -> Self {
        ProviderError {
            provider_kind,
            class,
            certainty: Certainty::NotSent,
            retry_after: None,
            provider_code: None,
            detail: detail.into(),
        }
    }

    /// A failure after the request may have reached the provider.
    pub fn possibly_accepted(
        provider_kind: &'static str,
        class: ErrorClass,
        detail: impl Into<String>,
    ) -> Self {
        ProviderError {
            certainty: Certainty::PossiblyAccepted,
            ..Self::not_sent(provider_kind, class, detail)
        }
    }

    /// Classifies a transport error from reqwest. A connect failure cannot have sent anything; a
    /// timeout or a broken connection after the request was written may have.
    pub fn from_transport(provider_kind: &'static str, error: &reqwest::Error) -> Self {
        if error.is_connect() {
            Self::not_sent(provider_kind, ErrorClass::Transient, "connection failed")
        } else if error.is_timeout() {
            Self::possibly_accepted(provider_kind, ErrorClass::Timeout, "request timed out")
        } else if error.is_builder() || error.is_request() && error.url().is_none() {
            Self::not_sent(provider_kind, ErrorClass::AuthConfig, "request could not be built")
        } else {
            Self::possibly_accepted(provider_kind, ErrorClass::Transient, "connection broken")
        }
    }

    /// The core's view of this failure.
    #[must_use]
    pub fn failure(&self) -> Failure {
        Failure { class: self.class, certainty: self.certainty, retry_after: self.retry_after }
    }
}
