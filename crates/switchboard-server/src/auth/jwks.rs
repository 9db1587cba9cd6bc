//! The issuer's signing keys: discovered, fetched, cached and refreshed.
//!
//! Why not "fetch the JWKS whenever a token names a `kid` we do not know": the `kid` is chosen by
//! whoever sends the token, so that rule lets anyone on the internet make us call Okta once per
//! request, and makes every such request wait on that call (T5). The rules instead:
//!
//! - **One fetch at a time.** Requests that need new keys queue behind the fetch already running
//!   and use its result (single flight); a fetch that finished while a request waited counts as
//!   that request's fetch. A fetch runs in its own task, so the request that started it going
//!   away does not cancel it for the others.
//! - **An unknown `kid` refreshes at most once per cooldown.** Inside the cooldown such tokens
//!   are refused without a fetch. Okta publishes a new key before signing with it, so a real
//!   rotation needs one refresh at most.
//! - **Routine refresh by max-age.** Once the keys are older than the answer's
//!   `Cache-Control: max-age` (clamped), the next request starts a refresh in the background and
//!   is served from the cached keys meanwhile; so a key Okta withdraws stops working in time.
//! - **Stale beats nothing.** A failed fetch, or one answering no usable key, keeps the last good
//!   keys: an Okta blip never fails a valid token (F23).
//! - **Only configured URLs.** The keys come from the configured `jwks_uri`, or the one named by
//!   the configured issuer's metadata. Header hints (`jku`, `x5u`, `jwk`, `x5c`) are never read.
//!
//! Times are `tokio::time::Instant`, so paused-clock tests drive the cooldown and max-age.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use jsonwebtoken::DecodingKey;
use serde::Deserialize;
use tokio::time::Instant;

/// Largest metadata or JWKS answer read. Okta's JWKS is about 1 KiB per key.
const MAX_BODY_BYTES: usize = 256 * 1024;
/// Freshness assumed when the JWKS answer carries no `max-age`.
const DEFAULT_MAX_AGE: Duration = Duration::from_secs(3600);
/// Longest freshness believed, whatever `max-age` says.
const MAX_MAX_AGE: Duration = Duration::from_secs(24 * 3600);
/// Retry pause while no key has ever been fetched (capped by the cooldown): every token is
/// refused until then, so waiting a whole cooldown would be a self-inflicted outage.
const COLD_RETRY: Duration = Duration::from_secs(5);

/// Where keys come from. The HTTP source in production, a scripted one in unit tests.
pub(crate) trait KeySource: Send + Sync + 'static {
    /// Fetches the current key set.
    fn fetch(&self) -> impl Future<Output = Result<FetchedKeys, FetchError>> + Send;
}

/// A fetched key set, RS256 keys by `kid`.
#[derive(Clone)]
pub(crate) struct FetchedKeys {
    pub(crate) keys: HashMap<String, DecodingKey>,
    /// `Cache-Control: max-age` of the answer.
    pub(crate) max_age: Option<Duration>,
}

/// Why a fetch failed. Never carries a token; URLs are configuration, not secrets.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FetchError {
    #[error("{url}: {reason}")]
    Http { url: String, reason: String },
    #[error("{url}: status {status}")]
    Status { url: String, status: u16 },
    #[error("{url}: no usable RS256 signing key in the key set")]
    NoUsableKey { url: String },
    #[error("issuer metadata: {0}")]
    Metadata(String),
    #[error("timed out")]
    Timeout,
}

/// Why no key was found for a `kid`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyError {
    /// Keys are known, but not this one.
    Unknown,
    /// No key was ever fetched (the JWKS endpoint has not answered yet).
    Unavailable,
}

/// Cooldown and timeout; part of what decides whether a reload may keep a cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CachePolicy {
    /// At most one unknown-`kid` refresh (and one routine retry) per cooldown.
    pub(crate) cooldown: Duration,
    /// Bound on one whole fetch (discovery included).
    pub(crate) timeout: Duration,
}

/// What started a fetch, for the log line.
#[derive(Clone, Copy, Debug)]
enum Trigger {
    Cold,
    UnknownKid,
    Expired,
}

impl Trigger {
    fn as_str(self) -> &'static str {
        match self {
            Trigger::Cold => "cold",
            Trigger::UnknownKid => "unknown_kid",
            Trigger::Expired => "max_age",
        }
    }
}

