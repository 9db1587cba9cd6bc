//! Authentication of Okta's calls, checked before the body is read: a forged call costs a header
//! compare (header mode) or a signature check (OAuth 2.0 mode, [`oauth`]), never a provider call.
//!
//! Header-secret mode: Okta sends a fixed header (`Authorization` by default) with a fixed value.
//! We compare SHA-256 digests of both sides with `subtle`'s constant-time equality: comparing the
//! raw values would leak the secret's length (slice `ct_eq` returns early on a length mismatch),
//! and a plain `==` leaks the length of the matching prefix. Up to two secrets are accepted at
//! once so an operator can rotate without downtime.

mod jwks;
pub(crate) mod oauth;

use std::sync::Arc;

use axum::http::{HeaderMap, HeaderName};
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

pub(crate) use jwks::{CachePolicy, is_loopback_url};
pub(crate) use oauth::{OAuthSettings, OAuthVerifier};

/// How Okta's calls are authenticated: `[okta.auth] mode`.
#[derive(Clone, Debug)]
pub(crate) enum OktaAuth {
    /// A fixed header value.
    Header(HeaderSecretAuth),
    /// A bearer JWT from an Okta authorization server.
    OAuth2(Arc<OAuthVerifier>),
}

impl OktaAuth {
    /// Checks the request's headers.
    pub(crate) async fn verify(&self, headers: &HeaderMap) -> Result<(), AuthFailure> {
        match self {
            OktaAuth::Header(auth) => auth.verify(headers),
            OktaAuth::OAuth2(verifier) => verifier.verify(headers).await,
        }
    }

    /// The header the credentials arrive in, for logs.
    pub(crate) fn header(&self) -> &str {
        match self {
            OktaAuth::Header(auth) => auth.header().as_str(),
            OktaAuth::OAuth2(_) => "authorization",
        }
    }

    /// `header` or `oauth2`, for logs.
    pub(crate) fn mode(&self) -> &'static str {
        match self {
            OktaAuth::Header(_) => "header",
            OktaAuth::OAuth2(_) => "oauth2",
        }
    }

    /// Carries the key cache over from the configuration being replaced, when it fetches the
    /// same keys the same way.
    #[must_use]
    pub(crate) fn keeping_keys_of(self, previous: &OktaAuth) -> OktaAuth {
        match (&self, previous) {
            (OktaAuth::OAuth2(new), OktaAuth::OAuth2(old)) => match new.keeping_keys_of(old) {
                Some(kept) => OktaAuth::OAuth2(Arc::new(kept)),
                None => self,
            },
            _ => self,
        }
    }

    /// Fetches signing keys ahead of the first call (OAuth mode); nothing in header mode.
    pub(crate) async fn warm_up(&self) {
        if let OktaAuth::OAuth2(verifier) = self {
            verifier.warm_up().await;
        }
    }
}

/// Verifies the header secret. Holds only digests of the accepted secrets.
#[derive(Clone)]
pub(crate) struct HeaderSecretAuth {
    header: HeaderName,
    accepted: Vec<[u8; 32]>,
}

impl std::fmt::Debug for HeaderSecretAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeaderSecretAuth")
            .field("header", &self.header)
            .field("secrets", &self.accepted.len())
            .finish()
    }
}

/// Why a request was refused; `as_str` is the `reason` label, so the set stays bounded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AuthFailure {
    /// No credentials header.
    Missing,
    /// Header mode: the value matches no secret.
    Wrong,
    /// Not `Bearer` and a three-part JWS, or unreadable.
    MalformedToken,
    /// Longer than [`oauth::MAX_TOKEN_BYTES`].
    TokenTooLarge,
    /// `alg` other than RS256 (`none`, HMAC, ...).
    AlgorithmNotAllowed,
    /// No key with the token's `kid` (or no `kid`).
    UnknownKey,
    /// No key was ever fetched: the JWKS endpoint has not answered.
    KeysUnavailable,
    /// The signature does not verify.
    BadSignature,
    /// `exp` passed (beyond the leeway).
    Expired,
    /// `nbf` not reached (beyond the leeway).
    NotYetValid,
    /// `iat` is in the future (beyond the leeway): minted by a clock that is off, or forged
    /// to outlive its `exp` window.
    IssuedInFuture,
    /// `iss` differs.
    WrongIssuer,
    /// `aud` differs.
    WrongAudience,
    /// `exp`, `iss` or `aud` missing.
    MissingClaim,
    /// The required scope is not granted.
    MissingScope,
    /// `cid` differs from the configured client id.
    WrongClient,
}

