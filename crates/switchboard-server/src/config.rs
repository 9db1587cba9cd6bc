//! The configuration file: raw serde structs as the operator writes them, `${ENV}` substitution,
//! and one validation step into typed [`Settings`].
//!
//! Secrets never need to be in the file: any string may be `${NAME}` (or contain it), replaced by
//! the environment variable before parsing; `$${` writes a literal `${`. Every error names the key
//! it is about, so an operator can fix the file without reading code.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::http::HeaderName;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use switchboard_core::health::{HealthConfig, HealthPolicy};
use switchboard_core::price::PriceConfig;
use switchboard_core::route::{ProviderCatalog, RouteConfig, RouteTable};
use switchboard_core::{ConfigError, Country, ProviderId};
use switchboard_providers::{BuildContext, ProviderConfig, SharedProvider};

use crate::auth::{CachePolicy, HeaderSecretAuth, OAuthSettings, OAuthVerifier, OktaAuth};

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Listeners.
    pub server: ServerConfig,
    /// How Okta calls us and what we answer.
    pub okta: OktaConfig,
    /// Log output.
    #[serde(default = "default_logging")]
    pub logging: LoggingConfig,
    /// Attempts, background delivery and idempotency.
    #[serde(default = "default_delivery")]
    pub delivery: DeliveryConfig,
    /// SMS text per locale, replacing Okta's `msgTemplate`. Optional.
    #[serde(default)]
    pub sms_text: Option<switchboard_core::text::TemplateConfig>,
    /// The toll-fraud guard.
    #[serde(default = "crate::guard::default_guard")]
    pub guard: crate::guard::GuardConfig,
    /// Ejection and recovery of failing providers.
    #[serde(default = "default_health")]
    pub health: HealthConfig,
    /// Provider accounts by id; the id is what routes refer to.
    pub providers: BTreeMap<String, ProviderConfig>,
    /// Prices per provider and country, for cost ranking and the spend budget.
    #[serde(default = "PriceConfig::empty")]
    pub prices: PriceConfig,
    /// Route rules, first match wins.
    pub routes: Vec<RouteConfig>,
    /// The admin API.
    #[serde(default = "default_admin")]
    pub admin: AdminConfig,
    /// Files read through `${file:...}`, watched for changes.
    #[serde(skip)]
    pub secret_files: Vec<PathBuf>,
}

/// `[admin]`: the admin API on the admin listener.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Bearer token for `/admin/*`. Without one, the admin API is off (metrics and health stay).
    #[serde(default)]
    pub token: Option<SecretString>,
}

fn default_admin() -> AdminConfig {
    AdminConfig { token: None }
}

/// `[server]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address of the hook listener that Okta calls.
    pub listen: String,
    /// Address of the admin listener (`/metrics`, `/healthz`, `/readyz`); keep it private.
    #[serde(default = "default_admin_listen")]
    pub admin_listen: String,
    /// How long shutdown waits for in-flight hook requests, in milliseconds.
    #[serde(default = "default_shutdown_grace_ms")]
    pub shutdown_grace_ms: u64,
    /// The URL providers reach the hook listener at (`https://otp.example.com`). With it, sends
    /// ask for delivery receipts at `{public_base_url}/callbacks/{provider id}`; without it,
    /// they ask for none.
    #[serde(default)]
    pub public_base_url: Option<String>,
    /// Most connections open at once on the hook listener; past it, new connections wait in the
    /// kernel's backlog. Needs a restart.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Most hook requests between arrival and answer; past it, a request is shed (answered at
    /// once with `okta.shed_answer`, nothing sent).
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
    /// Most deliveries running at once, answered or not (background ones included); past it, a
    /// new request is shed. Bounds memory whatever the load.
    #[serde(default = "default_max_deliveries")]
    pub max_deliveries: usize,
}

fn default_max_connections() -> usize {
    4_096
}
fn default_max_in_flight() -> usize {
    512
}
fn default_max_deliveries() -> usize {
    50_000
}

