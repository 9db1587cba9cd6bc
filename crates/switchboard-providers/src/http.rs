//! HTTP plumbing shared by the adapters: one client per account, and reading an answer with a
//! bounded body.

use std::time::{Duration, SystemTime};

use switchboard_core::ConfigError;

use crate::ProviderError;

/// The most of an answer's body that is read. Provider answers are a few KiB; a larger body is
/// not the provider's, and classification then falls back to the status.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// One account's client: connections are reused across sends, redirects never followed.
pub(crate) fn client(
    key_prefix: &str,
    connect_timeout: Duration,
) -> Result<reqwest::Client, ConfigError> {
    reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        // Provider APIs never redirect; following one would re-send the credentials and the
        // passcode to wherever it points.
        .redirect(reqwest::redirect::Policy::none())
        // Reuse connections, but drop idle ones before a load balancer would: a request
        // written on a connection the far end is closing fails as "possibly accepted".
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
    /// The raw `x-amzn-ErrorType` header (AWS's JSON protocols).
    pub(crate) amzn_error_type: Option<String>,
    /// At most [`MAX_BODY_BYTES`] of the body.
    pub(crate) body: Vec<u8>,
}

/// Sends `request` and reads the status, `Retry-After` and at most [`MAX_BODY_BYTES`] of the
/// body. Transport failures are classified for `provider_kind`.
pub(crate) async fn exchange(
    provider_kind: &'static str,
    request: reqwest::RequestBuilder,
) -> Result<RawAnswer, ProviderError> {
    let mut response = request
        .send()
        .await
        .map_err(|error| ProviderError::from_transport(provider_kind, &error))?;
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
            // A 2xx whose body broke off may still be an accepted message; an error status
            // is a refusal whether or not its body arrived.
            Err(error) if (200..300).contains(&status) => {
                return Err(ProviderError::from_transport(provider_kind, &error));
            }
            Err(_) => {
                body.clear();
                break;
            }
        }
    }
    Ok(RawAnswer { status, retry_after, amzn_error_type, body })
}

/// `Retry-After` as delay-seconds or an HTTP-date (RFC 9110 section 10.2.3). A date in the past
/// means "now".
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Checks an API root: an http(s) URL with a host, no credentials, query or fragment; returns it
/// without a trailing `/`.
pub(crate) fn check_base_url(key: &str, base_url: &str) -> Result<String, ConfigError> {
    let invalid = |reason: &str| ConfigError::invalid(key, reason);
    let url = reqwest::Url::parse(base_url).map_err(|_| invalid("must be a URL"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(invalid("must be an http or https URL with a host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("must not have a query or fragment"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("must not carry credentials"));
    }
    Ok(base_url.trim_end_matches('/').to_owned())
}
