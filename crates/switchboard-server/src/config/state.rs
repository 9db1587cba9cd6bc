//! `[state]`: where the state that replicas must share lives. `memory` (the default) keeps it
//! in the process: one replica, nothing to install. `redis` shares it through one Redis, so
//! several replicas behind a load balancer act as one.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use switchboard_core::ConfigError;

/// `[state]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// `memory` or `redis`.
    #[serde(default)]
    pub backend: BackendKind,
    /// `redis://[user:password@]host[:port][/db]`, `rediss://` for TLS, or
    /// `redis+unix:///path/to/socket`. Holds a password, so it is a secret (`${file:...}` works).
    #[serde(default)]
    pub url: Option<SecretString>,
    /// A PEM file of the certificate authority that signed Redis's TLS certificate, for a
    /// `rediss://` URL whose server the system's roots do not vouch for (a private CA).
    #[serde(default)]
    pub tls_ca_file: Option<std::path::PathBuf>,
    /// Prepended to every key, so several deployments can share one Redis.
    #[serde(default = "default_prefix")]
    pub key_prefix: String,
    /// The most a call on the hook's path waits for Redis before falling back.
    #[serde(default = "default_command_timeout_ms")]
    pub command_timeout_ms: u64,
    /// The most a call off the hook's path (receipts, sync, admin) waits.
    #[serde(default = "default_background_timeout_ms")]
    pub background_timeout_ms: u64,
    /// The most one connection attempt waits.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Consecutive failed calls that open the circuit breaker.
    #[serde(default = "default_breaker_failures")]
    pub breaker_failures: u32,
    /// How long an open breaker fails calls at once before letting one through to test Redis.
    #[serde(default = "default_breaker_open_ms")]
    pub breaker_open_ms: u64,
    /// How often each replica re-reads the shared state it caches (switches, ejections, spend)
    /// and renews its membership.
    #[serde(default = "default_sync_interval_ms")]
    pub sync_interval_ms: u64,
}

/// Where shared state lives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendKind {
    /// In the process.
    #[default]
    Memory,
    /// In one Redis shared by every replica.
    Redis,
}

fn default_prefix() -> String {
    "switchboard:".into()
}
fn default_command_timeout_ms() -> u64 {
    50
}
fn default_background_timeout_ms() -> u64 {
    1_000
}
fn default_connect_timeout_ms() -> u64 {
    1_000
}
fn default_breaker_failures() -> u32 {
    3
}
fn default_breaker_open_ms() -> u64 {
    1_000
}
fn default_sync_interval_ms() -> u64 {
    1_000
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            backend: BackendKind::Memory,
            url: None,
            tls_ca_file: None,
            key_prefix: default_prefix(),
            command_timeout_ms: default_command_timeout_ms(),
            background_timeout_ms: default_background_timeout_ms(),
            connect_timeout_ms: default_connect_timeout_ms(),
            breaker_failures: default_breaker_failures(),
            breaker_open_ms: default_breaker_open_ms(),
            sync_interval_ms: default_sync_interval_ms(),
        }
    }
}

/// Validated `[state]`.
#[derive(Clone, Debug)]
pub enum StateSettings {
    /// In the process.
    Memory,
    /// In Redis.
    Redis(RedisSettings),
}

impl StateSettings {
    /// `memory` or `redis`.
    #[must_use]
    pub fn backend(&self) -> &'static str {
        match self {
            StateSettings::Memory => "memory",
            StateSettings::Redis(_) => "redis",
        }
    }
}

/// Validated `[state]` for the Redis backend.
#[derive(Clone)]
pub struct RedisSettings {
    pub(crate) url: SecretString,
    /// PEM roots for `rediss://` from `tls_ca_file`.
    pub(crate) tls_ca: Option<Vec<u8>>,
    /// Prepended to every key.
    pub key_prefix: String,
    /// Hook-path call timeout.
    pub command_timeout: Duration,
    /// Off-path call timeout.
    pub background_timeout: Duration,
    /// Connection attempt timeout.
    pub connect_timeout: Duration,
    /// Failures that open the breaker.
    pub breaker_failures: u32,
    /// How long the breaker stays open.
    pub breaker_open: Duration,
    /// Cache refresh and membership period.
    pub sync_interval: Duration,
}

