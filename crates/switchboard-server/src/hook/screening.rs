//! The checks that decide, before any ledger, guard or provider, whether a number may get a
//! code at all, and the fraud guard's verdict once the event is admitted. Shared with `explain`,
//! so that it never shows a route for a number the hook would refuse.

use std::time::Duration;

use axum::Json;
use axum::response::{IntoResponse, Response};
use switchboard_core::{Channel, Destination, OutboundMessage};

use crate::config::OktaSettings;
use crate::guard::{BlockedAnswer, GuardInput, ip_key, prefix_of};
use crate::ledger::Answer;
use crate::okta::{ActionStatus, HookResponse};
use crate::state::{Runtime, Shared};

/// Clock skew tolerated between Okta's `otpExpires` and our clock.
const EXPIRY_SKEW: Duration = Duration::from_secs(30);

/// The checks that decide whether a number may get a code at all, before any ledger, guard or
/// provider: shared with `explain`, so that it never shows a route for a number the hook
/// would refuse.
pub(crate) struct Screening<'a> {
    /// The number as Okta sent it.
    pub(crate) phone_number: &'a str,
    pub(crate) channel: Channel,
    /// Okta's `otpExpires`, when sent.
    pub(crate) otp_expires: Option<time::OffsetDateTime>,
    /// Okta's `eventTime`, when sent.
    pub(crate) event_time: Option<time::OffsetDateTime>,
}

/// Why a request was refused before any send. `detail` never holds the number or the code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) reason: &'static str,
    pub(crate) detail: String,
}

impl Screening<'_> {
    /// The destination, or why no code may go to it: an unreadable number, a line type that
    /// takes no OTP on this channel, an expired code, or an event too old (or too far in the
    /// future) to be anything but a replay.
    pub(crate) fn screen(
        &self,
        okta: &OktaSettings,
        now: time::OffsetDateTime,
    ) -> Result<Destination, Refusal> {
        let refusal = |reason, detail: String| Refusal { reason, detail };
        let destination = Destination::parse(self.phone_number, okta.default_region)
            .map_err(|error| refusal("invalid_phone_number", error.to_string()))?;
        if !destination.kind().takes_otp(self.channel) {
            let detail = format!("{} numbers take no {} OTP", destination.kind(), self.channel);
            return Err(refusal("number_type", detail));
        }
        if self.otp_expires.is_some_and(|expires| expires + EXPIRY_SKEW < now) {
            return Err(refusal("otp_expired", "otpExpires is in the past".into()));
        }
        if let Some(event_time) = self.event_time {
            let tolerance = okta.event_time_tolerance;
            let distance = (now - event_time).unsigned_abs();
            if distance > tolerance {
                let when = if event_time < now { "before" } else { "after" };
                let detail = format!(
                    "eventTime is {}s {when} our clock, more than okta.event_time_tolerance_s ({}s): a replay, or a clock that is off",
                    distance.as_secs(),
                    tolerance.as_secs()
                );
                return Err(refusal("event_time", detail));
            }
        }
        Ok(destination)
    }
}

/// An authenticated request refused on its content: Okta's FAILED shape, no provider call.
pub(super) fn refuse(shared: &Shared, event_id: &str, refusal: &Refusal) -> Response {
    let (reason, detail) = (refusal.reason, refusal.detail.as_str());
    shared.metrics.hook_refused(reason);
    tracing::warn!(event_id, reason, detail, "hook request refused");
    let response = HookResponse::new(
        ActionStatus::Failed,
        "switchboard".into(),
        event_id.to_owned(),
        format!("refused={reason}; detail={detail}"),
    );
    Json(response).into_response()
}

/// Asks the fraud guard; `Some(answer)` when the request must not be sent. In Redis mode its
/// velocity limits are the fleet's (one script for all of them, within the hook path's
/// timeout, else this replica's share: see `fleet/limits.rs`).
pub(super) async fn check_guard(
    shared: &Shared,
    runtime: &Runtime,
    message: &OutboundMessage,
    user_id: Option<&str>,
    ip_address: Option<std::net::IpAddr>,
) -> Option<Answer> {
    let guard = &runtime.guard;
    let prefix = prefix_of(message.destination.e164(), guard.hidden_digits(message.channel));
    let input = GuardInput {
        channel: message.channel,
        country: message.destination.country(),
        number: shared.phones.key(&message.destination),
        prefix: shared.phones.digest(prefix.as_bytes()),
        user: user_id.map(|user| shared.phones.digest(user.as_bytes())),
        ip: ip_address.map(ip_key),
    };
    let spent = shared.spend.spent_on(shared.today(), input.country);
    let verdict = match shared.fleet.redis() {
        None => guard.check(&input, spent, &shared.guard_limits),
        Some(redis) => {
            let counters = crate::fleet::limits::FleetCounters { shared, redis };
            guard.check_with(&input, spent, &counters).await
        }
    };
    shared.metrics.guard(
        verdict.blocked_label(),
        &verdict.near_miss_labels(),
        message.channel,
        guard.mode_label(),
    );
    let rule = verdict.blocked_by?;
    // A block is a warning; what monitor mode would have blocked is counted and noted at info.
    macro_rules! guard_line {
        ($level:expr) => {
            tracing::event!(
                $level,
                event_id = %message.reference,
                country = %message.destination.country(),
                phone = %shared.phones.reference(&message.destination),
                channel = %message.channel,
                rule = rule.as_str(),
                mode = guard.mode_label(),
                blocked = verdict.is_blocked,
                "fraud guard"
            )
        };
    }
    if verdict.is_blocked {
        guard_line!(tracing::Level::WARN);
    } else {
        guard_line!(tracing::Level::INFO);
    }
    if !verdict.is_blocked {
        return None;
    }
    let status = match guard.blocked_answer() {
        BlockedAnswer::Failed => ActionStatus::Failed,
        BlockedAnswer::Successful => ActionStatus::Successful,
    };
    let response = HookResponse::new(
        status,
        "switchboard".into(),
        message.reference.clone(),
        format!("refused=guard; rule={}", rule.as_str()),
    );
    Some(Answer { body: serde_json::to_string(&response).unwrap_or_default() })
}
