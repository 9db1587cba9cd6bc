//! OAuth 2.0 mode: Okta fetches an access token from an Okta authorization server and sends it as
//! `Authorization: Bearer <JWT>`; we verify it before the body is read.
//!
//! The order is cheapest first, and nothing the token says is trusted before its signature is:
//! size and shape; the header's `alg`, which must be RS256 (RFC 8725 section 3.1: `none`, HMAC
//! and everything else are refused before any key is looked at, so "HS256 signed with the RSA
//! public key" cannot work); the key named by `kid`, from the issuer's JWKS only ([`super::jwks`]);
//! the signature; then `exp`/`nbf`/`iat` (with leeway: an `iat` in the future is refused, as
//! RFC 7519 section 4.1.6 makes it the token's age), exact `iss` and `aud`, the required scope
//! and, when configured, `cid`. Verification is done by `jsonwebtoken` with an allow-list of one
//! algorithm; the header is pre-read here only to choose the key and to refuse early.
//!
//! A reused `jti` is not refused: Okta reuses its access token until it expires.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;

use super::AuthFailure;
use super::jwks::{CachePolicy, HttpKeySource, JwksCache, KeyError};

/// Longest token accepted. Okta's access tokens are about 1 KiB.
pub(crate) const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Validated OAuth settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct OAuthSettings {
    /// Exact `iss`.
    pub(crate) issuer: String,
    /// Exact `aud`.
    pub(crate) audience: String,
    /// Required in `scp` (or `scope`).
    pub(crate) scope: String,
    /// Required `cid`, when set.
    pub(crate) client_id: Option<String>,
    /// Keys from here instead of the issuer's metadata.
    pub(crate) jwks_uri: Option<String>,
    /// Clock skew allowed on `exp` and `nbf`.
    pub(crate) leeway: Duration,
    /// Key cache policy.
    pub(crate) policy: CachePolicy,
}

/// Verifies bearer tokens against one issuer.
#[derive(Debug)]
pub(crate) struct OAuthVerifier {
    settings: OAuthSettings,
    validation: Validation,
    keys: Arc<JwksCache<HttpKeySource>>,
}

impl OAuthVerifier {
    /// Builds the verifier and its (empty) key cache.
    pub(crate) fn try_new(settings: OAuthSettings) -> Result<OAuthVerifier, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(settings.policy.timeout)
            // A redirect would take the key fetch to a host nobody configured.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("switchboard/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let source = HttpKeySource::new(client, settings.issuer.clone(), settings.jwks_uri.clone());
        let keys = Arc::new(JwksCache::new(source, settings.policy));
        Ok(OAuthVerifier::with_keys(settings, keys))
    }

    fn with_keys(settings: OAuthSettings, keys: Arc<JwksCache<HttpKeySource>>) -> OAuthVerifier {
        let mut validation = Validation::new(Algorithm::RS256);
        validation.leeway = settings.leeway.as_secs();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_issuer(&[&settings.issuer]);
        validation.set_audience(&[&settings.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        OAuthVerifier { settings, validation, keys }
    }

    #[cfg(test)]
    pub(crate) fn settings(&self) -> &OAuthSettings {
        &self.settings
    }

    /// This verifier with `previous`'s key cache when both fetch the same keys the same way,
    /// so a reload neither refetches nor loses the last good keys during an Okta outage.
    pub(crate) fn keeping_keys_of(&self, previous: &OAuthVerifier) -> Option<OAuthVerifier> {
        let same_source = previous.keys.source().origin() == self.keys.source().origin()
            && previous.keys.policy() == self.keys.policy();
        same_source
            .then(|| OAuthVerifier::with_keys(self.settings.clone(), Arc::clone(&previous.keys)))
    }

    /// Fetches the keys once if none were fetched yet, so Okta's first call does not wait.
    pub(crate) async fn warm_up(&self) {
        self.keys.warm_up().await;
    }

    /// Checks the request's bearer token.
    pub(crate) async fn verify(&self, headers: &HeaderMap) -> Result<(), AuthFailure> {
        let token = bearer_token(headers)?;
        let kid = key_id(token)?;
        let key = self.keys.key_for(&kid).await.map_err(|error| match error {
            KeyError::Unknown => AuthFailure::UnknownKey,
            KeyError::Unavailable => AuthFailure::KeysUnavailable,
        })?;
        let claims = jsonwebtoken::decode::<AccessClaims>(token, &key, &self.validation)
            .map_err(|error| classify(error.kind()))?
            .claims;
        if let Some(issued_at) = claims.iat {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |since| since.as_secs());
            if issued_at > now.saturating_add(self.settings.leeway.as_secs()) {
                return Err(AuthFailure::IssuedInFuture);
            }
        }
        if !claims.has_scope(&self.settings.scope) {
            return Err(AuthFailure::MissingScope);
        }
        if let Some(client_id) = &self.settings.client_id
            && claims.cid.as_deref() != Some(client_id.as_str())
        {
            return Err(AuthFailure::WrongClient);
        }
        Ok(())
    }
}

