//! What every HTTP adapter does the same way: validate `base_url` and timeouts, build one pooled
//! client per account that never follows redirects, send one request under a deadline, and read
//! at most a bounded prefix of the answer.
//!
//! The Twilio adapter predates this module and keeps its own copy; newer adapters share this one.

use std::time::{Duration, SystemTime};

use switchboard_core::ConfigError;

use crate::ProviderError;

/// The most of an answer's body that is read. Provider answers to a send are a few KiB; a larger
/// body is not the provider's, and classification then falls back to the status.
pub(crate) const MAX_BODY_BYTES: usize = 64 * 1024;

/// Longest per-request timeout accepted: Okta gives the whole hook a few seconds.
const MAX_TIMEOUT_MS: u64 = 60_000;

/// Checks `{key_prefix}.base_url` and returns it without a trailing `/`.
pub(crate) fn base_url(key_prefix: &str, url: &str) -> Result<String, ConfigError> {
    let invalid = |reason: &str| ConfigError::invalid(format!("{key_prefix}.base_url"), reason);
    let parsed = reqwest::Url::parse(url).map_err(|_| invalid("must be a URL"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
        return Err(invalid("must be an http or https URL with a host"));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(invalid("must not have a query or fragment"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(invalid("must not carry credentials"));
    }
    Ok(url.trim_end_matches('/').to_owned())
}

/// Checks `timeout_ms` and `connect_timeout_ms` under `key_prefix`.
pub(crate) fn check_timeouts(
    key_prefix: &str,
    timeout_ms: u64,
    connect_timeout_ms: u64,
) -> Result<(), ConfigError> {
    if !(1..=MAX_TIMEOUT_MS).contains(&timeout_ms) {
        return Err(ConfigError::invalid(
            format!("{key_prefix}.timeout_ms"),
            format!("must be between 1 and {MAX_TIMEOUT_MS}"),
        ));
    }
    if !(1..=timeout_ms).contains(&connect_timeout_ms) {
        return Err(ConfigError::invalid(
            format!("{key_prefix}.connect_timeout_ms"),
            "must be between 1 and timeout_ms",
        ));
    }
    Ok(())
}

/// One pooled client for one account.
pub(crate) fn client(
    key_prefix: &str,
    connect_timeout: Duration,
) -> Result<reqwest::Client, ConfigError> {
    reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        // No provider API redirects; following one would re-send the credentials and the
        // passcode to wherever it points.
        .redirect(reqwest::redirect::Policy::none())
        // Reuse connections, but drop idle ones before a load balancer would: a request written
        // on a connection the far end is closing fails as "possibly accepted".
        .pool_idle_timeout(Duration::from_secs(30))
        .user_agent(concat!("switchboard/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|error| ConfigError::invalid(key_prefix, format!("http client: {error}")))
}

/// An answer as read off the wire.
#[derive(Debug)]
pub(crate) struct RawAnswer {
    pub(crate) status: u16,
    /// The raw `Retry-After` header.
    pub(crate) retry_after: Option<String>,
    /// At most [`MAX_BODY_BYTES`] of the body; empty when an error answer's body broke off.
    pub(crate) body: Vec<u8>,
}

/// Sends `request` (auth already applied) under `timeout`; reads the status, `Retry-After` and
/// at most [`MAX_BODY_BYTES`] of the body.
pub(crate) async fn exchange(
    kind: &'static str,
    request: reqwest::RequestBuilder,
    timeout: Duration,
) -> Result<RawAnswer, ProviderError> {
    let mut response = request
        .timeout(timeout)
        .send()
        .await
        .map_err(|error| ProviderError::from_transport(kind, &error))?;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = MAX_BODY_BYTES - body.len();
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if body.len() == MAX_BODY_BYTES {
                    break;
                }
            }
            Ok(None) => break,
            // A 2xx whose body broke off may still be a created message; an error status is a
            // refusal whether or not its body arrived.
            Err(error) if (200..300).contains(&status) => {
                return Err(ProviderError::from_transport(kind, &error));
            }
            Err(_) => {
                body.clear();
                break;
            }
        }
    }
    Ok(RawAnswer { status, retry_after, body })
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

/// Checks a callback base URL handed over by the server (`{public_base_url}/callbacks/{id}`).
pub(crate) fn callback_base(key_prefix: &str, base: &str) -> Result<String, ConfigError> {
    let parsed = reqwest::Url::parse(base).map_err(|_| {
        ConfigError::invalid(format!("{key_prefix} callback base"), "must be a URL")
    })?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.query().is_some() {
        return Err(ConfigError::invalid(
            format!("{key_prefix} callback base"),
            "must be an http or https URL without a query",
        ));
    }
    Ok(base.trim_end_matches('/').to_owned())
}

/// Equality that takes the same time wherever the first difference is (signatures, tokens).
#[must_use]
pub(crate) fn constant_time_eq(left: &[u8], right: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    left.len() == right.len() && bool::from(left.ct_eq(right))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_rules() {
        assert_eq!(base_url("p", "http://127.0.0.1:8080/").unwrap(), "http://127.0.0.1:8080");
        for bad in ["ftp://x", "https://u:p@x", "https://x?a=1", "not a url"] {
            let error = base_url("providers.p", bad).unwrap_err().to_string();
            assert!(error.starts_with("providers.p.base_url: "), "{error}");
        }
    }

    #[test]
    fn timeouts_name_their_key() {
        assert!(check_timeouts("p", 1200, 300).is_ok());
        let error = check_timeouts("p", 0, 0).unwrap_err().to_string();
        assert!(error.starts_with("p.timeout_ms: "), "{error}");
        let error = check_timeouts("p", 100, 200).unwrap_err().to_string();
        assert!(error.starts_with("p.connect_timeout_ms: "), "{error}");
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

    #[test]
    fn constant_time_eq_compares_whole_values() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
