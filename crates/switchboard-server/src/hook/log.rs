//! The log lines about one delivery: when Okta is answered, and when a background delivery
//! ends. Never the code, the text or the number (only its keyed reference).

use std::time::Duration;

use switchboard_core::{OutboundMessage, Purpose};

use crate::dispatch::{AttemptRecord, Progress};
use crate::okta::ActionStatus;
use switchboard_core::plan::Exclusion;

/// The fields every line about a delivery carries. Never the code, the text or the number.
pub(super) struct LogLine<'a> {
    pub(super) message: &'a OutboundMessage,
    pub(super) purpose: Purpose,
    pub(super) phone: &'a str,
    pub(super) is_resend: bool,
}

impl LogLine<'_> {
    pub(super) fn emit(
        &self,
        what: &'static str,
        progress: &Progress,
        outcome: &str,
        status: Option<ActionStatus>,
        elapsed: Duration,
        is_warning: bool,
    ) {
        // Written straight into the line, never collected into strings of their own.
        let (attempts, excluded) = (Attempts(&progress.attempts), Excluded(&progress.excluded));
        macro_rules! line {
            ($level:expr) => {
                tracing::event!(
                    $level,
                    event_id = %self.message.reference,
                    country = %self.message.destination.country(),
                    phone = %self.phone,
                    channel = %self.message.channel,
                    request_type = self.purpose.as_str(),
                    is_resend = self.is_resend,
                    route = progress.rule.as_deref().unwrap_or("-"),
                    attempts = %attempts,
                    excluded = %excluded,
                    outcome = %outcome,
                    okta_status = status.map_or("-", ActionStatus::as_str),
                    duration_ms = elapsed.as_millis() as u64,
                    "{what}"
                )
            };
        }
        // Warn when the user may not get a code.
        if is_warning {
            line!(tracing::Level::WARN);
        } else {
            line!(tracing::Level::INFO);
        }
    }
}

/// `provider:outcome:12ms,…`, one per attempt.
struct Attempts<'a>(&'a [AttemptRecord]);

impl std::fmt::Display for Attempts<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (index, a) in self.0.iter().enumerate() {
            let comma = if index > 0 { "," } else { "" };
            write!(f, "{comma}{}:{}:{}ms", a.provider, a.outcome.label(), a.elapsed.as_millis())?;
        }
        Ok(())
    }
}

/// `provider:reason,…`, one per provider the plan left out.
struct Excluded<'a>(&'a [Exclusion]);

impl std::fmt::Display for Excluded<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (index, e) in self.0.iter().enumerate() {
            let comma = if index > 0 { "," } else { "" };
            write!(f, "{comma}{}:{}", e.provider, e.reason.as_str())?;
        }
        Ok(())
    }
}
