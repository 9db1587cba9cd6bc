//! The fleet: state that several replicas behind one load balancer must share, through one
//! Redis (`[state] backend = "redis"`), or nothing at all in memory mode (the default).
//!
//! Each store still owns its state and decides what it shares and how (its own keys, scripts
//! and fallbacks, next to it in `fleet/`); this module owns only the connection and what every
//! store needs from it:
//!
//! - [`Redis::query`]: one command, pipeline or script, with the timeout of the path it is on
//!   ([`Path::Hook`]: tens of milliseconds; [`Path::Background`]: about a second) and a circuit
//!   breaker, so that a slow or dead Redis costs a hook request at most one short timeout and
//!   usually nothing. Every call is counted by store and result; each breaker transition is
//!   logged once.
//! - the bus: [`Redis::publish`] sends a small JSON message to every other replica;
//!   [`bus::dispatch`] hands each one to the store it is for.
//! - the sync loop: every `sync_interval_ms` each replica renews its membership (so limits can
//!   fall back to a local share of a quota: quota ÷ live replicas) and re-reads the shared state
//!   it caches (see [`sync`]).
//!
//! Keys are `{key_prefix}{store}:{...}`, every key has a TTL (or is a small bounded hash), and no
//! key or value holds a phone number, a passcode or a secret: phones appear only as the keyed
//! digests of [`PhoneHasher`](crate::phone::PhoneHasher), which is why Redis mode requires a
//! shared `logging.phone_hash_key`.

pub(crate) mod breaker;
pub(crate) mod bus;
pub(crate) mod events;
pub(crate) mod evidence;
pub(crate) mod health;
pub(crate) mod ledger;
pub(crate) mod limits;
mod run;
pub(crate) mod scripts;
pub(crate) mod sent;
pub(crate) mod spend;
pub(crate) mod switches;

pub(crate) use self::run::{prime, spawn};

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{FromRedisValue, RedisError};

use self::breaker::{Breaker, Transition};
use crate::config::{RedisSettings, StateSettings};
use crate::metrics::Metrics;

/// Which timeout a call gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Path {
    /// On the hook's path: `state.command_timeout_ms`.
    Hook,
    /// Anywhere else: `state.background_timeout_ms`.
    Background,
}

/// A call that did not reach a usable answer: the store falls back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Unavailable {
    /// The breaker is open: no call was made.
    Open,
    /// No answer within the path's timeout.
    Timeout,
    /// Redis (or the connection) answered with an error.
    Error,
}

impl Unavailable {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Unavailable::Open => "breaker_open",
            Unavailable::Timeout => "timeout",
            Unavailable::Error => "error",
        }
    }
}

/// Where shared state lives: nowhere (memory mode) or one Redis.
#[derive(Debug, Default)]
pub(crate) struct Fleet {
    redis: Option<Arc<Redis>>,
}

impl Fleet {
    pub(crate) fn new(settings: &StateSettings, metrics: Arc<Metrics>) -> Fleet {
        match settings {
            StateSettings::Memory => Fleet { redis: None },
            StateSettings::Redis(settings) => {
                Fleet { redis: Some(Arc::new(Redis::new(settings.clone(), metrics))) }
            }
        }
    }

    /// The shared backend, in Redis mode.
    pub(crate) fn redis(&self) -> Option<&Arc<Redis>> {
        self.redis.as_ref()
    }

    /// The store for what providers serve from their callback route (Plivo's call scripts),
    /// in Redis mode.
    pub(crate) fn scripts(&self) -> Option<Arc<dyn switchboard_providers::SharedScripts>> {
        let redis = Arc::clone(self.redis.as_ref()?);
        Some(Arc::new(scripts::RedisScripts::new(redis)))
    }

    /// `memory` or `redis`, for logs and the admin API.
    pub(crate) fn backend(&self) -> &'static str {
        if self.redis.is_some() { "redis" } else { "memory" }
    }

    /// How many replicas share the state (1 in memory mode): the last count Redis gave, kept
    /// while Redis is unreachable.
    pub(crate) fn replicas(&self) -> u32 {
        self.redis.as_ref().map_or(1, |redis| redis.replicas())
    }
}