/// The cached keys of one issuer.
pub(crate) struct JwksCache<S> {
    source: S,
    policy: CachePolicy,
    /// A std mutex: sections copy a few fields and never span an `.await`.
    state: Mutex<CacheState>,
    /// Held for the duration of a fetch: the single flight.
    flight: Arc<tokio::sync::Mutex<()>>,
}

impl<S> std::fmt::Debug for JwksCache<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.lock();
        f.debug_struct("JwksCache")
            .field("policy", &self.policy)
            .field("n_keys", &state.keys.as_ref().map(|keys| keys.len()))
            .field("generation", &state.generation)
            .finish()
    }
}

struct CacheState {
    keys: Option<Arc<HashMap<String, DecodingKey>>>,
    fresh_until: Instant,
    /// Bumped when a fetch ends, successful or not.
    generation: u64,
    last_attempt: Option<Instant>,
    last_unknown_kid_refresh: Option<Instant>,
}

impl CacheState {
    fn lookup(&self, kid: &str) -> Result<DecodingKey, KeyError> {
        let keys = self.keys.as_ref().ok_or(KeyError::Unavailable)?;
        keys.get(kid).cloned().ok_or(KeyError::Unknown)
    }
}

fn is_older_than(at: Option<Instant>, now: Instant, age: Duration) -> bool {
    at.is_none_or(|at| now.saturating_duration_since(at) >= age)
}