/// The token of the one `Authorization: Bearer` header, after size and shape checks.
fn bearer_token(headers: &HeaderMap) -> Result<&str, AuthFailure> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let value = values.next().ok_or(AuthFailure::Missing)?;
    if values.next().is_some() {
        return Err(AuthFailure::MalformedToken);
    }
    if value.len() > "Bearer ".len() + MAX_TOKEN_BYTES {
        return Err(AuthFailure::TokenTooLarge);
    }
    let value = value.to_str().map_err(|_| AuthFailure::MalformedToken)?;
    let (scheme, token) = value.split_once(' ').ok_or(AuthFailure::MalformedToken)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthFailure::MalformedToken);
    }
    let token = token.trim_matches(' ');
    let segments: Vec<&str> = token.split('.').collect();
    let is_base64url =
        |s: &str| s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    // An empty signature is let through so that `alg: none` is refused as what it is.
    let is_jws = segments.len() == 3
        && !segments[0].is_empty()
        && !segments[1].is_empty()
        && segments.iter().all(|s| is_base64url(s));
    if is_jws { Ok(token) } else { Err(AuthFailure::MalformedToken) }
}

/// The `kid` of a token whose header says RS256. Reads only `alg`, `kid` and `crit`: key hints
/// (`jku`, `x5u`, `jwk`, `x5c`) are ignored, never followed.
fn key_id(token: &str) -> Result<String, AuthFailure> {
    #[derive(Deserialize)]
    struct JoseHeader {
        alg: String,
        kid: Option<String>,
        crit: Option<serde_json::Value>,
    }
    let encoded = token.split('.').next().unwrap_or("");
    let bytes = URL_SAFE_NO_PAD.decode(encoded).map_err(|_| AuthFailure::MalformedToken)?;
    let jose: JoseHeader =
        serde_json::from_slice(&bytes).map_err(|_| AuthFailure::MalformedToken)?;
    if jose.alg != "RS256" {
        return Err(AuthFailure::AlgorithmNotAllowed);
    }
    // RFC 7515 section 4.1.11: extensions we do not understand must not be ignored.
    if jose.crit.is_some() {
        return Err(AuthFailure::MalformedToken);
    }
    jose.kid.ok_or(AuthFailure::UnknownKey)
}

fn classify(kind: &ErrorKind) -> AuthFailure {
    match kind {
        ErrorKind::InvalidSignature => AuthFailure::BadSignature,
        ErrorKind::ExpiredSignature => AuthFailure::Expired,
        ErrorKind::ImmatureSignature => AuthFailure::NotYetValid,
        ErrorKind::InvalidIssuer => AuthFailure::WrongIssuer,
        ErrorKind::InvalidAudience => AuthFailure::WrongAudience,
        ErrorKind::InvalidAlgorithm => AuthFailure::AlgorithmNotAllowed,
        ErrorKind::MissingRequiredClaim(_) => AuthFailure::MissingClaim,
        _ => AuthFailure::MalformedToken,
    }
}