/// `[okta]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OktaConfig {
    /// Path of the hook endpoint.
    #[serde(default = "default_path")]
    pub path: String,
    /// Time from receiving Okta's request to answering it, in milliseconds. Okta waits 3000.
    #[serde(default = "default_deadline_ms")]
    pub deadline_ms: u64,
    /// `always_success` or `truthful`.
    #[serde(default = "default_report")]
    pub report: Report,
    /// Region for numbers that arrive without a `+` country code (ISO alpha-2).
    #[serde(default)]
    pub default_region: Option<String>,
    /// A request whose `eventTime` is further than this from our clock, in seconds, is refused
    /// as a replay. 30..=3600, default 300 (Okta's default OTP lifetime).
    #[serde(default = "default_event_time_tolerance_s")]
    pub event_time_tolerance_s: u64,
    /// What a request shed under overload gets: `failed` (Okta's FAILED at once, so Okta's own
    /// providers send the code) or `retry` (HTTP 503, so Okta retries once, perhaps on another
    /// replica, before falling back).
    #[serde(default = "default_shed_answer")]
    pub shed_answer: ShedAnswer,
    /// How Okta authenticates.
    pub auth: OktaAuthConfig,
}

/// `okta.shed_answer`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShedAnswer {
    /// HTTP 200 with status FAILED: Okta sends through its own providers at once.
    Failed,
    /// HTTP 503 with Okta's error object: Okta retries once, then falls back.
    Retry,
}

fn default_event_time_tolerance_s() -> u64 {
    300
}
fn default_shed_answer() -> ShedAnswer {
    ShedAnswer::Failed
}

/// What Okta is told when every attempt failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Report {
    /// Answer SUCCESSFUL anyway, so Okta's rate-limited fallback never fires; the failure is
    /// logged and counted, and switchboard owns it.
    AlwaysSuccess,
    /// Answer FAILED, so Okta may try its own providers.
    Truthful,
}

/// `[okta.auth]`: how Okta authenticates, as configured on the hook in Okta.
///
/// One flat table for both modes; keys of the other mode are refused by name, so a forgotten
/// `mode = "oauth2"` is an error rather than a silently ignored `issuer`. That is why the
/// mode-specific keys are `Option`s with defaults applied in validation (the `DEFAULT_*`
/// constants) instead of serde defaults.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OktaAuthConfig {
    /// `header` (a fixed secret in a header) or `oauth2` (a bearer JWT from an Okta
    /// authorization server).
    #[serde(default = "default_auth_mode")]
    pub mode: AuthMode,
    /// Header mode: the header name Okta sends the secret in. Default `Authorization`.
    #[serde(default)]
    pub header: Option<String>,
    /// Header mode: one or two accepted values (two while rotating).
    #[serde(default)]
    pub secrets: Vec<SecretString>,
    /// OAuth mode: the authorization server's issuer, exactly as in the tokens' `iss`
    /// (`https://{org}.okta.com/oauth2/default`).
    #[serde(default)]
    pub issuer: Option<String>,
    /// OAuth mode: the tokens' `aud`, exactly (`api://default`, or the server's audience).
    #[serde(default)]
    pub audience: Option<String>,
    /// OAuth mode: the custom scope Okta requests, required in the tokens' `scp`.
    #[serde(default)]
    pub scope: Option<String>,
    /// OAuth mode: when set, the tokens' `cid` must equal it (the client Okta uses).
    #[serde(default)]
    pub client_id: Option<String>,
    /// OAuth mode: fetch keys here instead of the `jwks_uri` in the issuer's metadata.
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// OAuth mode: clock skew allowed on `exp` and `nbf`, in seconds. 0..=300, default 60.
    #[serde(default)]
    pub leeway_s: Option<u64>,
    /// OAuth mode: at most one key refresh for an unknown `kid` per this many seconds.
    /// 10..=3600, default 60.
    #[serde(default)]
    pub jwks_cooldown_s: Option<u64>,
    /// OAuth mode: bound on one key fetch (metadata included), in milliseconds. 100..=5000,
    /// default 1000.
    #[serde(default)]
    pub jwks_timeout_ms: Option<u64>,
}

/// `[okta.auth] mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// A fixed secret in a header.
    Header,
    /// A bearer JWT from an Okta authorization server (client secret or private key JWT).
    #[serde(rename = "oauth2")]
    OAuth2,
}

fn default_auth_mode() -> AuthMode {
    AuthMode::Header
}

/// `okta.auth.leeway_s` when not set.
pub const DEFAULT_LEEWAY_S: u64 = 60;
/// `okta.auth.jwks_cooldown_s` when not set.
pub const DEFAULT_JWKS_COOLDOWN_S: u64 = 60;
/// `okta.auth.jwks_timeout_ms` when not set.
pub const DEFAULT_JWKS_TIMEOUT_MS: u64 = 1_000;

