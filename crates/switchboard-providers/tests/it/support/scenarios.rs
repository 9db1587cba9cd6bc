//! The fault scenarios every adapter is put through, written once: each adapter module calls
//! them with its own provider, emulator, messages and `verdict` (which also checks that no
//! error prints that provider's secrets), and keeps its provider-specific assertions beside.

use std::time::Duration;

use switchboard_core::{Certainty, ErrorClass, OutboundMessage};
use switchboard_providers::{Provider, ProviderError};
use switchboard_sim::{Api, Emulator, Fault, Faults};

/// Each adapter module's `verdict`: the error's class and certainty, once no secret shows.
pub type Verdict = fn(&ProviderError) -> (ErrorClass, Certainty);

/// A reset after the request reached the provider: the send fails as possibly accepted.
pub async fn assert_reset_is_possibly_accepted<A: Api>(
    provider: &dyn Provider,
    emulator: &Emulator<A>,
    message: &OutboundMessage,
    verdict: Verdict,
) {
    emulator.set_faults(Faults::always(Fault::Reset));
    let error = provider.send(message).await.unwrap_err();
    assert_eq!(verdict(&error), (ErrorClass::Transient, Certainty::PossiblyAccepted));
}

/// Once the faults clear, the client recovers on a new connection.
pub async fn assert_recovers<A: Api>(
    provider: &dyn Provider,
    emulator: &Emulator<A>,
    message: &OutboundMessage,
) {
    emulator.set_faults(Faults::none());
    assert!(provider.send(message).await.is_ok(), "the client recovers on a new connection");
}

/// A hang past the adapter's timeout: every one of `messages` times out, possibly accepted.
pub async fn assert_hang_is_possibly_accepted<A: Api>(
    provider: &dyn Provider,
    emulator: &Emulator<A>,
    messages: &[OutboundMessage],
    verdict: Verdict,
) {
    emulator.set_faults(Faults::always(Fault::Hang));
    for message in messages {
        let error = provider.send(message).await.unwrap_err();
        assert_eq!(verdict(&error), (ErrorClass::Timeout, Certainty::PossiblyAccepted));
    }
}

/// An adapter whose base URL refuses connections: every one of `messages` is transient and
/// certainly not sent.
pub async fn assert_refused_is_not_sent(
    provider: &dyn Provider,
    messages: &[OutboundMessage],
    verdict: Verdict,
) {
    for message in messages {
        let error = provider.send(message).await.unwrap_err();
        assert_eq!(verdict(&error), (ErrorClass::Transient, Certainty::NotSent));
    }
}

/// A 429 with `Retry-After: retry_after_s`: every one of `messages` is rate limited, not sent,
/// and carries the delay. Returns the errors, for the provider codes the caller checks.
pub async fn assert_rate_limited<A: Api>(
    provider: &dyn Provider,
    emulator: &Emulator<A>,
    retry_after_s: u64,
    messages: &[OutboundMessage],
    verdict: Verdict,
) -> Vec<ProviderError> {
    emulator.set_faults(Faults::always(Fault::RateLimit { retry_after_s }));
    let mut errors = Vec::new();
    for message in messages {
        let error = provider.send(message).await.unwrap_err();
        assert_eq!(verdict(&error), (ErrorClass::RateLimited, Certainty::NotSent));
        assert_eq!(error.retry_after, Some(Duration::from_secs(retry_after_s)));
        errors.push(error);
    }
    errors
}
