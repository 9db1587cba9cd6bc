//! Authentication of Okta's calls, checked before the body is read.
//!
//! Header-secret mode: Okta sends a fixed header (`Authorization` by default) with a fixed value.
//! We compare SHA-256 digests of both sides with `subtle`'s constant-time equality: comparing the
//! raw values would leak the secret's length (slice `ct_eq` returns early on a length mismatch),
//! and a plain `==` leaks the length of the matching prefix. Up to two secrets are accepted at
//! once so an operator can rotate without downtime.

use axum::http::{HeaderMap, HeaderName};
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

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

/// Why a request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AuthFailure {
    Missing,
    Wrong,
}

impl AuthFailure {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            AuthFailure::Missing => "missing_credentials",
            AuthFailure::Wrong => "wrong_credentials",
        }
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