/// `[delivery]`: how hard switchboard tries, and for how long.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryConfig {
    /// With `report = "always_success"`, keep delivering after answering Okta, until the OTP
    /// expires.
    #[serde(default = "default_background")]
    pub background: bool,
    /// Sends per OTP at most, before and after the answer together.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Pause before a new pass over the providers once all have failed; doubles each pass.
    #[serde(default = "default_retry_backoff_ms")]
    pub retry_backoff_ms: u64,
    /// OTP lifetime assumed when Okta sends no `otpExpires`.
    #[serde(default = "default_otp_lifetime_ms")]
    pub default_otp_lifetime_ms: u64,
    /// Longest OTP lifetime believed, whatever `otpExpires` says.
    #[serde(default = "default_max_otp_lifetime_ms")]
    pub max_otp_lifetime_ms: u64,
    /// On shutdown, how long to wait for deliveries still running in the background.
    #[serde(default = "default_shutdown_wait_ms")]
    pub shutdown_wait_ms: u64,
    /// Most events and phone numbers remembered at once (each for its OTP's lifetime).
    #[serde(default = "default_ledger_capacity")]
    pub ledger_capacity: usize,
}

fn default_delivery() -> DeliveryConfig {
    DeliveryConfig {
        background: default_background(),
        max_attempts: default_max_attempts(),
        retry_backoff_ms: default_retry_backoff_ms(),
        default_otp_lifetime_ms: default_otp_lifetime_ms(),
        max_otp_lifetime_ms: default_max_otp_lifetime_ms(),
        shutdown_wait_ms: default_shutdown_wait_ms(),
        ledger_capacity: default_ledger_capacity(),
    }
}
fn default_background() -> bool {
    true
}
fn default_max_attempts() -> u32 {
    4
}
fn default_retry_backoff_ms() -> u64 {
    2_000
}
fn default_otp_lifetime_ms() -> u64 {
    300_000
}
fn default_max_otp_lifetime_ms() -> u64 {
    900_000
}
fn default_shutdown_wait_ms() -> u64 {
    5_000
}
fn default_ledger_capacity() -> usize {
    100_000
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

/// `[logging]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoggingConfig {
    /// `json` (one object per line) or `text`.
    #[serde(default = "default_log_format")]
    pub format: LogFormat,
    /// Key for the HMAC that pseudonymises phone numbers in logs. Without it a random key is
    /// drawn at start, so hashes do not correlate across restarts or replicas.
    #[serde(default)]
    pub phone_hash_key: Option<SecretString>,
}

/// Log line format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// JSON lines.
    Json,
    /// Human-readable lines.
    Text,
}

fn default_logging() -> LoggingConfig {
    LoggingConfig { format: default_log_format(), phone_hash_key: None }
}
fn default_log_format() -> LogFormat {
    LogFormat::Json
}
fn default_health() -> HealthConfig {
    HealthConfig::defaults()
}
fn default_admin_listen() -> String {
    "127.0.0.1:9090".into()
}
fn default_shutdown_grace_ms() -> u64 {
    10_000
}
fn default_path() -> String {
    "/okta/telephony".into()
}
fn default_deadline_ms() -> u64 {
    2_500
}
fn default_report() -> Report {
    Report::AlwaysSuccess
}
fn default_auth_header() -> &'static str {
    "Authorization"
}

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
    /// Route rules.
    pub routes: RouteTable,
    /// Admin API token header check (`Authorization: Bearer ...`), when configured.
    pub(crate) admin_auth: Option<HeaderSecretAuth>,
    /// Secret files the configuration reads, watched for changes.
    pub secret_files: Vec<PathBuf>,
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
            routes,
            admin_auth,
            secret_files: file.secret_files,
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

