//! The configuration file: raw serde structs as the operator writes them (`file.rs`), `${ENV}`
//! and `${file:...}` substitution (`env.rs`), and one validation step into typed [`Settings`]
//! (here, with `[okta]` and its authentication in `okta.rs`).
//!
//! Secrets never need to be in the file: any string may be `${NAME}` (or contain it), replaced by
//! the environment variable before parsing; `$${` writes a literal `${`. Every error names the key
//! it is about, so an operator can fix the file without reading code.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::http::HeaderName;
use secrecy::{ExposeSecret, SecretString};
use switchboard_core::health::HealthPolicy;
use switchboard_core::route::{ProviderCatalog, RouteTable};
use switchboard_core::{ConfigError, Country, ProviderId};
use switchboard_providers::{BuildContext, SharedProvider};

use crate::auth::{HeaderSecretAuth, OktaAuth};
mod env;
mod events;
mod file;
mod okta;
mod state;

#[cfg(test)]
use env::expand;
use env::substitute;
pub use events::{EventsSettings, SystemLogSettings};
pub use file::*;
use okta::validate_okta;
pub use state::{BackendKind, RedisSettings, StateConfig, StateSettings};

/// Validated configuration.
#[derive(Debug)]
pub struct Settings {
    /// Hook listener address.
    pub listen: SocketAddr,
    /// Admin listener address.
    pub admin_listen: SocketAddr,
    /// Shutdown grace period.
    pub shutdown_grace: Duration,
    /// Public base URL, without a trailing slash.
    pub public_base_url: Option<String>,
    /// Overload limits.
    pub overload: OverloadSettings,
    /// Okta-facing settings.
    pub okta: OktaSettings,
    /// Delivery settings.
    pub delivery: DeliverySettings,
    /// Logging settings.
    pub logging: LoggingConfig,
    /// Provider health policy.
    pub health: HealthPolicy,
    /// The toll-fraud guard, with fresh counters.
    pub(crate) guard: crate::guard::Guard,
    /// Configured SMS templates, when `[sms_text]` is given.
    pub(crate) sms_text: Option<switchboard_core::text::TemplateSet>,
    /// Providers in id order.
    pub providers: Vec<SharedProvider>,
    /// Each capped provider's `max_per_second`, and its per-country senders'.
    pub(crate) throughput: crate::throughput::Caps,
    /// Route rules.
    pub routes: RouteTable,
    /// Admin API token header check (`Authorization: Bearer ...`), when configured.
    pub(crate) admin_auth: Option<HeaderSecretAuth>,
    /// Secret files the configuration reads, watched for changes.
    pub secret_files: Vec<PathBuf>,
    /// Where shared state lives; read at start (a reload keeps the running backend).
    pub state: StateSettings,
}

/// Validated `[okta]`.
#[derive(Debug, Clone)]
pub struct OktaSettings {
    /// Hook path.
    pub path: String,
    /// Answer deadline.
    pub deadline: Duration,
    /// Reporting policy.
    pub report: Report,
    /// Region for numbers without `+`.
    pub default_region: Option<Country>,
    /// Largest distance between `eventTime` and our clock.
    pub event_time_tolerance: Duration,
    /// What a shed request gets.
    pub shed_answer: ShedAnswer,
    pub(crate) auth: OktaAuth,
    /// The event hook, when `[okta.events]` is configured.
    pub events: Option<EventsSettings>,
    /// System Log polling, when `[okta.system_log]` is configured.
    pub system_log: Option<SystemLogSettings>,
}

impl OktaSettings {
    /// Whether Okta tells switchboard which codes were entered (the event hook, System Log
    /// polling, or both): sends are then kept for correlation and settled by what Okta says.
    #[must_use]
    pub fn reports_conversions(&self) -> bool {
        self.events.is_some() || self.system_log.is_some()
    }
}

