//! Signing keys and JWT minting for the authorization server emulator.
//!
//! The keys are fixed 2048-bit RSA test keys shipped in `testdata/` (generated once with
//! `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048`): generating RSA keys at test
//! time is slow in debug builds, and fixed keys make failures reproducible. They protect nothing.
//!
//! Minting is done by hand rather than with a JWT library so that tests can build exactly the
//! hostile tokens a verifier must refuse: `alg: none`, HMAC with a public key as the secret, a
//! header naming any `kid` or `jku`.

use std::fmt;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::rsa::PublicKeyComponents;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};

const FIXTURES: [&str; 3] = [
    include_str!("../../testdata/oauth-test-key-1.pem"),
    include_str!("../../testdata/oauth-test-key-2.pem"),
    include_str!("../../testdata/oauth-test-key-3.pem"),
];

/// An RSA signing key with its key id. Cheap to clone.
#[derive(Clone)]
pub struct SigningKey {
    kid: String,
    pair: Arc<RsaKeyPair>,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey").field("kid", &self.kid).finish_non_exhaustive()
    }
}

impl SigningKey {
    /// How many fixture keys there are.
    pub const N_FIXTURES: usize = FIXTURES.len();

    /// Fixture key `index` (0, 1 or 2) under key id `kid`.
    ///
    /// # Panics
    /// If `index` is out of range.
    #[must_use]
    pub fn fixture(index: usize, kid: impl Into<String>) -> SigningKey {
        let pem = FIXTURES[index];
        let body: String = pem.lines().filter(|line| !line.starts_with("-----")).collect();
        let der = STANDARD.decode(body).expect("fixture PEM is base64");
        let pair = RsaKeyPair::from_pkcs8(&der).expect("fixture is a PKCS#8 RSA key");
        SigningKey { kid: kid.into(), pair: Arc::new(pair) }
    }

    /// The key id published in the JWKS and put in minted tokens' headers.
    #[must_use]
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a JWK, as Okta publishes it.
    #[must_use]
    pub fn public_jwk(&self) -> serde_json::Value {
        let components = PublicKeyComponents::<Vec<u8>>::from(self.pair.public());
        serde_json::json!({
            "kty": "RSA",
            "alg": "RS256",
            "kid": self.kid,
            "use": "sig",
            "e": URL_SAFE_NO_PAD.encode(&components.e),
            "n": URL_SAFE_NO_PAD.encode(&components.n),
        })
    }

    /// The public key as PKCS#1 PEM: what a key-confusion attacker would use as an HMAC secret.
    #[must_use]
    pub fn public_key_pem(&self) -> String {
        let encoded = STANDARD.encode(self.pair.public().as_ref());
        let mut pem = String::from("-----BEGIN RSA PUBLIC KEY-----\n");
        for line in encoded.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
            pem.push('\n');
        }
        pem.push_str("-----END RSA PUBLIC KEY-----\n");
        pem
    }

    fn sign(&self, message: &[u8]) -> Vec<u8> {
        let mut signature = vec![0; self.pair.public().modulus_len()];
        self.pair
            .sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), message, &mut signature)
            .expect("RSA signing with a valid key does not fail");
        signature
    }
}

/// How a minted token is signed, whatever its header's `alg` says.
#[derive(Clone, Copy, Debug)]
pub enum Signer<'a> {
    /// RSASSA-PKCS1-v1_5 with SHA-256 (RS256).
    Rs256(&'a SigningKey),
    /// HMAC-SHA256 (HS256) with this secret.
    Hs256(&'a [u8]),
    /// An empty signature (`alg: none`).
    Unsigned,
}

/// `base64url(header).base64url(claims).base64url(signature)`, with `header` and `claims`
/// serialized as given: nothing is added or checked.
#[must_use]
pub fn sign_jwt(
    header: &serde_json::Value,
    claims: &serde_json::Value,
    signer: Signer<'_>,
) -> String {
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = match signer {
        Signer::Rs256(key) => key.sign(signing_input.as_bytes()),
        Signer::Hs256(secret) => {
            let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
            ring::hmac::sign(&key, signing_input.as_bytes()).as_ref().to_vec()
        }
        Signer::Unsigned => Vec::new(),
    };
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixture_keys_are_distinct_and_publish_their_kid() {
        let keys: Vec<_> =
            (0..SigningKey::N_FIXTURES).map(|i| SigningKey::fixture(i, format!("k{i}"))).collect();
        let moduli: std::collections::HashSet<_> =
            keys.iter().map(|key| key.public_jwk()["n"].as_str().unwrap().to_owned()).collect();
        assert_eq!(moduli.len(), SigningKey::N_FIXTURES);
        assert_eq!(keys[1].public_jwk()["kid"], "k1");
        assert_eq!(keys[0].public_jwk()["e"], "AQAB");
        assert!(
            keys[0].public_key_pem().starts_with("-----BEGIN RSA PUBLIC KEY-----\nMIIBCgKCAQEA")
        );
    }

    #[test]
    fn minted_rs256_tokens_verify_with_the_public_key() {
        let key = SigningKey::fixture(0, "k0");
        let token = sign_jwt(
            &serde_json::json!({"alg": "RS256", "kid": "k0"}),
            &serde_json::json!({"sub": "x"}),
            Signer::Rs256(&key),
        );
        let (input, signature) = token.rsplit_once('.').unwrap();
        let signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
        let public = ring::signature::UnparsedPublicKey::new(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            key.pair.public().as_ref(),
        );
        assert!(public.verify(input.as_bytes(), &signature).is_ok());
        let unsigned =
            sign_jwt(&serde_json::json!({"alg": "none"}), &serde_json::json!({}), Signer::Unsigned);
        assert!(unsigned.ends_with('.'));
    }
}