fn validate_okta(okta: &OktaConfig) -> Result<OktaSettings, ConfigError> {
    if !okta.path.starts_with('/') || okta.path.contains(char::is_whitespace) {
        return Err(ConfigError::invalid("okta.path", "must start with / and contain no spaces"));
    }
    if !(100..=2_900).contains(&okta.deadline_ms) {
        return Err(ConfigError::invalid(
            "okta.deadline_ms",
            "must be between 100 and 2900: Okta gives up after 3000 ms, including network time",
        ));
    }
    let default_region = match &okta.default_region {
        Some(text) => Some(Country::parse(text).ok_or_else(|| {
            ConfigError::invalid(
                "okta.default_region",
                format!("`{text}` is not an ISO 3166-1 alpha-2 code"),
            )
        })?),
        None => None,
    };
    if !(30..=3_600).contains(&okta.event_time_tolerance_s) {
        return Err(ConfigError::invalid(
            "okta.event_time_tolerance_s",
            "must be between 30 and 3600",
        ));
    }
    Ok(OktaSettings {
        path: okta.path.clone(),
        deadline: Duration::from_millis(okta.deadline_ms),
        report: okta.report,
        default_region,
        event_time_tolerance: Duration::from_secs(okta.event_time_tolerance_s),
        shed_answer: okta.shed_answer,
        auth: validate_okta_auth(&okta.auth)?,
    })
}

fn validate_okta_auth(auth: &OktaAuthConfig) -> Result<OktaAuth, ConfigError> {
    let header_keys = [("header", auth.header.is_some()), ("secrets", !auth.secrets.is_empty())];
    let oauth_keys = [
        ("issuer", auth.issuer.is_some()),
        ("audience", auth.audience.is_some()),
        ("scope", auth.scope.is_some()),
        ("client_id", auth.client_id.is_some()),
        ("jwks_uri", auth.jwks_uri.is_some()),
        ("leeway_s", auth.leeway_s.is_some()),
        ("jwks_cooldown_s", auth.jwks_cooldown_s.is_some()),
        ("jwks_timeout_ms", auth.jwks_timeout_ms.is_some()),
    ];
    let (mode, other_keys) = match auth.mode {
        AuthMode::Header => ("header", &oauth_keys[..]),
        AuthMode::OAuth2 => ("oauth2", &header_keys[..]),
    };
    if let Some((key, _)) = other_keys.iter().find(|(_, is_set)| *is_set) {
        return Err(ConfigError::invalid(
            format!("okta.auth.{key}"),
            format!("is not used with mode = \"{mode}\""),
        ));
    }
    match auth.mode {
        AuthMode::Header => validate_header_auth(auth).map(OktaAuth::Header),
        AuthMode::OAuth2 => {
            let settings = validate_oauth(auth)?;
            let verifier = OAuthVerifier::try_new(settings).map_err(|error| {
                ConfigError::invalid("okta.auth", format!("http client: {error}"))
            })?;
            Ok(OktaAuth::OAuth2(std::sync::Arc::new(verifier)))
        }
    }
}

fn validate_header_auth(auth: &OktaAuthConfig) -> Result<HeaderSecretAuth, ConfigError> {
    let header = HeaderName::try_from(auth.header.as_deref().unwrap_or(default_auth_header()))
        .map_err(|_| ConfigError::invalid("okta.auth.header", "is not a valid HTTP header name"))?;
    if !(1..=2).contains(&auth.secrets.len()) {
        return Err(ConfigError::invalid(
            "okta.auth.secrets",
            "give one secret, or two while rotating",
        ));
    }
    let mut secrets = Vec::with_capacity(auth.secrets.len());
    for (index, secret) in auth.secrets.iter().enumerate() {
        let secret = secret.expose_secret();
        if secret.len() < 16 {
            return Err(ConfigError::invalid(
                format!("okta.auth.secrets[{index}]"),
                "must be at least 16 characters (it is the only thing between the internet and your SMS bill)",
            ));
        }
        secrets.push(secret);
    }
    Ok(HeaderSecretAuth::new(header, &secrets))
}