/// Validated overload limits from `[server]`.
#[derive(Debug, Clone, Copy)]
pub struct OverloadSettings {
    /// Connections open at once on the hook listener.
    pub max_connections: usize,
    /// Hook requests between arrival and answer.
    pub max_in_flight: usize,
    /// Deliveries running, answered or not.
    pub max_deliveries: usize,
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("{0}")]
    Syntax(String),
    /// A value has the wrong type or an unknown key.
    #[error("{key}: {message}")]
    Shape {
        /// Dotted key path.
        key: String,
        /// serde's message.
        message: String,
    },
    /// `${file:PATH}` names a file that cannot be read.
    #[error("{key}: cannot read secret file {path}: {message}")]
    SecretFile {
        /// Dotted key path.
        key: String,
        /// The file.
        path: String,
        /// The I/O error.
        message: String,
    },
    /// `${NAME}` names an unset variable.
    #[error("{key}: environment variable {name} is not set")]
    Env {
        /// Dotted key path.
        key: String,
        /// The variable.
        name: String,
    },
    /// A value is refused by validation.
    #[error(transparent)]
    Invalid(#[from] ConfigError),
}

impl Settings {
    /// Reads, substitutes and validates a file, taking `${NAME}` values from the process
    /// environment.
    pub fn load(path: &Path) -> Result<Settings, LoadError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| LoadError::Read { path: path.display().to_string(), source })?;
        Settings::parse(&text, |name| std::env::var(name).ok())
    }

    /// Parses and validates TOML text, looking variables up with `env`.
    pub fn parse(text: &str, env: impl Fn(&str) -> Option<String>) -> Result<Settings, LoadError> {
        Settings::from_file(FileConfig::parse(text, env)?)
    }

    /// Validates an already-parsed file (the demo rewrites provider URLs in between).
    pub fn from_file(file: FileConfig) -> Result<Settings, LoadError> {
        let listen = parse_addr("server.listen", &file.server.listen)?;
        let admin_listen = parse_addr("server.admin_listen", &file.server.admin_listen)?;
        let okta = validate_okta(&file.okta)?;
        let overload = validate_overload(&file.server)?;
        let health = HealthPolicy::try_new(&file.health)?;
        let delivery = validate_delivery(&file.delivery)?;
        let guard = crate::guard::Guard::try_new(&file.guard)?;
        let sms_text = file
            .sms_text
            .as_ref()
            .map(|config| switchboard_core::text::TemplateSet::try_new("sms_text", config))
            .transpose()?;
        let admin_auth = match &file.admin.token {
            Some(token) if token.expose_secret().len() < 16 => {
                return Err(
                    ConfigError::invalid("admin.token", "must be at least 16 characters").into()
                );
            }
            Some(token) => Some(HeaderSecretAuth::new(
                HeaderName::from_static("authorization"),
                &[&format!("Bearer {}", token.expose_secret())],
            )),
            None => None,
        };

        let public_base_url =
            file.server.public_base_url.as_deref().map(validate_base_url).transpose()?;
        let mut providers = Vec::with_capacity(file.providers.len());
        let mut throughput = crate::throughput::Caps::default();
        for (name, config) in &file.providers {
            let key = format!("providers.{name}");
            let id = ProviderId::parse(name).ok_or_else(|| {
                ConfigError::invalid(&key, "provider ids are 1 to 64 letters, digits, - or _")
            })?;
            let context = BuildContext {
                callback_base: public_base_url
                    .as_ref()
                    .map(|base| format!("{base}/callbacks/{id}")),
            };
            if let Some(cap) = config.max_per_second() {
                throughput.providers.insert(id.clone(), cap);
            }
            for (country, cap) in config.sender_caps() {
                throughput.senders.insert((id.clone(), country), cap);
            }
            providers.push(switchboard_providers::build(id, config, &context)?);
        }
        if providers.is_empty() {
            return Err(ConfigError::invalid("providers", "configure at least one provider").into());
        }
        let catalog = ProviderCatalog::new(providers.iter().map(|provider| {
            let channels = switchboard_core::Channel::ALL
                .into_iter()
                .filter(|channel| provider.supports(*channel))
                .collect::<Vec<_>>();
            (provider.id().clone(), channels)
        }));
        let routes = RouteTable::try_new(&file.routes, &file.prices, &catalog)?;
        let state = state::validate_state(&file.state, file.logging.phone_hash_key.is_some())?;
        Ok(Settings {
            listen,
            admin_listen,
            shutdown_grace: Duration::from_millis(file.server.shutdown_grace_ms),
            public_base_url,
            overload,
            okta,
            delivery,
            guard,
            sms_text,
            logging: file.logging,
            health,
            providers,
            throughput,
            routes,
            admin_auth,
            secret_files: file.secret_files,
            state,
        })
    }
}

