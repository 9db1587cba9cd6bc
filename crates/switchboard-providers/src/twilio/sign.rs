//! `X-Twilio-Signature`: how Twilio signs the requests it makes to us (research notes 1.3,
//! from twilio-python's `request_validator.py`).
//!
//! The signed string is the full URL Twilio called, followed by every form parameter as
//! `name + value`, names in sorted order and, for a repeated name, values in sorted order. The
//! signature is `base64(HMAC-SHA1(auth_token, signed_string))`.
//!
//! Why try two URLs: Twilio's own validators accept the URL with and without the scheme's
//! default port (`:443`, `:80`), because proxies and load balancers add or strip it on the way
//! and the URL we reconstruct may differ from the one Twilio signed in exactly that way.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;

use crate::secret::constant_time_eq;

/// The signature Twilio would send for a request to `url` with form `params`.
#[must_use]
pub(crate) fn sign(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<(&str, &str)> =
        params.iter().map(|(name, value)| (name.as_str(), value.as_str())).collect();
    sorted.sort_unstable();
    sorted.dedup();
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = Hmac::<Sha1>::new_from_slice(auth_token.as_bytes())
        .unwrap_or_else(|_| unreachable!("hmac takes any key length"));
    mac.update(url.as_bytes());
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Whether `signature` is Twilio's for `url` (as given, or with its default port added or
/// removed) and `params`. Compared in constant time.
#[must_use]
pub(crate) fn is_valid(
    auth_token: &str,
    url: &str,
    params: &[(String, String)],
    signature: &str,
) -> bool {
    let candidates = [Some(url.to_owned()), with_default_port_toggled(url)];
    // Both candidates are always computed, so timing does not tell which one matched.
    candidates.iter().flatten().fold(false, |matched, candidate| {
        let expected = sign(auth_token, candidate, params);
        matched | constant_time_eq(expected.as_bytes(), signature.trim().as_bytes())
    })
}

/// `url` with `:443`/`:80` removed if it carries its scheme's default port, or added if it has
/// no port. `None` for a URL with another port or one that cannot be split.
fn with_default_port_toggled(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "https" => "443",
        "http" => "80",
        _ => return None,
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    // The port follows the last `:` after any userinfo and outside an IPv6 literal's brackets.
    let host_start = authority.rfind('@').map_or(0, |at| at + 1);
    let host_port = &authority[host_start..];
    let port_colon = host_port.rfind(':').filter(|&colon| !host_port[colon..].contains(']'));
    match port_colon {
        Some(colon) if &host_port[colon + 1..] == default_port => {
            Some(format!("{scheme}://{}{}{tail}", &authority[..host_start], &host_port[..colon]))
        }
        Some(_) => None,
        None => Some(format!("{scheme}://{authority}:{default_port}{tail}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())).collect()
    }

    /// twilio-python `tests/unit/test_request_validator.py`.
    fn sdk_vector() -> (Vec<(String, String)>, &'static str) {
        let params = params(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+14158675309"),
            ("Digits", "1234"),
            ("From", "+14158675309"),
            ("To", "+18005551212"),
        ]);
        (params, "RSOYDt4T1cUTdK1PDd93/VVr8B8=")
    }

    #[test]
    fn matches_the_sdk_test_vector() {
        let (params, expected) = sdk_vector();
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        assert_eq!(sign("12345", url, &params), expected);
        assert!(is_valid("12345", url, &params, expected));
        // Parameter order on the wire does not matter.
        let mut reversed = params.clone();
        reversed.reverse();
        assert!(is_valid("12345", url, &reversed, expected));
    }

    #[test]
    fn accepts_the_url_with_or_without_the_default_port() {
        let (params, expected) = sdk_vector();
        for url in [
            "https://mycompany.com:443/myapp.php?foo=1&bar=2",
            "https://mycompany.com/myapp.php?foo=1&bar=2",
        ] {
            assert!(is_valid("12345", url, &params, expected), "{url}");
        }
        let signed_with_port =
            sign("12345", "https://mycompany.com:443/myapp.php?foo=1&bar=2", &params);
        assert!(is_valid(
            "12345",
            "https://mycompany.com/myapp.php?foo=1&bar=2",
            &params,
            &signed_with_port
        ));
        assert!(!is_valid(
            "12345",
            "https://mycompany.com:8443/myapp.php?foo=1&bar=2",
            &params,
            expected
        ));
    }

    #[test]
    fn refuses_any_change() {
        let (params, expected) = sdk_vector();
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        assert!(!is_valid("54321", url, &params, expected), "another token");
        assert!(!is_valid("12345", "https://mycompany.com/myapp.php?foo=1", &params, expected));
        let mut tampered = params.clone();
        tampered[2].1 = "4321".into();
        assert!(!is_valid("12345", url, &tampered, expected));
        assert!(!is_valid("12345", url, &params, ""));
        assert!(!is_valid("12345", url, &params, "RSOYDt4T1cUTdK1PDd93/VVr8B8"));
    }

    #[test]
    fn repeated_names_sign_every_value_in_order() {
        let one_order =
            params(&[("StatusCallbackEvent", "answered"), ("StatusCallbackEvent", "completed")]);
        let other_order =
            params(&[("StatusCallbackEvent", "completed"), ("StatusCallbackEvent", "answered")]);
        assert_eq!(sign("t", "https://x/", &one_order), sign("t", "https://x/", &other_order));
        assert_ne!(sign("t", "https://x/", &one_order), sign("t", "https://x/", &one_order[..1]));
    }

    #[test]
    fn toggles_default_ports_only() {
        for (url, toggled) in [
            ("https://a.example/x?y=1", Some("https://a.example:443/x?y=1")),
            ("https://a.example:443/x", Some("https://a.example/x")),
            ("http://a.example", Some("http://a.example:80")),
            ("http://u:p@a.example:80/x", Some("http://u:p@a.example/x")),
            ("http://[::1]/cb", Some("http://[::1]:80/cb")),
            ("http://[::1]:80/cb", Some("http://[::1]/cb")),
            ("http://127.0.0.1:8080/cb", None),
            ("ftp://a.example/", None),
            ("not a url", None),
        ] {
            assert_eq!(with_default_port_toggled(url).as_deref(), toggled, "{url}");
        }
    }
}
