//! What every adapter written after Twilio does on the wire: one pooled client per account that
//! never follows redirects, a bounded read of the answer, `Retry-After`, and the fallback class
//! of an HTTP status, shared by every adapter.

use std::time::{Duration, SystemTime};

use switchboard_core::{Certainty, ConfigError, ErrorClass};

use crate::ProviderError;

/// The most of an answer's body that is read. Provider answers are a few KiB; a larger body is
/// not the provider's, and classification then falls back to the status.
pub(crate) const MAX_BODY_BYTES: usize = 64 * 1024;

/// Longest per-request timeout accepted: Okta gives the whole hook a few seconds.
pub(crate) const MAX_TIMEOUT_MS: u64 = 60_000;

/// Checks `{key_prefix}.base_url` and returns it without a trailing `/`.
pub(crate) fn base_url(key_prefix: &str, url: &str) -> Result<String, ConfigError> {
    check_base_url(&format!("{key_prefix}.base_url"), url)
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

/// An answer as read off the wire.
#[derive(Debug)]
pub(crate) struct RawAnswer {
    pub(crate) status: u16,
    /// The raw `Retry-After` header.
    pub(crate) retry_after: Option<String>,
    /// The raw `x-amzn-ErrorType` header (AWS's JSON protocols name the error there).
    pub(crate) amzn_error_type: Option<String>,
    pub(crate) body: Vec<u8>,
}

impl RawAnswer {
    pub(crate) fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// One client per account: connections are reused across sends, redirects are never followed
/// (they would re-send credentials and the passcode to wherever they point), and idle
/// connections are dropped before a load balancer would close them under a request.
pub(crate) fn client(
    key_prefix: &str,
    connect_timeout: Duration,
) -> Result<reqwest::Client, ConfigError> {
    reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .pool_idle_timeout(Duration::from_secs(30))
        .user_agent(concat!("switchboard/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|error| ConfigError::invalid(key_prefix, format!("http client: {error}")))
}

/// Sends `request` under `timeout`; reads the status, `Retry-After` and at most
/// [`MAX_BODY_BYTES`] of the body.
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
    let header = |name: &str| {
        response.headers().get(name).and_then(|value| value.to_str().ok()).map(str::to_owned)
    };
    let retry_after = header("retry-after");
    let amzn_error_type = header("x-amzn-errortype");
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
            // A 2xx whose body broke off may still be an accepted message (and a Vonage SMS
            // answer is always 200, errors included); an error status is a refusal whether or
            // not its body arrived.
            Err(error) if (200..300).contains(&status) => {
                return Err(ProviderError::from_transport(kind, &error));
            }
            Err(_) => {
                body.clear();
                break;
            }
        }
    }
    Ok(RawAnswer { status, retry_after, amzn_error_type, body })
}

/// The class of a non-2xx answer whose body names nothing we know.
///
/// 5xx and unknown 4xx are transient: the provider refused without saying the number is at
/// fault, so another provider may try, and health tracking ejects a provider that repeats it.
#[must_use]
pub(crate) fn class_for_status(status: u16) -> ErrorClass {
    match status {
        401 | 403 | 404 => ErrorClass::AuthConfig,
        402 => ErrorClass::Funds,
        429 => ErrorClass::RateLimited,
        504 => ErrorClass::Timeout,
        // Redirects are not followed; one means `base_url` points at the wrong place.
        300..=399 => ErrorClass::AuthConfig,
        _ => ErrorClass::Transient,
    }
}

/// A refusal: nothing was sent, except behind a 504 (a gateway gave up waiting for the
/// provider, which may still have taken the message).
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
    let certainty =
        if answer.status == 504 { Certainty::PossiblyAccepted } else { Certainty::NotSent };
    let retry_after = if class == ErrorClass::RateLimited {
        answer.retry_after.as_deref().and_then(|value| parse_retry_after(value, now))
    } else {
        None
    };
    ProviderError {
        provider_kind: kind,
        class,
        certainty,
        retry_after,
        provider_code: code,
        detail,
    }
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

/// Checks a base URL setting at `key`; returns it without a trailing `/`.
pub(crate) fn check_base_url(key: &str, url: &str) -> Result<String, ConfigError> {
    let invalid = |reason: &str| ConfigError::invalid(key, reason);
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

/// A random (version 4) UUID in its text form, for JWT ids.
#[must_use]
pub(crate) fn random_uuid() -> String {
    let mut bytes: [u8; 16] = rand::random();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = hex::encode(bytes);
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

/// Whether `text` encodes in the GSM 03.38 default alphabet and its extension table (GSM-7);
/// anything else must be sent as UCS-2, which carriers call "unicode".
#[must_use]
pub(crate) fn is_gsm7(text: &str) -> bool {
    const GSM_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
        ¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
    const GSM_EXTENSION: &str = "^{}\\[~]|€\x0c";
    text.chars().all(|c| GSM_BASIC.contains(c) || GSM_EXTENSION.contains(c))
}

/// Compares two secrets in time independent of where they differ.
#[must_use]
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_gsm7() {
        assert!(is_gsm7("Your Acme code is 123456 {€}"));
        assert!(!is_gsm7("Votre code: 123456 ✓"));
        assert!(!is_gsm7("確認コード 123456"));
        assert!(is_gsm7("Code: 123456 é ñ Ç"));
        assert!(!is_gsm7("código ó"), "ó is not in the GSM default alphabet");
    }

    #[test]
    fn uuids_are_version_4() {
        let uuid = random_uuid();
        assert_eq!(uuid.len(), 36);
        assert_eq!(&uuid[14..15], "4");
        assert!(matches!(&uuid[19..20], "8" | "9" | "a" | "b"), "{uuid}");
        assert_ne!(uuid, random_uuid());
    }

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
    fn base_urls_are_checked_and_trimmed() {
        assert_eq!(check_base_url("k", "http://127.0.0.1:1/").unwrap(), "http://127.0.0.1:1");
        for bad in ["ftp://x", "https://u:p@x", "https://x/?a=1", "not a url"] {
            assert!(
                check_base_url("k.base_url", bad)
                    .unwrap_err()
                    .to_string()
                    .starts_with("k.base_url: ")
            );
        }
    }

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