impl FileConfig {
    /// Parses TOML text after substituting `${NAME}` in every string.
    pub fn parse(
        text: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<FileConfig, LoadError> {
        let mut value: toml::Value =
            toml::from_str(text).map_err(|error| LoadError::Syntax(error.to_string()))?;
        let mut files = Vec::new();
        substitute(&mut value, &mut String::new(), &env, &mut files)?;
        let mut file: FileConfig =
            serde_path_to_error::deserialize(value).map_err(|error| LoadError::Shape {
                key: error.path().to_string(),
                message: error.into_inner().to_string(),
            })?;
        file.secret_files = files;
        Ok(file)
    }
}

/// `https://host[:port][/prefix]`, no query, fragment or credentials; `http://` only for
/// loopback (tests, the demo).
fn validate_base_url(text: &str) -> Result<String, ConfigError> {
    let trimmed = text.trim_end_matches('/');
    check_https_url("server.public_base_url", trimmed)?;
    Ok(trimmed.to_owned())
}

/// `https://host[:port][/path]` without query, fragment or credentials; `http://` only for a
/// loopback host.
fn check_https_url(key: &str, text: &str) -> Result<(), ConfigError> {
    let rest = if let Some(rest) = text.strip_prefix("https://") {
        rest
    } else if let Some(rest) = text.strip_prefix("http://") {
        if !crate::auth::is_loopback_url(text) {
            return Err(ConfigError::invalid(key, "must use https (http only for loopback)"));
        }
        rest
    } else {
        return Err(ConfigError::invalid(key, "must start with https://"));
    };
    if rest.is_empty() || rest.starts_with('/') || rest.contains(['?', '#', '@', ' ']) {
        return Err(ConfigError::invalid(
            key,
            "must be a host and optional path, without query, fragment or credentials",
        ));
    }
    Ok(())
}

/// A path on the hook listener: it starts with `/`, has no spaces, and is not a route pattern
/// (`{id}`, `*rest`) nor under `/callbacks`, which the providers' receipts use.
fn check_path(key: &str, path: &str) -> Result<(), ConfigError> {
    if !path.starts_with('/') || path.contains(char::is_whitespace) {
        return Err(ConfigError::invalid(key, "must start with / and contain no spaces"));
    }
    if path.contains(['{', '}', '*']) {
        return Err(ConfigError::invalid(key, "must not contain {, } or *"));
    }
    if path == "/callbacks" || path.starts_with("/callbacks/") {
        return Err(ConfigError::invalid(key, "must not be under /callbacks (provider receipts)"));
    }
    Ok(())
}

/// A header name (default `Authorization`) and one or two secrets of at least 16 characters,
/// checked under `prefix` (`okta.auth`, `okta.events.auth`).
fn header_secrets(
    prefix: &str,
    header: Option<&str>,
    secrets: &[SecretString],
) -> Result<HeaderSecretAuth, ConfigError> {
    let header =
        HeaderName::try_from(header.unwrap_or(file::default_auth_header())).map_err(|_| {
            ConfigError::invalid(format!("{prefix}.header"), "is not a valid HTTP header name")
        })?;
    if !(1..=2).contains(&secrets.len()) {
        return Err(ConfigError::invalid(
            format!("{prefix}.secrets"),
            "give one secret, or two while rotating",
        ));
    }
    let mut accepted = Vec::with_capacity(secrets.len());
    for (index, secret) in secrets.iter().enumerate() {
        let secret = secret.expose_secret();
        if secret.len() < 16 {
            return Err(ConfigError::invalid(
                format!("{prefix}.secrets[{index}]"),
                "must be at least 16 characters (it is the only thing between the internet and your SMS bill)",
            ));
        }
        accepted.push(secret);
    }
    Ok(HeaderSecretAuth::new(header, &accepted))
}

fn parse_addr(key: &str, text: &str) -> Result<SocketAddr, ConfigError> {
    text.parse()
        .map_err(|_| ConfigError::invalid(key, format!("`{text}` is not an IP address and port")))
}

fn validate_overload(server: &ServerConfig) -> Result<OverloadSettings, ConfigError> {
    let check = |key: &str, value: usize, range: std::ops::RangeInclusive<usize>| {
        if range.contains(&value) {
            Ok(value)
        } else {
            Err(ConfigError::invalid(
                format!("server.{key}"),
                format!("must be between {} and {}", range.start(), range.end()),
            ))
        }
    };
    Ok(OverloadSettings {
        max_connections: check("max_connections", server.max_connections, 16..=1_000_000)?,
        max_in_flight: check("max_in_flight", server.max_in_flight, 1..=1_000_000)?,
        max_deliveries: check("max_deliveries", server.max_deliveries, 1..=10_000_000)?,
    })
}

/// Validated `[delivery]`.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    /// Keep delivering after the answer.
    pub background: bool,
    /// Sends per OTP at most.
    pub max_attempts: u32,
    /// First pause between passes.
    pub retry_backoff: Duration,
    /// Lifetime without `otpExpires`.
    pub default_otp_lifetime: Duration,
    /// Lifetime cap.
    pub max_otp_lifetime: Duration,
    /// Shutdown wait for background deliveries.
    pub shutdown_wait: Duration,
    /// Ledger capacity.
    pub ledger_capacity: usize,
}

