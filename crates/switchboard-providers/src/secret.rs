//! Secrets and nonces: the constant-time comparison every signature or token check uses, and
//! random ids for signed tokens.

/// Compares two secrets in time independent of where they differ.
#[must_use]
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// A random (version 4) UUID in its text form, for JWT ids.
#[must_use]
pub(crate) fn random_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Checks a secret token carried in a callback's path (for providers that do not sign their
/// callbacks): no token configured, or a different one, is a bad signature.
pub(crate) fn check_path_token(
    presented: &str,
    expected: Option<&secrecy::SecretString>,
) -> Result<(), crate::CallbackError> {
    use secrecy::ExposeSecret;
    let is_authentic = expected.is_some_and(|expected| {
        constant_time_eq(presented.as_bytes(), expected.expose_secret().as_bytes())
    });
    if is_authentic { Ok(()) } else { Err(crate::CallbackError::BadSignature) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_version_4() {
        let uuid = random_uuid();
        assert_eq!(uuid.len(), 36);
        assert_eq!(&uuid[14..15], "4");
        assert!(matches!(&uuid[19..20], "8" | "9" | "a" | "b"), "{uuid}");
        assert_ne!(uuid, random_uuid());
    }

    #[test]
    fn constant_time_eq_compares_whole_values() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