/// One Redis shared by every replica.
pub(crate) struct Redis {
    settings: RedisSettings,
    client: redis::Client,
    /// Created on first use, inside the runtime; it reconnects by itself.
    manager: OnceLock<ConnectionManager>,
    breaker: Mutex<Breaker>,
    /// This process's name on the bus and in the membership set.
    replica: String,
    replicas: AtomicU32,
    /// Whether a call has succeeded since start (the gauge's first 1).
    is_up: AtomicBool,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis")
            .field("url", &self.settings.redacted_url())
            .field("replica", &self.replica)
            .finish_non_exhaustive()
    }
}

impl Redis {
    fn new(settings: RedisSettings, metrics: Arc<Metrics>) -> Redis {
        // Validated at load, so this cannot fail here.
        let client =
            settings.client().expect("state.url was validated when the configuration was loaded");
        let breaker = Breaker::new(settings.breaker_failures, settings.breaker_open);
        let replica = format!("{:016x}", rand::random::<u64>());
        metrics.state_backend_up(false);
        Redis {
            settings,
            client,
            manager: OnceLock::new(),
            breaker: Mutex::new(breaker),
            replica,
            replicas: AtomicU32::new(1),
            is_up: AtomicBool::new(false),
            metrics,
        }
    }

    /// `{prefix}{store}:{part}:{part}...`
    pub(crate) fn key(&self, store: &str, parts: &[&str]) -> String {
        let mut key = String::with_capacity(64);
        key.push_str(&self.settings.key_prefix);
        key.push_str(store);
        for part in parts {
            key.push(':');
            key.push_str(part);
        }
        key
    }

    /// This replica's name.
    pub(crate) fn replica(&self) -> &str {
        &self.replica
    }

    pub(crate) fn replicas(&self) -> u32 {
        self.replicas.load(Ordering::Relaxed).max(1)
    }

    /// Whether the last calls reached Redis: a call has succeeded and the breaker is closed.
    pub(crate) fn is_reachable(&self) -> bool {
        self.is_up.load(Ordering::Relaxed) && self.breaker().is_closed()
    }

    pub(crate) fn settings(&self) -> &RedisSettings {
        &self.settings
    }

    /// Counts a store falling back to local state because Redis was unavailable.
    pub(crate) fn fell_back(&self, store: &'static str, why: Unavailable) {
        self.metrics.state_fallback(store, why.as_str());
    }