impl<S: KeySource> JwksCache<S> {
    pub(crate) fn new(source: S, policy: CachePolicy) -> JwksCache<S> {
        JwksCache {
            source,
            policy,
            state: Mutex::new(CacheState {
                keys: None,
                fresh_until: Instant::now(),
                generation: 0,
                last_attempt: None,
                last_unknown_kid_refresh: None,
            }),
            flight: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    pub(crate) fn policy(&self) -> CachePolicy {
        self.policy
    }

    pub(crate) fn source(&self) -> &S {
        &self.source
    }

    /// The key for `kid`, fetching at most once under the rules in the module doc.
    pub(crate) async fn key_for(self: &Arc<Self>, kid: &str) -> Result<DecodingKey, KeyError> {
        let seen = {
            let mut state = self.lock();
            if let Ok(key) = state.lookup(kid) {
                self.refresh_if_expired(&mut state);
                return Ok(key);
            }
            state.generation
        };
        let flight = Arc::clone(&self.flight).lock_owned().await;
        let trigger = {
            let mut state = self.lock();
            if state.generation != seen {
                // A fetch ended while this request waited: its answer is the one we would get.
                return state.lookup(kid);
            }
            let now = Instant::now();
            let trigger = if state.keys.is_none() {
                let retry = COLD_RETRY.min(self.policy.cooldown);
                if !is_older_than(state.last_attempt, now, retry) {
                    return Err(KeyError::Unavailable);
                }
                Trigger::Cold
            } else {
                if !is_older_than(state.last_unknown_kid_refresh, now, self.policy.cooldown) {
                    return Err(KeyError::Unknown);
                }
                state.last_unknown_kid_refresh = Some(now);
                Trigger::UnknownKid
            };
            state.last_attempt = Some(now);
            trigger
        };
        // The fetch runs in a task of its own, holding the flight: a caller that goes away
        // (Okta hung up, or a forger disconnected on purpose) must not cancel a fetch that has
        // used up the cooldown and that other requests are waiting for.
        let cache = Arc::clone(self);
        let fetch = tokio::spawn(async move {
            let _flight = flight;
            cache.fetch(trigger).await;
        });
        if let Err(error) = fetch.await {
            tracing::error!(%error, "okta signing keys fetch task failed");
        }
        self.lock().lookup(kid)
    }

    /// Fetches once if no key was ever fetched; a no-op otherwise. For a warm start.
    pub(crate) async fn warm_up(&self) {
        let _flight = self.flight.lock().await;
        {
            let mut state = self.lock();
            if state.keys.is_some() || state.last_attempt.is_some() {
                return;
            }
            state.last_attempt = Some(Instant::now());
        }
        self.fetch(Trigger::Cold).await;
    }

    /// Starts a background refresh when the keys are past their max-age, unless a fetch is
    /// running or the last attempt is inside the cooldown (a failing endpoint is retried once
    /// per cooldown, not once per request).
    fn refresh_if_expired(self: &Arc<Self>, state: &mut CacheState) {
        let now = Instant::now();
        if now < state.fresh_until || !is_older_than(state.last_attempt, now, self.policy.cooldown)
        {
            return;
        }
        let Ok(flight) = Arc::clone(&self.flight).try_lock_owned() else {
            return;
        };
        state.last_attempt = Some(now);
        let cache = Arc::clone(self);
        tokio::spawn(async move {
            let _flight = flight;
            cache.fetch(Trigger::Expired).await;
        });
    }

    /// Runs one fetch (the caller holds the flight) and records its result.
    async fn fetch(&self, trigger: Trigger) {
        let result = tokio::time::timeout(self.policy.timeout, self.source.fetch())
            .await
            .unwrap_or(Err(FetchError::Timeout));
        let now = Instant::now();
        let mut state = self.lock();
        state.generation += 1;
        match result {
            Ok(fetched) => {
                let max_age = fetched
                    .max_age
                    .unwrap_or(DEFAULT_MAX_AGE)
                    .clamp(self.policy.cooldown, MAX_MAX_AGE.max(self.policy.cooldown));
                tracing::info!(
                    trigger = trigger.as_str(),
                    n_keys = fetched.keys.len(),
                    max_age_s = max_age.as_secs(),
                    "okta signing keys fetched"
                );
                state.keys = Some(Arc::new(fetched.keys));
                state.fresh_until = now + max_age;
            }
            Err(error) => {
                let n_kept = state.keys.as_ref().map_or(0, |keys| keys.len());
                tracing::warn!(
                    trigger = trigger.as_str(),
                    %error,
                    n_kept,
                    "okta signing keys fetch failed; keeping the last good keys"
                );
            }
        }
    }
}

impl<S> JwksCache<S> {
    fn lock(&self) -> MutexGuard<'_, CacheState> {
        // Every section assigns whole values, so a poisoned lock is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Fetches keys over HTTP from the configured `jwks_uri`, or the one the issuer's metadata
/// names (discovered once, then kept).
#[derive(Debug)]
pub(crate) struct HttpKeySource {
    client: reqwest::Client,
    issuer: String,
    configured_jwks_uri: Option<String>,
    /// A std mutex: set once, read by copying the string.
    discovered_jwks_uri: Mutex<Option<String>>,
}

impl HttpKeySource {
    pub(crate) fn new(
        client: reqwest::Client,
        issuer: String,
        jwks_uri: Option<String>,
    ) -> HttpKeySource {
        HttpKeySource {
            client,
            issuer,
            configured_jwks_uri: jwks_uri,
            discovered_jwks_uri: Mutex::new(None),
        }
    }

    /// The issuer and configured `jwks_uri`: what a reload compares before keeping a cache.
    pub(crate) fn origin(&self) -> (&str, Option<&str>) {
        (&self.issuer, self.configured_jwks_uri.as_deref())
    }

    async fn jwks_uri(&self) -> Result<String, FetchError> {
        if let Some(uri) = &self.configured_jwks_uri {
            return Ok(uri.clone());
        }
        let known = self.discovered_jwks_uri.lock().unwrap_or_else(PoisonError::into_inner).clone();
        if let Some(uri) = known {
            return Ok(uri);
        }
        let uri = self.discover().await?;
        *self.discovered_jwks_uri.lock().unwrap_or_else(PoisonError::into_inner) =
            Some(uri.clone());
        Ok(uri)
    }

    /// RFC 8414 metadata (Okta's custom authorization servers), then OpenID discovery (Okta's
    /// org authorization server) if the first is not found.
    async fn discover(&self) -> Result<String, FetchError> {
        #[derive(Deserialize)]
        struct Metadata {
            issuer: String,
            jwks_uri: String,
        }
        let base = self.issuer.trim_end_matches('/');
        let mut last_error = None;
        for document in ["oauth-authorization-server", "openid-configuration"] {
            let url = format!("{base}/.well-known/{document}");
            match self.get(&url).await {
                Ok((body, _)) => {
                    let metadata: Metadata = serde_json::from_slice(&body).map_err(|error| {
                        FetchError::Metadata(format!("{url}: not issuer metadata: {error}"))
                    })?;
                    // RFC 8414 section 3.3: the metadata must name the issuer it was fetched for.
                    if metadata.issuer != self.issuer {
                        return Err(FetchError::Metadata(format!(
                            "{url} names issuer `{}`, configured `{}`: okta.auth.issuer must equal it exactly",
                            metadata.issuer, self.issuer
                        )));
                    }
                    if !is_https_or_loopback(&metadata.jwks_uri) {
                        return Err(FetchError::Metadata(format!(
                            "{url}: jwks_uri `{}` is not https",
                            metadata.jwks_uri
                        )));
                    }
                    return Ok(metadata.jwks_uri);
                }
                Err(error @ FetchError::Status { status: 404, .. }) => {
                    last_error = Some(error);
                }
                Err(error) => return Err(error),
            }
        }
        Err(last_error.unwrap_or(FetchError::Metadata("not found".into())))
    }

    /// GETs `url`: status 200 and at most [`MAX_BODY_BYTES`], or an error.
    async fn get(&self, url: &str) -> Result<(Vec<u8>, Option<Duration>), FetchError> {
        let http_error = |reason: String| FetchError::Http { url: url.to_owned(), reason };
        let mut response = self
            .client
            .get(url)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|error| http_error(without_url(&error)))?;
        let status = response.status();
        if status != reqwest::StatusCode::OK {
            return Err(FetchError::Status { url: url.to_owned(), status: status.as_u16() });
        }
        let max_age = response
            .headers()
            .get(reqwest::header::CACHE_CONTROL)
            .and_then(|value| value.to_str().ok())
            .and_then(parse_max_age);
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| http_error(without_url(&e)))? {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(http_error(format!("answer larger than {MAX_BODY_BYTES} bytes")));
            }
            body.extend_from_slice(&chunk);
        }
        Ok((body, max_age))
    }
}