impl std::fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSettings")
            .field("url", &redacted(self.url.expose_secret()))
            .field("key_prefix", &self.key_prefix)
            .field("command_timeout", &self.command_timeout)
            .finish_non_exhaustive()
    }
}

impl RedisSettings {
    /// The URL without its credentials, for logs.
    pub fn redacted_url(&self) -> String {
        redacted(self.url.expose_secret())
    }
}

/// `scheme://host:port/db` with any `user:password@` removed.
fn redacted(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
            format!("{scheme}://{rest}")
        }
        None => "(unparseable url)".into(),
    }
}

/// Checks `[state]`; `has_phone_hash_key` says whether `logging.phone_hash_key` is set, which
/// Redis mode needs so every replica writes the same keyed digests.
pub(super) fn validate_state(
    state: &StateConfig,
    has_phone_hash_key: bool,
) -> Result<StateSettings, ConfigError> {
    if state.backend == BackendKind::Memory {
        if state.url.is_some() {
            return Err(ConfigError::invalid(
                "state.url",
                "is only used with backend = \"redis\" (the memory backend needs no server)",
            ));
        }
        return Ok(StateSettings::Memory);
    }
    let Some(url) = &state.url else {
        return Err(ConfigError::invalid("state.url", "is required with backend = \"redis\""));
    };
    let text = url.expose_secret().trim();
    if !["redis://", "rediss://", "redis+unix://", "unix://"]
        .iter()
        .any(|scheme| text.starts_with(scheme))
    {
        return Err(ConfigError::invalid(
            "state.url",
            "must start with redis://, rediss:// (TLS) or redis+unix://",
        ));
    }
    let tls_ca = match &state.tls_ca_file {
        None => None,
        Some(_) if !text.starts_with("rediss://") => {
            return Err(ConfigError::invalid(
                "state.tls_ca_file",
                "is only used with a rediss:// (TLS) url",
            ));
        }
        Some(path) => {
            let pem = std::fs::read(path).map_err(|error| {
                ConfigError::invalid(
                    "state.tls_ca_file",
                    format!("cannot read {}: {error}", path.display()),
                )
            })?;
            if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
                return Err(ConfigError::invalid(
                    "state.tls_ca_file",
                    format!("{} holds no PEM certificate", path.display()),
                ));
            }
            Some(pem)
        }
    };
    if let Err(error) = client(text, tls_ca.as_deref()) {
        // The client's message names the part it could not read; never the URL itself.
        return Err(ConfigError::invalid(
            "state.url",
            format!("is not a Redis URL ({})", error.category()),
        ));
    }
    if !has_phone_hash_key {
        return Err(ConfigError::invalid(
            "logging.phone_hash_key",
            "is required with [state] backend = \"redis\": every replica must write the same keyed digests of phone numbers",
        ));
    }
    let prefix = &state.key_prefix;
    if prefix.is_empty()
        || prefix.len() > 64
        || !prefix.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_:.".contains(&b))
    {
        return Err(ConfigError::invalid(
            "state.key_prefix",
            "must be 1 to 64 letters, digits or - _ : .",
        ));
    }
    let millis = |key: &str, value: u64, range: std::ops::RangeInclusive<u64>| {
        if range.contains(&value) {
            Ok(Duration::from_millis(value))
        } else {
            Err(ConfigError::invalid(
                key,
                format!("must be between {} and {}", range.start(), range.end()),
            ))
        }
    };
    let command_timeout = millis("state.command_timeout_ms", state.command_timeout_ms, 1..=1_000)?;
    let background_timeout =
        millis("state.background_timeout_ms", state.background_timeout_ms, 10..=30_000)?;
    let connect_timeout =
        millis("state.connect_timeout_ms", state.connect_timeout_ms, 10..=30_000)?;
    let breaker_open = millis("state.breaker_open_ms", state.breaker_open_ms, 10..=60_000)?;
    let sync_interval = millis("state.sync_interval_ms", state.sync_interval_ms, 50..=10_000)?;
    if !(1..=100).contains(&state.breaker_failures) {
        return Err(ConfigError::invalid("state.breaker_failures", "must be between 1 and 100"));
    }
    Ok(StateSettings::Redis(RedisSettings {
        url: SecretString::from(text.to_owned()),
        tls_ca,
        key_prefix: prefix.clone(),
        command_timeout,
        background_timeout,
        connect_timeout,
        breaker_failures: state.breaker_failures,
        breaker_open,
        sync_interval,
    }))
}