    fn manager(&self) -> Result<ConnectionManager, RedisError> {
        if let Some(manager) = self.manager.get() {
            return Ok(manager.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.settings.connect_timeout))
            .set_response_timeout(Some(self.settings.background_timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let manager = ConnectionManager::new_lazy_with_config(self.client.clone(), config)?;
        Ok(self.manager.get_or_init(|| manager).clone())
    }

    fn breaker(&self) -> std::sync::MutexGuard<'_, Breaker> {
        self.breaker.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `command` (a `Cmd`, `Pipeline` or a script's invocation, through [`Runnable`]) for
    /// `store` on `path`'s timeout, behind the breaker.
    pub(crate) async fn query<T: FromRedisValue + Send>(
        &self,
        store: &'static str,
        path: Path,
        command: impl Runnable,
    ) -> Result<T, Unavailable> {
        if !self.breaker().allow(tokio::time::Instant::now()) {
            self.metrics.state_call(store, Unavailable::Open.as_str());
            return Err(Unavailable::Open);
        }
        let timeout = match path {
            Path::Hook => self.settings.command_timeout,
            Path::Background => self.settings.background_timeout,
        };
        let result = match self.manager() {
            Ok(mut manager) => {
                match tokio::time::timeout(timeout, command.run::<T>(&mut manager)).await {
                    Ok(Ok(value)) => Ok(value),
                    Ok(Err(error)) => {
                        tracing::debug!(store, error = %error.category(), "redis call failed");
                        Err(Unavailable::Error)
                    }
                    Err(_) => Err(Unavailable::Timeout),
                }
            }
            Err(_) => Err(Unavailable::Error),
        };
        self.metrics.state_call(store, result.as_ref().map_or_else(|why| why.as_str(), |_| "ok"));
        let transition = self.breaker().record(result.is_ok(), tokio::time::Instant::now());
        match transition {
            Some(Transition::Opened) => {
                self.is_up.store(false, Ordering::Relaxed);
                self.metrics.state_backend_up(false);
                tracing::error!(
                    url = %self.settings.redacted_url(),
                    failures = self.settings.breaker_failures,
                    open_ms = self.settings.breaker_open.as_millis() as u64,
                    "shared state (redis) unavailable: circuit breaker open, every store falls back to local state"
                );
            }
            Some(Transition::Closed) => {
                self.is_up.store(true, Ordering::Relaxed);
                self.metrics.state_backend_up(true);
                tracing::info!(url = %self.settings.redacted_url(), "shared state (redis) reachable again: circuit breaker closed");
            }
            None if result.is_ok() && !self.is_up.swap(true, Ordering::Relaxed) => {
                self.metrics.state_backend_up(true);
            }
            None => {}
        }
        result
    }

    /// Sends `body` to every other replica on `topic`, in the background; a message lost while
    /// Redis is unavailable is counted, and each store's sync repairs what it must.
    pub(crate) fn publish(self: &Arc<Self>, topic: &'static str, body: serde_json::Value) {
        let redis = Arc::clone(self);
        tokio::spawn(async move {
            let message = bus::Envelope { from: redis.replica.clone(), topic: topic.into(), body };
            let Ok(text) = serde_json::to_string(&message) else { return };
            let channel = redis.key("bus", &[]);
            let mut command = redis::cmd("PUBLISH");
            command.arg(channel).arg(text);
            if redis.query::<i64>("bus", Path::Background, &command).await.is_err() {
                redis.metrics.state_bus_lost(topic);
            }
        });
    }

    /// Renews this replica's membership and reads how many replicas are alive: members whose
    /// last renewal is within three sync intervals, by Redis's clock.
    async fn renew_membership(&self) -> Result<u32, Unavailable> {
        let ttl = (self.settings.sync_interval * 3).as_millis() as u64;
        let mut invocation = MEMBERSHIP.key(self.key("replicas", &[]));
        invocation.arg(&self.replica).arg(ttl);
        let count: u32 = self.query("membership", Path::Background, &invocation).await?;
        self.replicas.store(count.max(1), Ordering::Relaxed);
        self.metrics.state_replicas(count);
        Ok(count)
    }

    async fn leave(&self) {
        let mut command = redis::cmd("ZREM");
        command.arg(self.key("replicas", &[])).arg(&self.replica);
        let _ = self.query::<i64>("membership", Path::Background, &command).await;
    }
}

/// A key part for an identifier that is not secret but has no bound on its length (a
/// provider's message id, an Okta event uuid): the hex of the first 16 bytes of its SHA-256.
pub(crate) fn short_digest(text: &str) -> String {
    use sha2::Digest as _;
    hex::encode(&sha2::Sha256::digest(text.as_bytes())[..16])
}

/// Membership: `ZADD` this replica with an expiry score from Redis's own clock, drop the expired,
/// count the rest. One script, so every replica judges expiry by the same clock.
static MEMBERSHIP: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r"
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZADD', KEYS[1], ms + tonumber(ARGV[2]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ms)
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 10)
return redis.call('ZCARD', KEYS[1])
",
    )
});

/// Something [`Redis::query`] can run.
pub(crate) trait Runnable: Send {
    fn run<T: FromRedisValue + Send>(
        self,
        manager: &mut ConnectionManager,
    ) -> impl Future<Output = redis::RedisResult<T>> + Send;
}

impl Runnable for &redis::Cmd {
    async fn run<T: FromRedisValue + Send>(
        self,
        manager: &mut ConnectionManager,
    ) -> redis::RedisResult<T> {
        self.query_async(manager).await
    }
}

impl Runnable for &redis::Pipeline {
    async fn run<T: FromRedisValue + Send>(
        self,
        manager: &mut ConnectionManager,
    ) -> redis::RedisResult<T> {
        self.query_async(manager).await
    }
}

impl Runnable for &redis::ScriptInvocation<'_> {
    async fn run<T: FromRedisValue + Send>(
        self,
        manager: &mut ConnectionManager,
    ) -> redis::RedisResult<T> {
        self.invoke_async(manager).await
    }
}