impl DeliverySettings {
    /// How long the code is good for from now: `otpExpires` (capped), the default without it,
    /// or `None` once it has passed (nothing is sent after the answer then).
    #[must_use]
    pub fn otp_lifetime(&self, otp_expires: Option<time::OffsetDateTime>) -> Option<Duration> {
        match otp_expires {
            None => Some(self.default_otp_lifetime),
            Some(expires) => {
                let left = expires - time::OffsetDateTime::now_utc();
                let left = Duration::try_from(left).ok().filter(|d| !d.is_zero())?;
                Some(left.min(self.max_otp_lifetime))
            }
        }
    }
}

fn validate_delivery(delivery: &DeliveryConfig) -> Result<DeliverySettings, ConfigError> {
    if !(1..=10).contains(&delivery.max_attempts) {
        return Err(ConfigError::invalid("delivery.max_attempts", "must be between 1 and 10"));
    }
    if !(100..=60_000).contains(&delivery.retry_backoff_ms) {
        return Err(ConfigError::invalid(
            "delivery.retry_backoff_ms",
            "must be between 100 and 60000",
        ));
    }
    if !(10_000..=3_600_000).contains(&delivery.max_otp_lifetime_ms) {
        return Err(ConfigError::invalid(
            "delivery.max_otp_lifetime_ms",
            "must be between 10000 and 3600000",
        ));
    }
    if delivery.default_otp_lifetime_ms == 0
        || delivery.default_otp_lifetime_ms > delivery.max_otp_lifetime_ms
    {
        return Err(ConfigError::invalid(
            "delivery.default_otp_lifetime_ms",
            "must be positive and at most delivery.max_otp_lifetime_ms",
        ));
    }
    if !(1_000..=10_000_000).contains(&delivery.ledger_capacity) {
        return Err(ConfigError::invalid(
            "delivery.ledger_capacity",
            "must be between 1000 and 10000000",
        ));
    }
    Ok(DeliverySettings {
        background: delivery.background,
        max_attempts: delivery.max_attempts,
        retry_backoff: Duration::from_millis(delivery.retry_backoff_ms),
        default_otp_lifetime: Duration::from_millis(delivery.default_otp_lifetime_ms),
        max_otp_lifetime: Duration::from_millis(delivery.max_otp_lifetime_ms),
        shutdown_wait: Duration::from_millis(delivery.shutdown_wait_ms),
        ledger_capacity: delivery.ledger_capacity,
    })
}

#[cfg(test)]
mod tests;
