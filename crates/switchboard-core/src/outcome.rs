//! What happened to one attempt, and what that means for failover.
//!
//! Every attempt is classified twice: by *certainty* (did the provider possibly take the message?)
//! and, when it failed, by *error class* (whose fault, and may another provider be tried?). The
//! certainty matters because a retry after "possibly accepted" can put a second SMS on a real
//! person's phone; the class matters because failing over on an invalid or blocked number only
//! multiplies cost (and, for fraud blocks, launders pumping traffic through another provider).

use std::fmt;
use std::time::Duration;

/// How sure we are that the provider took the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Certainty {
    /// The provider cannot have taken it (connection refused, an error answer).
    NotSent,
    /// The request was written but no usable answer came back (timeout, reset, garbled body).
    PossiblyAccepted,
    /// The provider said it took it and gave a message id.
    Accepted,
}

impl Certainty {
    /// Lower-case label for logs and metrics.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Certainty::NotSent => "not_sent",
            Certainty::PossiblyAccepted => "possibly_accepted",
            Certainty::Accepted => "accepted",
        }
    }
}

/// Why an attempt failed, in the classes shared by every provider adapter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// The number cannot receive this message anywhere (malformed, unallocated, landline for SMS).
    InvalidNumber,
    /// The recipient opted out, or the destination is barred for this account.
    Blocked,
    /// The provider's own fraud protection refused the destination.
    FraudBlock,
    /// The provider throttled us.
    RateLimited,
    /// Our credentials or account configuration are wrong (401/403, sender not allowed).
    AuthConfig,
    /// The account is out of money or over its spend limit.
    Funds,
    /// A provider-side or network fault that may pass (5xx, reset, connect failure).
    Transient,
    /// No answer within the attempt's time.
    Timeout,
}

impl ErrorClass {
    /// Every class, in a stable order (for metrics and tests).
    pub const ALL: [ErrorClass; 8] = [
        ErrorClass::InvalidNumber,
        ErrorClass::Blocked,
        ErrorClass::FraudBlock,
        ErrorClass::RateLimited,
        ErrorClass::AuthConfig,
        ErrorClass::Funds,
        ErrorClass::Transient,
        ErrorClass::Timeout,
    ];

    /// Lower-case label for logs and metrics.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::InvalidNumber => "invalid_number",
            ErrorClass::Blocked => "blocked",
            ErrorClass::FraudBlock => "fraud_block",
            ErrorClass::RateLimited => "rate_limited",
            ErrorClass::AuthConfig => "auth_config",
            ErrorClass::Funds => "funds",
            ErrorClass::Transient => "transient",
            ErrorClass::Timeout => "timeout",
        }
    }

    /// Whether another provider may be tried after this failure.
    ///
    /// Number-level verdicts (invalid, blocked, fraud block) hold for every provider: trying
    /// another one costs money and, for fraud blocks, helps the attacker.
    #[must_use]
    pub fn is_failover_allowed(self) -> bool {
        !matches!(self, ErrorClass::InvalidNumber | ErrorClass::Blocked | ErrorClass::FraudBlock)
    }

    /// Whether this failure says something about the provider's health.
    ///
    /// A number-level verdict is the number's fault, not the provider's.
    #[must_use]
    pub fn is_provider_fault(self) -> bool {
        self.is_failover_allowed()
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed attempt, as the core sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Failure {
    /// Why it failed.
    pub class: ErrorClass,
    /// Whether the provider may have taken the message anyway.
    pub certainty: Certainty,
    /// For `RateLimited`: how long the provider asked us to wait.
    pub retry_after: Option<Duration>,
}

/// The result of one attempt on one provider.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// The provider accepted the message under this id.
    Accepted {
        /// The provider's message (or call) id.
        message_id: String,
    },
    /// The attempt failed.
    Failed(Failure),
}

impl AttemptOutcome {
    /// The attempt's certainty.
    #[must_use]
    pub fn certainty(&self) -> Certainty {
        match self {
            AttemptOutcome::Accepted { .. } => Certainty::Accepted,
            AttemptOutcome::Failed(failure) => failure.certainty,
        }
    }

    /// Label for metrics: `accepted` or the error class.
    #[must_use]
    pub fn label(&self) -> &'static str {
        match self {
            AttemptOutcome::Accepted { .. } => "accepted",
            AttemptOutcome::Failed(failure) => failure.class.as_str(),
        }
    }
}

/// What a delivery receipt said about a message a provider accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Delivery {
    /// The handset or carrier confirmed delivery (for calls: the call was answered).
    Delivered,
    /// The message will not be delivered; the class says why.
    Undelivered(ErrorClass),
}

impl Delivery {
    /// Lower-case label for logs and metrics.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Delivery::Delivered => "delivered",
            Delivery::Undelivered(_) => "undelivered",
        }
    }
}

/// What Okta said, or did not say, about a code a provider accepted: the conversion signal
/// ([`crate::health::HealthBook::record_conversion`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Conversion {
    /// The user entered the code (an Okta MFA verification or factor activation succeeded).
    Entered,
    /// A resend for the same number came inside the code's life: it likely did not arrive.
    /// `confirmed` when Okta's events confirmed the resend's code instead; otherwise it is a weak
    /// signal (users also ask again out of impatience) and weighs half.
    Superseded {
        /// Whether Okta confirmed the code that superseded it.
        confirmed: bool,
    },
    /// The code's life ended and Okta never reported it entered.
    NotEntered,
    /// Without Okta's events: the code's life ended and the user never asked again, a weak sign
    /// that it arrived (weighs half, as a resend does). With both, a provider is judged on the
    /// share of its codes that were asked for again, not on their number.
    NotResent,
}

impl Conversion {
    /// Whether this says the code arrived.
    #[must_use]
    pub fn is_entered(self) -> bool {
        matches!(self, Conversion::Entered | Conversion::NotResent)
    }

    /// Whether this is known when it happens: an entry, and the send it superseded. A code
    /// never entered, or never asked for again, is only known when its life ends, and such
    /// settlements come in batches (every few seconds, all the codes that expired since); they
    /// count toward a provider's record but not toward its latest evidence, where a batch of
    /// abandoned sign-ins would read as a route gone bad.
    #[must_use]
    pub fn is_timely(self) -> bool {
        matches!(self, Conversion::Entered | Conversion::Superseded { confirmed: true })
    }

    /// How much this observation weighs: the weak signals without Okta's events (a resend, or
    /// none) weigh half.
    #[must_use]
    pub fn weight(self) -> f64 {
        match self {
            Conversion::Superseded { confirmed: false } | Conversion::NotResent => 0.5,
            _ => 1.0,
        }
    }

    /// Lower-case label for logs and metrics.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Conversion::Entered => "entered",
            Conversion::Superseded { .. } => "superseded",
            Conversion::NotEntered => "not_entered",
            Conversion::NotResent => "not_resent",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_level_verdicts_do_not_fail_over() {
        let stopping: Vec<_> =
            ErrorClass::ALL.into_iter().filter(|class| !class.is_failover_allowed()).collect();
        assert_eq!(
            stopping,
            [ErrorClass::InvalidNumber, ErrorClass::Blocked, ErrorClass::FraudBlock]
        );
    }
}