/// The claims checked here; `jsonwebtoken` checks `exp`, `nbf`, `iss` and `aud`.
#[derive(Deserialize)]
struct AccessClaims {
    /// When the token was minted (seconds since the epoch).
    #[serde(default)]
    iat: Option<u64>,
    /// Okta's scopes: an array (also accepted as a space-separated string).
    #[serde(default)]
    scp: Option<Scopes>,
    /// RFC 9068's scopes: a space-separated string.
    #[serde(default)]
    scope: Option<String>,
    /// Okta's client id.
    #[serde(default)]
    cid: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Scopes {
    List(Vec<String>),
    Text(String),
}

impl AccessClaims {
    fn has_scope(&self, wanted: &str) -> bool {
        let mut granted: HashSet<&str> = HashSet::new();
        match &self.scp {
            Some(Scopes::List(list)) => granted.extend(list.iter().map(String::as_str)),
            Some(Scopes::Text(text)) => granted.extend(text.split(' ')),
            None => {}
        }
        if let Some(text) = &self.scope {
            granted.extend(text.split(' '));
        }
        granted.contains(wanted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(json: &str) -> String {
        URL_SAFE_NO_PAD.encode(json)
    }

    fn with_authorization(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, value.parse().unwrap());
        headers
    }

    #[test]
    fn bearer_token_checks_scheme_shape_and_size() {
        let token = format!("{}.{}.c2ln", encode(r#"{"alg":"RS256"}"#), encode("{}"));
        assert_eq!(bearer_token(&with_authorization(&format!("Bearer {token}"))), Ok(&*token));
        assert_eq!(bearer_token(&with_authorization(&format!("bearer {token}"))), Ok(&*token));
        assert_eq!(bearer_token(&HeaderMap::new()), Err(AuthFailure::Missing));
        for bad in ["Bearer", "Bearer ", "Basic abc", "Bearer a.b", "Bearer a.b.c.d", "Bearer .b.c"]
        {
            assert_eq!(
                bearer_token(&with_authorization(bad)),
                Err(AuthFailure::MalformedToken),
                "{bad}"
            );
        }
        assert_eq!(
            bearer_token(&with_authorization("Bearer a+b.c/d.e")),
            Err(AuthFailure::MalformedToken)
        );
        let huge = format!("Bearer {}.{}.sig", "a".repeat(MAX_TOKEN_BYTES), encode("{}"));
        assert_eq!(bearer_token(&with_authorization(&huge)), Err(AuthFailure::TokenTooLarge));
    }

    #[test]
    fn only_rs256_headers_with_a_kid_pass() {
        let token = |header: &str| format!("{}.e30.", encode(header));
        assert_eq!(key_id(&token(r#"{"alg":"RS256","kid":"k1"}"#)).as_deref(), Ok("k1"));
        for alg in ["none", "None", "HS256", "RS384", "PS256", "ES256", "rs256"] {
            let header = format!(r#"{{"alg":"{alg}","kid":"k1"}}"#);
            assert_eq!(key_id(&token(&header)), Err(AuthFailure::AlgorithmNotAllowed), "{alg}");
        }
        assert_eq!(key_id(&token(r#"{"alg":"RS256"}"#)), Err(AuthFailure::UnknownKey));
        assert_eq!(
            key_id(&token(r#"{"alg":"RS256","kid":"k1","crit":["exp"]}"#)),
            Err(AuthFailure::MalformedToken)
        );
        assert_eq!(key_id(&token("not json")), Err(AuthFailure::MalformedToken));
    }

    #[test]
    fn scope_is_found_in_scp_array_scp_string_or_scope_string() {
        let claims = |json: &str| serde_json::from_str::<AccessClaims>(json).unwrap();
        assert!(claims(r#"{"scp":["openid","okta.hook"]}"#).has_scope("okta.hook"));
        assert!(claims(r#"{"scp":"openid okta.hook"}"#).has_scope("okta.hook"));
        assert!(claims(r#"{"scope":"okta.hook other"}"#).has_scope("okta.hook"));
        assert!(!claims(r#"{"scp":["okta.hook.read"]}"#).has_scope("okta.hook"));
        assert!(!claims(r#"{"scope":"okta.hooks"}"#).has_scope("okta.hook"));
        assert!(!claims(r#"{}"#).has_scope("okta.hook"));
    }
}