impl AuthFailure {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            AuthFailure::Missing => "missing_credentials",
            AuthFailure::Wrong => "wrong_credentials",
            AuthFailure::MalformedToken => "malformed_token",
            AuthFailure::TokenTooLarge => "token_too_large",
            AuthFailure::AlgorithmNotAllowed => "algorithm_not_allowed",
            AuthFailure::UnknownKey => "unknown_key",
            AuthFailure::KeysUnavailable => "keys_unavailable",
            AuthFailure::BadSignature => "bad_signature",
            AuthFailure::Expired => "token_expired",
            AuthFailure::NotYetValid => "token_not_yet_valid",
            AuthFailure::IssuedInFuture => "token_issued_in_future",
            AuthFailure::WrongIssuer => "wrong_issuer",
            AuthFailure::WrongAudience => "wrong_audience",
            AuthFailure::MissingClaim => "missing_claim",
            AuthFailure::MissingScope => "missing_scope",
            AuthFailure::WrongClient => "wrong_client",
        }
    }

    /// Our side cannot check tokens at all (an operator problem, not a forged call).
    pub(crate) fn is_ours(self) -> bool {
        self == AuthFailure::KeysUnavailable
    }
}

impl HeaderSecretAuth {
    /// `secrets` must hold one or two non-empty values (checked by config validation).
    pub(crate) fn new(header: HeaderName, secrets: &[&str]) -> HeaderSecretAuth {
        let accepted = secrets.iter().map(|secret| digest(secret.as_bytes())).collect();
        HeaderSecretAuth { header, accepted }
    }

    /// The header Okta sends the secret in.
    pub(crate) fn header(&self) -> &HeaderName {
        &self.header
    }

    /// Checks the request's headers. Every accepted secret is compared, whatever the result of
    /// the others, so timing does not reveal which one matched.
    pub(crate) fn verify(&self, headers: &HeaderMap) -> Result<(), AuthFailure> {
        let mut values = headers.get_all(&self.header).iter();
        let value = values.next().ok_or(AuthFailure::Missing)?;
        if values.next().is_some() {
            // Two copies of the header: refuse rather than guess which one a proxy meant.
            return Err(AuthFailure::Wrong);
        }
        let presented = digest(value.as_bytes());
        let matched = self
            .accepted
            .iter()
            .fold(Choice::from(0), |found, secret| found | secret.ct_eq(&presented));
        if bool::from(matched) { Ok(()) } else { Err(AuthFailure::Wrong) }
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> HeaderSecretAuth {
        HeaderSecretAuth::new(HeaderName::from_static("authorization"), &["Basic old", "Basic new"])
    }

    fn headers(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append("authorization", value.parse().unwrap());
        }
        headers
    }

    #[test]
    fn accepts_either_secret_during_rotation() {
        assert_eq!(auth().verify(&headers(&["Basic old"])), Ok(()));
        assert_eq!(auth().verify(&headers(&["Basic new"])), Ok(()));
    }

    #[test]
    fn refuses_missing_wrong_prefix_and_duplicate_headers() {
        assert_eq!(auth().verify(&headers(&[])), Err(AuthFailure::Missing));
        assert_eq!(auth().verify(&headers(&["Basic ol"])), Err(AuthFailure::Wrong));
        assert_eq!(auth().verify(&headers(&["Basic old "])), Err(AuthFailure::Wrong));
        assert_eq!(auth().verify(&headers(&["Basic old", "Basic old"])), Err(AuthFailure::Wrong));
    }
}
