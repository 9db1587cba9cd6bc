//! A provider's "no": the fallback [`ErrorClass`] of an HTTP status, the certainty of a
//! refusal, `Retry-After`, and the [`ProviderError`] built from them. Every adapter's
//! `classify` reads the provider's own codes first and ends here.

use std::time::{Duration, SystemTime};

use switchboard_core::{Certainty, ErrorClass};

use crate::http::RawAnswer;
use crate::{Accepted, ProviderError};

/// The class of a non-2xx answer whose body names nothing we know.
///
/// 5xx and unknown 4xx are transient: the provider refused without saying the number is at
/// fault, so another provider may try, and health tracking ejects a provider that repeats it.
/// Reading it as a number-level verdict would fail the user's sign-in on a code we do not
/// understand.
#[must_use]
pub(crate) fn class_for_status(status: u16) -> ErrorClass {
    match status {
        401 | 403 | 404 => ErrorClass::AuthConfig,
        402 => ErrorClass::Funds,
        429 => ErrorClass::RateLimited,
        504 => ErrorClass::Timeout,
        // Redirects are not followed (they would re-send credentials elsewhere); one means the
        // base URL points at the wrong place.
        300..=399 => ErrorClass::AuthConfig,
        _ => ErrorClass::Transient,
    }
}

/// Whether a refusal with `status` may still have been taken: only behind a 504 (a gateway gave
/// up waiting for the provider, which may still have taken the message).
#[must_use]
pub(crate) fn certainty_for_status(status: u16) -> Certainty {
    if status == 504 { Certainty::PossiblyAccepted } else { Certainty::NotSent }
}

/// The answer's `Retry-After`, for rate limits only.
#[must_use]
pub(crate) fn retry_after(
    answer: &RawAnswer,
    class: ErrorClass,
    now: SystemTime,
) -> Option<Duration> {
    if class == ErrorClass::RateLimited {
        answer.retry_after.as_deref().and_then(|value| parse_retry_after(value, now))
    } else {
        None
    }
}

/// A refusal: nothing was sent (except behind a 504), detail `http {status}[, code {code}]`.
pub(crate) fn refusal(
    kind: &'static str,
    answer: &RawAnswer,
    class: ErrorClass,
    code: Option<String>,
    now: SystemTime,
) -> ProviderError {
    let detail = match &code {
        Some(code) => format!("http {}, code {code}", answer.status),
        None => format!("http {}", answer.status),
    };
    ProviderError {
        provider_kind: kind,
        class,
        certainty: certainty_for_status(answer.status),
        retry_after: retry_after(answer, class, now),
        provider_code: code,
        detail,
    }
}

/// A success answer that named no usable message id: possibly accepted, since sending again
/// could deliver twice. Detail `http {status} without a {what}`.
pub(crate) fn without(kind: &'static str, answer: &RawAnswer, what: &str) -> ProviderError {
    ProviderError::possibly_accepted(
        kind,
        ErrorClass::Transient,
        format!("http {} without a {what}", answer.status),
    )
}

/// Acceptance of `id` (already checked to look like the provider's ids), else [`without`].
pub(crate) fn accepted(
    kind: &'static str,
    answer: &RawAnswer,
    id: Option<String>,
    what: &str,
) -> Result<Accepted, ProviderError> {
    id.map(|message_id| Accepted { message_id }).ok_or_else(|| without(kind, answer, what))
}

/// `Retry-After` as delay-seconds or an HTTP-date (RFC 9110 section 10.2.3). A date in the past
/// means "now".
#[must_use]
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_fall_back_to_classes() {
        assert_eq!(class_for_status(401), ErrorClass::AuthConfig);
        assert_eq!(class_for_status(402), ErrorClass::Funds);
        assert_eq!(class_for_status(429), ErrorClass::RateLimited);
        assert_eq!(class_for_status(503), ErrorClass::Transient);
        assert_eq!(class_for_status(418), ErrorClass::Transient);
        assert_eq!(class_for_status(302), ErrorClass::AuthConfig);
    }

    #[test]
    fn retry_after_as_seconds_or_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let in_ten = httpdate::fmt_http_date(now + Duration::from_secs(10));
        assert_eq!(parse_retry_after(" 3 ", now), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after(&in_ten, now), Some(Duration::from_secs(10)));
        assert_eq!(parse_retry_after("Thu, 01 Jan 1970 00:00:00 GMT", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
