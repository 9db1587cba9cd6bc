//! An emulator of an Okta custom authorization server's public endpoints, for the hook's
//! OAuth 2.0 mode: the metadata documents and the key set (JWKS) a verifier fetches, plus
//! minting of access tokens as Okta would sign them (and as an attacker would not).
//!
//! - `GET /oauth2/default/.well-known/oauth-authorization-server` and `.../openid-configuration`
//! - `GET /oauth2/default/v1/keys`, with `Cache-Control: max-age` when set
//! - `/__sim/faults`, `/__sim/requests` as every emulator
//!
//! Faults apply to every fetch (metadata and keys), as an Okta outage would; each fetch is
//! recorded before faults are applied, so a test can count the fetches a verifier made.
//! Minting happens in-process: Okta's token endpoint is not emulated, since the hook only ever
//! sees the token.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use switchboard_sim::oauth::OAuthEmulator;
//!
//! let okta = OAuthEmulator::start().await?;
//! let token = okta.mint(&serde_json::json!({"iss": okta.issuer(), "aud": "api://default"}));
//! // point a verifier at okta.issuer(), send `Authorization: Bearer {token}` ...
//! assert_eq!(okta.key_fetches(), 0);
//! # Ok(()) }
//! ```

mod api;
mod keys;

use std::io;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use axum::Router;
use serde::Serialize;

pub use keys::{Signer, SigningKey, sign_jwt};

use crate::emulator::{Api, Emulator, Running};

/// Path of the emulated authorization server under the base URL (Okta's `default` server).
pub const SERVER_PATH: &str = "/oauth2/default";

/// Which document a fetch asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FetchKind {
    /// `.well-known/oauth-authorization-server` or `.well-known/openid-configuration`.
    Metadata,
    /// `v1/keys`.
    Keys,
}

/// One fetch the emulator received.
#[derive(Clone, Debug, Serialize)]
pub struct ReceivedFetch {
    /// Metadata or keys.
    pub kind: FetchKind,
    /// The request path.
    pub path: String,
    /// When the request was read.
    #[serde(serialize_with = "crate::serialize_rfc3339")]
    pub received_at: SystemTime,
}

/// Okta's half of an [`OAuthEmulator`]: the keys it publishes and signs with.
#[derive(Debug)]
pub struct AuthorizationServer {
    keys: Mutex<KeyRing>,
}

/// An authorization server emulator: cheap to clone, every clone shares keys, faults and the
/// fetch record.
pub type OAuthEmulator = Emulator<AuthorizationServer>;

/// An authorization server emulator serving on a loopback port; stops on shutdown or drop.
pub type RunningOAuth = Running<AuthorizationServer>;

/// A std mutex guards it: sections clone or push a few keys and never span an `.await`.
#[derive(Debug)]
struct KeyRing {
    /// Published in the JWKS, in order.
    published: Vec<SigningKey>,
    /// What [`OAuthEmulator::mint`] signs with.
    current: SigningKey,
    /// `Cache-Control: max-age` of the JWKS answer.
    max_age_s: Option<u64>,
}

impl Api for AuthorizationServer {
    type Received = ReceivedFetch;

    /// The metadata documents and the key set. The issuer is taken from each request's `Host`,
    /// so the emulator needs no configuration of its own address.
    fn routes(emulator: &OAuthEmulator) -> Router {
        api::routes(emulator.clone())
    }
}

impl Default for OAuthEmulator {
    fn default() -> Self {
        OAuthEmulator::new()
    }
}

impl OAuthEmulator {
    /// An emulator publishing fixture key 0 as `sim-key-1`, and signing with it.
    #[must_use]
    pub fn new() -> OAuthEmulator {
        OAuthEmulator::with_key(SigningKey::fixture(0, "sim-key-1"))
    }

    /// An emulator publishing `key` and signing with it (another fixture makes an attacker's
    /// server whose keys the verifier must never trust).
    #[must_use]
    pub fn with_key(key: SigningKey) -> OAuthEmulator {
        let keys = KeyRing { published: vec![key.clone()], current: key, max_age_s: None };
        Emulator::from_api(AuthorizationServer { keys: Mutex::new(keys) }, 0)
    }

    /// Binds `127.0.0.1:0` and serves a new emulator on a background task.
    pub async fn start() -> io::Result<RunningOAuth> {
        OAuthEmulator::new().spawn().await
    }

    /// The key tokens are signed with.
    #[must_use]
    pub fn signing_key(&self) -> SigningKey {
        self.keys().current.clone()
    }

    /// Every published key, in order.
    #[must_use]
    pub fn published_keys(&self) -> Vec<SigningKey> {
        self.keys().published.clone()
    }

    /// Rotates: publishes `key` (keeping the old keys published, as Okta does during a
    /// rotation) and signs with it from now on.
    pub fn rotate_to(&self, key: SigningKey) {
        let mut keys = self.keys();
        keys.published.retain(|published| published.kid() != key.kid());
        keys.published.push(key.clone());
        keys.current = key;
    }

    /// Stops publishing the key `kid` (a withdrawn key). Minting still uses the current key.
    pub fn withdraw(&self, kid: &str) {
        self.keys().published.retain(|published| published.kid() != kid);
    }

    /// Sets the JWKS answer's `Cache-Control: max-age` (none by default).
    pub fn set_max_age(&self, seconds: Option<u64>) {
        self.keys().max_age_s = seconds;
    }

    /// An RS256 token with the current key's `kid`, signed by it: what Okta sends.
    #[must_use]
    pub fn mint(&self, claims: &serde_json::Value) -> String {
        let key = self.signing_key();
        let header = serde_json::json!({"kid": key.kid(), "alg": "RS256"});
        sign_jwt(&header, claims, Signer::Rs256(&key))
    }

    /// A token with exactly `header`, signed by `signer`.
    #[must_use]
    pub fn mint_with(
        &self,
        header: &serde_json::Value,
        claims: &serde_json::Value,
        signer: Signer<'_>,
    ) -> String {
        sign_jwt(header, claims, signer)
    }

    /// How many key set (JWKS) fetches were received, failed ones included.
    #[must_use]
    pub fn key_fetches(&self) -> usize {
        self.received().iter().filter(|fetch| fetch.kind == FetchKind::Keys).count()
    }

    /// Completes once `n` fetches of any kind have been received in all.
    pub async fn wait_for_fetches(&self, n: usize) {
        self.wait_for_sends(n).await;
    }

    fn keys(&self) -> MutexGuard<'_, KeyRing> {
        // Every section leaves the ring whole, so a poisoned lock is still consistent.
        self.api().keys.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl RunningOAuth {
    /// `http://127.0.0.1:PORT/oauth2/default`: the tokens' `iss` and the verifier's issuer.
    #[must_use]
    pub fn issuer(&self) -> String {
        format!("{}{SERVER_PATH}", self.base_url())
    }

    /// `{issuer}/v1/keys`.
    #[must_use]
    pub fn jwks_uri(&self) -> String {
        format!("{}/v1/keys", self.issuer())
    }
}
