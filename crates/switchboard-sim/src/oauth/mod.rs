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

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use axum::Router;
use serde::Serialize;
use tokio::net::TcpListener;

pub use keys::{Signer, SigningKey, sign_jwt};

use crate::faults::{FaultInjector, Faults};
use crate::journal::Journal;
use crate::server::{self, RunningServer};

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
    #[serde(skip)]
    pub received_at: SystemTime,
}

/// An authorization server emulator: cheap to clone, every clone shares keys, faults and the
/// fetch record.
#[derive(Clone, Debug)]
pub struct OAuthEmulator {
    state: Arc<EmulatorState>,
}

#[derive(Debug)]
struct EmulatorState {
    keys: Mutex<KeyRing>,
    faults: Arc<FaultInjector>,
    journal: Journal<ReceivedFetch>,
}

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
        OAuthEmulator {
            state: Arc::new(EmulatorState {
                keys: Mutex::new(KeyRing {
                    published: vec![key.clone()],
                    current: key,
                    max_age_s: None,
                }),
                faults: Arc::new(FaultInjector::new(0)),
                journal: Journal::new(),
            }),
        }
    }

    /// Binds `127.0.0.1:0` and serves a new emulator on a background task.
    pub async fn start() -> io::Result<RunningOAuth> {
        OAuthEmulator::new().spawn().await
    }

    /// Binds `127.0.0.1:0` and serves this emulator on a background task.
    pub async fn spawn(self) -> io::Result<RunningOAuth> {
        let server = RunningServer::start(self.router()).await?;
        Ok(RunningOAuth { emulator: self, server })
    }

    /// Serves this emulator on `listener` until `shutdown` completes (for a standalone process).
    pub async fn serve(self, listener: TcpListener, shutdown: impl Future<Output = ()> + Send) {
        server::serve(listener, self.router(), shutdown).await;
    }

    /// The authorization server and `/__sim/*` routes. The issuer is taken from each request's
    /// `Host`, so the emulator needs no configuration of its own address.
    pub fn router(&self) -> Router {
        api::routes(self.clone())
            .merge(crate::admin::routes(Arc::clone(&self.state.faults), self.state.journal.clone()))
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

    /// Replaces the faults in force.
    ///
    /// # Panics
    /// If [`Faults::check`] refuses them.
    pub fn set_faults(&self, faults: Faults) {
        self.state.faults.set(faults);
    }

    /// The faults in force.
    #[must_use]
    pub fn faults(&self) -> Faults {
        self.state.faults.get()
    }

    /// Every fetch received so far, oldest first.
    #[must_use]
    pub fn received(&self) -> Vec<ReceivedFetch> {
        self.state.journal.snapshot()
    }

    /// How many key set (JWKS) fetches were received, failed ones included.
    #[must_use]
    pub fn key_fetches(&self) -> usize {
        self.received().iter().filter(|fetch| fetch.kind == FetchKind::Keys).count()
    }

    /// Completes once `n` fetches of any kind have been received in all.
    pub async fn wait_for_fetches(&self, n: usize) {
        self.state.journal.wait_for_pushed(n).await;
    }

    fn record(&self, fetch: ReceivedFetch) {
        self.state.journal.push(fetch);
    }

    fn fault_injector(&self) -> &FaultInjector {
        &self.state.faults
    }

    fn keys(&self) -> MutexGuard<'_, KeyRing> {
        // Every section leaves the ring whole, so a poisoned lock is still consistent.
        self.state.keys.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// An emulator serving on a loopback port; stops on [`RunningOAuth::shutdown`] or drop.
#[derive(Debug)]
#[must_use = "dropping the handle stops the emulator"]
pub struct RunningOAuth {
    emulator: OAuthEmulator,
    server: RunningServer,
}

impl std::ops::Deref for RunningOAuth {
    type Target = OAuthEmulator;

    fn deref(&self) -> &OAuthEmulator {
        &self.emulator
    }
}

impl RunningOAuth {
    /// `http://127.0.0.1:PORT`.
    #[must_use]
    pub fn base_url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

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

    /// The bound address.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// The emulator handle.
    #[must_use]
    pub fn emulator(&self) -> &OAuthEmulator {
        &self.emulator
    }

    /// Stops accepting, drops open connections and waits for the server task to end.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}
