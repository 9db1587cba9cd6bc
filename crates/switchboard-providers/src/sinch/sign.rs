//! Sinch's application signing, used both ways: on the call requests we make and on the
//! callbacks Sinch makes to us (developers.sinch.com, Voice "signed request" and "callback
//! signed request"; the SDK's `ApplicationSignedAuth`).
//!
//! ```text
//! StringToSign  = VERB \n Base64(MD5(body)) \n Content-Type \n "x-timestamp:" timestamp \n path
//! Authorization = "Application " key ":" Base64(HMAC-SHA256(Base64Decode(secret), StringToSign))
//! ```

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use md5::{Digest, Md5};

/// The string Sinch signs.
#[must_use]
pub(crate) fn string_to_sign(
    method: &str,
    body: &[u8],
    content_type: &str,
    timestamp: &str,
    path_and_query: &str,
) -> String {
    let body_md5 = STANDARD.encode(Md5::digest(body));
    format!("{method}\n{body_md5}\n{content_type}\nx-timestamp:{timestamp}\n{path_and_query}")
}

/// The base64 signature of `string_to_sign` with the base64 application `secret`; `None` when
/// the secret is not base64 (config validation refuses that).
#[must_use]
pub(crate) fn signature(secret_base64: &str, string_to_sign: &str) -> Option<String> {
    let key = STANDARD.decode(secret_base64.trim()).ok()?;
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).ok()?;
    mac.update(string_to_sign.as_bytes());
    Some(STANDARD.encode(mac.finalize().into_bytes()))
}

/// The current time as Sinch's `x-timestamp` (ISO 8601, UTC, whole seconds).
#[must_use]
pub(crate) fn timestamp_now() -> String {
    let now = time::OffsetDateTime::now_utc();
    let now = now.replace_nanosecond(0).unwrap_or(now);
    // Formatting a current UTC time as RFC 3339 cannot fail.
    now.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_sinchs_published_example() {
        let body = br#"{"event":"ace","callid":"822aa4b7-05b4-4d83-87c7-1f835ee0b6f6_257","timestamp":"2014-09-24T10:59:41Z","version":1}"#;
        let text = string_to_sign(
            "POST",
            body,
            "application/json",
            "2014-09-24T10:59:41Z",
            "/sinch/callback/ace",
        );
        assert!(text.contains("\nREWF+X220L4/Gw1spXOU7g==\n"), "{text}");
        assert_eq!(
            signature("BeIukql3pTKJ8RGL5zo0DA==", &text).as_deref(),
            Some("Tg6fMyo8mj9pYfWQ9ssbx3Tc1BNC87IEygAfLbJqZb4=")
        );
        assert_eq!(signature("not base64!", &text), None);
    }
}
