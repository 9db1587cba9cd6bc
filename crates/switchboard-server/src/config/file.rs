//! The file as the operator writes it: one serde struct per section, with the documented
//! defaults. Nothing here is validated; [`Settings::from_file`](super::Settings::from_file) does
//! that.

use std::collections::BTreeMap;
use std::path::PathBuf;

use secrecy::SecretString;
use serde::Deserialize;
use switchboard_core::health::HealthConfig;
use switchboard_core::price::PriceConfig;
use switchboard_core::route::RouteConfig;
use switchboard_providers::ProviderConfig;

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
    /// Where the state replicas share lives.
    #[serde(default)]
    pub state: super::state::StateConfig,
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
    /// `[okta.events]`: the event hook through which Okta says which codes were entered. Its
    /// presence turns it on.
    #[serde(default)]
    pub events: Option<OktaEventsConfig>,
    /// `[okta.system_log]`: polling Okta's System Log for the same events, instead of (or as
    /// well as) the event hook. Optional.
    #[serde(default)]
    pub system_log: Option<SystemLogConfig>,
}

/// `[okta.events]`: Okta's event hook, reporting MFA verifications and factor activations, so
/// that providers are judged by whether their codes were entered.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OktaEventsConfig {
    /// Path of the event hook endpoint, on the hook listener. Default `/okta/events`; must
    /// differ from `okta.path`. Needs a restart.
    #[serde(default = "default_events_path")]
    pub path: String,
    /// How Okta authenticates its event deliveries.
    #[serde(default = "default_events_auth")]
    pub auth: EventsAuthConfig,
}

/// `[okta.events.auth]`: the header and secret set in the event hook's authentication field in
/// Okta (event hooks have no other method).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsAuthConfig {
    /// The header Okta sends the secret in. Default `Authorization`.
    #[serde(default)]
    pub header: Option<String>,
    /// One or two accepted values (two while rotating), at least 16 characters each.
    #[serde(default)]
    pub secrets: Vec<SecretString>,
}

/// `[okta.system_log]`: poll `GET {org_url}/api/v1/logs` for the same events the event hook
/// delivers.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SystemLogConfig {
    /// The Okta org, `https://example.okta.com`.
    pub org_url: String,
    /// An Okta API token (sent as `Authorization: SSWS <token>`); read-only admin suffices.
    pub api_token: SecretString,
    /// Seconds between polls once caught up. 10..=3600, default 60.
    #[serde(default = "default_system_log_interval_s")]
    pub interval_s: u64,
}

fn default_events_path() -> String {
    "/okta/events".into()
}
fn default_events_auth() -> EventsAuthConfig {
    EventsAuthConfig { header: None, secrets: Vec::new() }
}
fn default_system_log_interval_s() -> u64 {
    60
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
pub(super) fn default_auth_header() -> &'static str {
    "Authorization"
}