fn validate_oauth(auth: &OktaAuthConfig) -> Result<OAuthSettings, ConfigError> {
    fn required<'a>(key: &str, value: &'a Option<String>) -> Result<&'a str, ConfigError> {
        match value.as_deref().map(str::trim) {
            Some(text) if !text.is_empty() => Ok(text),
            Some(_) => Err(ConfigError::invalid(format!("okta.auth.{key}"), "must not be empty")),
            None => Err(ConfigError::invalid(
                format!("okta.auth.{key}"),
                "is required with mode = \"oauth2\"",
            )),
        }
    }
    let issuer = required("issuer", &auth.issuer)?;
    check_https_url("okta.auth.issuer", issuer)?;
    let audience = required("audience", &auth.audience)?;
    let scope = required("scope", &auth.scope)?;
    if scope.contains(char::is_whitespace) {
        return Err(ConfigError::invalid("okta.auth.scope", "must be one scope, without spaces"));
    }
    let client_id = match &auth.client_id {
        Some(_) => Some(required("client_id", &auth.client_id)?.to_owned()),
        None => None,
    };
    let jwks_uri = match &auth.jwks_uri {
        Some(_) => {
            let uri = required("jwks_uri", &auth.jwks_uri)?;
            check_https_url("okta.auth.jwks_uri", uri)?;
            Some(uri.to_owned())
        }
        None => None,
    };
    let leeway_s = auth.leeway_s.unwrap_or(DEFAULT_LEEWAY_S);
    if leeway_s > 300 {
        return Err(ConfigError::invalid("okta.auth.leeway_s", "must be between 0 and 300"));
    }
    let cooldown_s = auth.jwks_cooldown_s.unwrap_or(DEFAULT_JWKS_COOLDOWN_S);
    if !(10..=3_600).contains(&cooldown_s) {
        return Err(ConfigError::invalid(
            "okta.auth.jwks_cooldown_s",
            "must be between 10 and 3600 (it bounds the key fetches a flood of unknown kids causes)",
        ));
    }
    let timeout_ms = auth.jwks_timeout_ms.unwrap_or(DEFAULT_JWKS_TIMEOUT_MS);
    if !(100..=5_000).contains(&timeout_ms) {
        return Err(ConfigError::invalid(
            "okta.auth.jwks_timeout_ms",
            "must be between 100 and 5000: a request waiting for keys still has Okta's 3 s to meet",
        ));
    }
    Ok(OAuthSettings {
        issuer: issuer.to_owned(),
        audience: audience.to_owned(),
        scope: scope.to_owned(),
        client_id,
        jwks_uri,
        leeway: Duration::from_secs(leeway_s),
        policy: CachePolicy {
            cooldown: Duration::from_secs(cooldown_s),
            timeout: Duration::from_millis(timeout_ms),
        },
    })
}

/// Replaces `${NAME}` in every string of `value`, tracking the dotted key for errors.
fn substitute(
    value: &mut toml::Value,
    key: &mut String,
    env: &impl Fn(&str) -> Option<String>,
    files: &mut Vec<PathBuf>,
) -> Result<(), LoadError> {
    match value {
        toml::Value::String(text) if text.contains('$') => {
            *text = expand(text, key, env, files)?;
        }
        toml::Value::Array(items) => {
            for (index, item) in items.iter_mut().enumerate() {
                let len = key.len();
                key.push_str(&format!("[{index}]"));
                substitute(item, key, env, files)?;
                key.truncate(len);
            }
        }
        toml::Value::Table(table) => {
            for (name, item) in table.iter_mut() {
                let len = key.len();
                if !key.is_empty() {
                    key.push('.');
                }
                key.push_str(name);
                substitute(item, key, env, files)?;
                key.truncate(len);
            }
        }
        _ => {}
    }
    Ok(())
}

fn expand(
    text: &str,
    key: &str,
    env: &impl Fn(&str) -> Option<String>,
    files: &mut Vec<PathBuf>,
) -> Result<String, LoadError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('$') {
        out.push_str(&rest[..start]);
        let after = &rest[start..];
        if let Some(literal) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = literal;
        } else if let Some(body) = after.strip_prefix("${") {
            let end = body.find('}').ok_or_else(|| LoadError::Shape {
                key: key.to_owned(),
                message: "unterminated ${ in value".into(),
            })?;
            let name = &body[..end];
            if let Some(path) = name.strip_prefix("file:") {
                let secret =
                    std::fs::read_to_string(path).map_err(|error| LoadError::SecretFile {
                        key: key.to_owned(),
                        path: path.to_owned(),
                        message: error.to_string(),
                    })?;
                // Mounted secrets usually end with a newline that is not part of the secret.
                out.push_str(secret.trim_end_matches(['\n', '\r']));
                files.push(PathBuf::from(path));
                rest = &body[end + 1..];
                continue;
            }
            let is_name = !name.is_empty()
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                && !name.as_bytes()[0].is_ascii_digit();
            if !is_name {
                return Err(LoadError::Shape {
                    key: key.to_owned(),
                    message: format!("`${{{name}}}` is not an environment variable name"),
                });
            }
            let value = env(name)
                .ok_or_else(|| LoadError::Env { key: key.to_owned(), name: name.to_owned() })?;
            out.push_str(&value);
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests;
