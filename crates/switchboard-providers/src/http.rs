//! The wire, shared by every adapter: one pooled client per account that never follows
//! redirects, one exchange with a bounded read of the answer, and the timeouts' settings.

use std::time::Duration;

use switchboard_core::ConfigError;

use crate::ProviderError;

/// The most of an answer's body that is read. Provider answers are a few KiB; a larger body is
/// not the provider's, and classification then falls back to the status.
pub(crate) const MAX_BODY_BYTES: usize = 64 * 1024;

/// Longest per-request timeout accepted: Okta gives the whole hook a few seconds.
pub(crate) const MAX_TIMEOUT_MS: u64 = 60_000;

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
    /// An answer with `status` and `body` and no headers (classifier tests build these).
    #[cfg(test)]
    pub(crate) fn new(status: u16, body: impl Into<Vec<u8>>) -> RawAnswer {
        RawAnswer { status, retry_after: None, amzn_error_type: None, body: body.into() }
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_name_their_key() {
        assert!(check_timeouts("p", 1200, 300).is_ok());
        let error = check_timeouts("p", 0, 0).unwrap_err().to_string();
        assert!(error.starts_with("p.timeout_ms: "), "{error}");
        let error = check_timeouts("p", 100, 200).unwrap_err().to_string();
        assert!(error.starts_with("p.connect_timeout_ms: "), "{error}");
    }
}