/// The Redis client for `url`, trusting `tls_ca` (PEM) instead of the system's roots when given.
pub(crate) fn client(url: &str, tls_ca: Option<&[u8]>) -> redis::RedisResult<redis::Client> {
    match tls_ca {
        None => redis::Client::open(url),
        Some(pem) => redis::Client::build_with_tls(
            url,
            redis::TlsCertificates { client_tls: None, root_cert: Some(pem.to_vec()) },
        ),
    }
}

impl RedisSettings {
    /// The client these settings describe.
    pub(crate) fn client(&self) -> redis::RedisResult<redis::Client> {
        client(self.url.expose_secret(), self.tls_ca.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redis(url: &str) -> StateConfig {
        StateConfig {
            backend: BackendKind::Redis,
            url: Some(SecretString::from(url.to_owned())),
            ..StateConfig::default()
        }
    }

    fn refusal(config: &StateConfig, has_key: bool) -> String {
        validate_state(config, has_key).unwrap_err().to_string()
    }

    #[test]
    fn memory_is_the_default_and_needs_nothing() {
        assert!(matches!(
            validate_state(&StateConfig::default(), false),
            Ok(StateSettings::Memory)
        ));
    }

    #[test]
    fn redis_needs_a_url_a_shared_hash_key_and_sane_bounds() {
        let no_url = StateConfig { backend: BackendKind::Redis, ..StateConfig::default() };
        assert!(refusal(&no_url, true).contains("state.url"));
        assert!(refusal(&redis("http://cache:6379"), true).contains("state.url"));
        assert!(refusal(&redis("redis://cache:6379"), false).contains("logging.phone_hash_key"));
        let mut slow = redis("redis://cache:6379");
        slow.command_timeout_ms = 5_000;
        assert!(refusal(&slow, true).contains("state.command_timeout_ms"));
        let mut prefix = redis("redis://cache:6379");
        prefix.key_prefix = "a b".into();
        assert!(refusal(&prefix, true).contains("state.key_prefix"));
        let mut memory_with_url = redis("redis://cache:6379");
        memory_with_url.backend = BackendKind::Memory;
        assert!(refusal(&memory_with_url, true).contains("state.url"));
    }

    #[test]
    fn a_password_never_reaches_an_error_or_debug_output() {
        let secret = "s3cret-pa55word";
        for url in [
            format!("redis://default:{secret}@cache:6379/0"),
            format!("rediss://:{secret}@cache.example.com:6380"),
        ] {
            let StateSettings::Redis(settings) = validate_state(&redis(&url), true).unwrap() else {
                panic!("redis settings");
            };
            assert!(!format!("{settings:?}").contains(secret));
            assert!(!settings.redacted_url().contains(secret));
            assert!(settings.redacted_url().contains("cache"));
        }
        let bad = format!("redis://default:{secret}@cache:notaport");
        assert!(!refusal(&redis(&bad), true).contains(secret));
    }

    #[test]
    fn a_tls_ca_file_must_be_readable_pem_and_go_with_rediss() {
        let dir = tempfile::tempdir().unwrap();
        let not_pem = dir.path().join("ca.txt");
        std::fs::write(&not_pem, "hello").unwrap();
        let mut config = redis("rediss://cache:6380");
        config.tls_ca_file = Some(dir.path().join("missing.pem"));
        assert!(refusal(&config, true).contains("state.tls_ca_file: cannot read"));
        config.tls_ca_file = Some(not_pem);
        assert!(refusal(&config, true).contains("holds no PEM certificate"));
        let mut plain = redis("redis://cache:6379");
        plain.tls_ca_file = Some(dir.path().join("ca.pem"));
        assert!(refusal(&plain, true).contains("only used with a rediss://"));
    }
}