impl KeySource for HttpKeySource {
    async fn fetch(&self) -> Result<FetchedKeys, FetchError> {
        let url = self.jwks_uri().await?;
        let (body, max_age) = self.get(&url).await?;
        let keys =
            parse_jwks(&body).map_err(|reason| FetchError::Http { url: url.clone(), reason })?;
        if keys.is_empty() {
            return Err(FetchError::NoUsableKey { url });
        }
        Ok(FetchedKeys { keys, max_age })
    }
}

/// reqwest's error text, without the URL it repeats (the caller names it once).
fn without_url(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "cannot connect"
    } else if error.is_body() || error.is_decode() {
        "broken answer"
    } else {
        "request failed"
    };
    kind.to_owned()
}

/// The RS256 signing keys of a JWK set, by `kid`. Keys of other types or uses, and keys
/// without a `kid`, are skipped: Okta names every key, and a token must name its key.
fn parse_jwks(body: &[u8]) -> Result<HashMap<String, DecodingKey>, String> {
    #[derive(Deserialize)]
    struct JwkSet {
        keys: Vec<Jwk>,
    }
    #[derive(Deserialize)]
    struct Jwk {
        kty: String,
        kid: Option<String>,
        #[serde(rename = "use")]
        usage: Option<String>,
        alg: Option<String>,
        n: Option<String>,
        e: Option<String>,
    }
    let set: JwkSet =
        serde_json::from_slice(body).map_err(|error| format!("not a JWK set: {error}"))?;
    let mut keys = HashMap::new();
    for jwk in set.keys {
        let is_rs256_signing = jwk.kty == "RSA"
            && jwk.usage.as_deref().is_none_or(|usage| usage == "sig")
            && jwk.alg.as_deref().is_none_or(|alg| alg == "RS256");
        let (Some(kid), Some(n), Some(e)) = (jwk.kid, jwk.n, jwk.e) else { continue };
        if !is_rs256_signing {
            continue;
        }
        if let Ok(key) = DecodingKey::from_rsa_components(&n, &e) {
            keys.insert(kid, key);
        }
    }
    Ok(keys)
}

/// `max-age=N` from a `Cache-Control` value; `no-store`/`no-cache` count as zero (clamped up
/// to the cooldown by the cache).
fn parse_max_age(value: &str) -> Option<Duration> {
    let mut max_age = None;
    for directive in value.split(',').map(str::trim) {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-store" || lower == "no-cache" {
            return Some(Duration::ZERO);
        }
        if let Some(seconds) = lower.strip_prefix("max-age=") {
            max_age = seconds.trim_matches('"').parse().ok().map(Duration::from_secs);
        }
    }
    max_age
}

/// `https://...`, or `http://` to a loopback host (tests, the demo).
pub(crate) fn is_https_or_loopback(url: &str) -> bool {
    url.starts_with("https://") || is_loopback_url(url)
}

/// `http://localhost`, `http://127.x.y.z` or `http://[::1]`, with optional port and path.
pub(crate) fn is_loopback_url(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else { return false };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = match authority.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or(""),
        None => authority.split(':').next().unwrap_or(""),
    };
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests;
