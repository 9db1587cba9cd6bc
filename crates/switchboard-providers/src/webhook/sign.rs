//! `sha256=<hex HMAC-SHA256(secret, body)>`: how switchboard signs the requests it sends to the
//! gateway, and how the gateway signs the receipts it sends back.

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

use crate::secret::constant_time_eq;

/// `sha256=<hex HMAC-SHA256(secret, body)>`.
pub(crate) fn signature(secret: &SecretString, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes())
        .unwrap_or_else(|_| unreachable!("hmac takes any key length"));
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

pub(crate) fn is_signed(secret: &SecretString, body: &[u8], header: Option<&str>) -> bool {
    header.is_some_and(|header| {
        constant_time_eq(signature(secret, body).as_bytes(), header.trim().as_bytes())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hex_hmac_sha256_of_the_body() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let secret = SecretString::from("Jefe");
        assert_eq!(
            signature(&secret, b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let signed = signature(&secret, b"{}");
        assert!(is_signed(&secret, b"{}", Some(&signed)));
        assert!(!is_signed(&secret, b"{ }", Some(&signed)));
        assert!(!is_signed(&SecretString::from("other"), b"{}", Some(&signed)));
        assert!(!is_signed(&secret, b"{}", None));
    }
}
