//! `spawn_app`: a server on `127.0.0.1:0` in front of two Twilio emulators, with its logs
//! captured, as zero-to-production's helpers do it.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use switchboard_server::okta::{OktaAnswer, OktaRequest, metadata_item};
use switchboard_server::{Server, Settings};
use switchboard_sim::twilio::{ReceivedSend, RunningEmulator, TwilioAccount, TwilioEmulator};

pub(crate) const SECRET: &str = "test-hook-secret-0123456789";
pub(crate) const ADMIN_TOKEN: &str = "test-admin-token-0123456789";
pub(crate) const PRIMARY_SID: &str = "AC11111111111111111111111111111111";
pub(crate) const BACKUP_SID: &str = "AC22222222222222222222222222222222";

/// Knobs a test may turn; everything else is a fixed, realistic config.
pub(crate) struct AppOptions {
    pub(crate) report: &'static str,
    pub(crate) deadline_ms: u64,
    pub(crate) primary_timeout_ms: u64,
    pub(crate) consecutive_failures: u32,
    pub(crate) retry_backoff_ms: u64,
    pub(crate) max_attempts: u32,
    /// TOML appended to the config (extra sections such as `[guard.sms]`).
    pub(crate) extra: &'static str,
    /// Extra keys for the `[health]` table (`receipt_grace_ms = 1000`).
    pub(crate) health: &'static str,
    /// Extra keys for the one route rule (`strategy = "hedge"`).
    pub(crate) route: &'static str,
    /// Replaces the primary with a provider whose `send` panics (the canary's forced panic).
    pub(crate) panicking_primary: bool,
    /// Replaces the `[okta.auth]` table (header secret mode by default).
    pub(crate) okta_auth: Option<String>,
    /// Seeds the planner's RNG (exploration draws), for tests that count explorations.
    pub(crate) rng_seed: Option<u64>,
    /// Tables added after `[okta.auth]` (`[okta.events]`, `[okta.system_log]`), built at run
    /// time.
    pub(crate) okta_tables: String,
    /// A `[state]` table (Redis mode), built at run time; see [`spawn_fleet`].
    pub(crate) state: String,
    /// The emulators to use instead of starting two: a replica shares its fleet's.
    pub(crate) emulators: Option<(Arc<RunningEmulator>, Arc<RunningEmulator>)>,
}

impl Default for AppOptions {
    fn default() -> Self {
        AppOptions {
            report: "always_success",
            deadline_ms: 2500,
            primary_timeout_ms: 400,
            consecutive_failures: 5,
            retry_backoff_ms: 2000,
            max_attempts: 4,
            extra: "",
            health: "",
            route: "",
            panicking_primary: false,
            okta_auth: None,
            rng_seed: None,
            okta_tables: String::new(),
            state: String::new(),
            emulators: None,
        }
    }
}

pub(crate) struct TestApp {
    pub(crate) hook_url: String,
    pub(crate) admin_url: String,
    pub(crate) primary: Arc<RunningEmulator>,
    pub(crate) backup: Arc<RunningEmulator>,
    pub(crate) client: reqwest::Client,
    pub(crate) logs: LogCapture,
    pub(crate) server: Server,
    pub(crate) config_path: std::path::PathBuf,
    pub(crate) secret_file: std::path::PathBuf,
    _dir: tempfile::TempDir,
    _log_guard: tracing::subscriber::DefaultGuard,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub(crate) async fn spawn_app() -> TestApp {
    spawn_app_with(AppOptions::default()).await
}

pub(crate) async fn spawn_app_with(options: AppOptions) -> TestApp {
    let logs = LogCapture::default();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(logs.clone())
        .finish();
    let log_guard = tracing::subscriber::set_default(subscriber);

    // The hook secret comes from a mounted-secret file, as in production.
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("okta-hook-secret");
    std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
    let (primary, backup) = match options.emulators.clone() {
        Some(emulators) => emulators,
        None => (
            Arc::new(
                TwilioEmulator::start(TwilioAccount::new(PRIMARY_SID, "primary-token"))
                    .await
                    .unwrap(),
            ),
            Arc::new(
                TwilioEmulator::start(TwilioAccount::new(BACKUP_SID, "backup-token"))
                    .await
                    .unwrap(),
            ),
        ),
    };
    let header_auth = format!(
        "[okta.auth]\nheader = \"Authorization\"\nsecrets = [\"${{file:{}}}\", \"previous-secret-0123456789\"]",
        secret_file.display()
    );
    // Bound first: providers must know the public URL their receipts go to.
    let hook_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let public_base_url = format!("http://{}", hook_listener.local_addr().unwrap());
    let config = format!(
        r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
public_base_url = "{public_base_url}"

[okta]
deadline_ms = {deadline_ms}
report = "{report}"
default_region = "US"

{okta_auth}
{okta_tables}

[admin]
token = "{ADMIN_TOKEN}"

[logging]
phone_hash_key = "test-phone-hash-key"

[delivery]
retry_backoff_ms = {retry_backoff_ms}
max_attempts = {max_attempts}

[health]
consecutive_failures = {consecutive_failures}
{health}

[providers.twilio-primary]
kind = "twilio"
account_sid = "{PRIMARY_SID}"
auth_token = "primary-token"
from = "+15005550006"
base_url = "{primary_url}"
timeout_ms = {primary_timeout_ms}

[providers.twilio-backup]
kind = "twilio"
account_sid = "{BACKUP_SID}"
auth_token = "backup-token"
from = "+15005550006"
base_url = "{backup_url}"
timeout_ms = 1000

[[routes]]
countries = ["*"]
providers = ["twilio-primary", "twilio-backup"]
{route}

{extra}

{state}
"#,
        deadline_ms = options.deadline_ms,
        report = options.report,
        consecutive_failures = options.consecutive_failures,
        retry_backoff_ms = options.retry_backoff_ms,
        max_attempts = options.max_attempts,
        extra = options.extra,
        health = options.health,
        route = options.route,
        primary_timeout_ms = options.primary_timeout_ms,
        okta_auth = options.okta_auth.clone().unwrap_or(header_auth),
        okta_tables = options.okta_tables,
        state = options.state,
        primary_url = primary.base_url(),
        backup_url = backup.base_url(),
    );
    let config_path = dir.path().join("switchboard.toml");
    std::fs::write(&config_path, &config).unwrap();
    let mut settings = Settings::load(&config_path).unwrap();
    if options.panicking_primary {
        for provider in &mut settings.providers {
            if provider.id().as_str() == "twilio-primary" {
                *provider = std::sync::Arc::new(PanickingProvider(provider.id().clone()));
            }
        }
    }
    let path = settings.okta.path.clone();
    let hook_url = format!("http://{}{path}", hook_listener.local_addr().unwrap());
    let admin_url = format!("http://{}", admin_listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let mut server = Server::new(settings).with_source(config_path.clone());
    if let Some(seed) = options.rng_seed {
        server = server.with_rng_seed(seed);
    }
    let handle = server.clone();
    tokio::spawn(server.run(hook_listener, admin_listener, Duration::from_secs(1), async move {
        let _ = stopped.await;
    }));
    TestApp {
        hook_url,
        admin_url,
        primary,
        backup,
        client: reqwest::Client::builder().no_proxy().build().unwrap(),
        logs,
        server: handle,
        config_path,
        secret_file,
        _dir: dir,
        _log_guard: log_guard,
        stop: Some(stop),
    }
}

impl TestApp {
    /// POSTs `body` with the right secret.
    pub(crate) async fn hook(&self, body: &serde_json::Value) -> reqwest::Response {
        self.client
            .post(&self.hook_url)
            .header("Authorization", SECRET)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// POSTs and returns the status and the JSON answer.
    pub(crate) async fn hook_json(&self, body: &serde_json::Value) -> (u16, serde_json::Value) {
        let response = self.hook(body).await;
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    /// A request to the admin API with the admin token.
    pub(crate) fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.admin_url))
            .header("Authorization", format!("Bearer {ADMIN_TOKEN}"))
    }

    /// `GET /admin/explain` for `number` (URL-encoded by the caller), as text.
    pub(crate) async fn explain_text(&self, number: &str) -> String {
        let path = format!("/admin/explain?number={number}&format=text");
        self.admin(reqwest::Method::GET, &path).send().await.unwrap().text().await.unwrap()
    }

    pub(crate) async fn metrics(&self) -> String {
        self.client
            .get(format!("{}/metrics", self.admin_url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub(crate) fn sends(&self) -> (Vec<ReceivedSend>, Vec<ReceivedSend>) {
        (self.primary.received(), self.backup.received())
    }
}

/// A provider that panics on send: a bug in an adapter, as the canary test forces one.
#[derive(Debug)]
struct PanickingProvider(switchboard_core::ProviderId);

#[async_trait::async_trait]
impl switchboard_providers::Provider for PanickingProvider {
    fn id(&self) -> &switchboard_core::ProviderId {
        &self.0
    }
    fn kind(&self) -> &'static str {
        "panicking"
    }
    fn supports(&self, _channel: switchboard_core::Channel) -> bool {
        true
    }
    async fn send(
        &self,
        _message: &switchboard_core::OutboundMessage,
    ) -> Result<switchboard_providers::Accepted, switchboard_providers::ProviderError> {
        panic!("forced panic in a provider adapter (canary test)");
    }
    async fn probe(&self) -> Result<(), switchboard_providers::ProviderError> {
        Ok(())
    }
}

/// Okta's documented sample, with an E.164 number (as real traffic sends it), a given code and
/// channel (spelled as given: `SMS`, `CALL`, `voice call`), and a fresh event id.
pub(crate) fn okta_request(
    event_id: &str,
    phone: &str,
    code: &str,
    channel: &str,
) -> serde_json::Value {
    let mut request = OktaRequest::sms(phone, code)
        .delivery_channel(channel)
        .event_id(event_id)
        .template(format!("(HOOK)Your code is {code}"))
        .expires(time::macros::datetime!(2099-01-28 21:48:34.321 UTC))
        .user_id("00uyxxSknGtK8022w0g3")
        .ip_address("203.0.113.9")
        .to_json();
    // The rest of Okta's sample: fields the hook does not read and must not trip over.
    request["eventTypeVersion"] = "1.0".into();
    request["contentType"] = "application/json".into();
    request["cloudEventVersion"] = "0.1".into();
    request["source"] = "https://example.okta.com/api/v1/inlineHooks/calz6lVQA77AwFeEe0g3".into();
    let context = &mut request["data"]["context"]["request"];
    context["id"] = "reqRgSk8IBBRhuo0YdlEDTmUw".into();
    context["method"] = "POST".into();
    context["url"] = serde_json::json!({
        "value": "/api/internal/v1/inlineHooks/com.okta.telephony.provider/generatePreview"
    });
    let user = &mut request["data"]["userProfile"];
    user["firstName"] = "test".into();
    user["lastName"] = "user".into();
    user["login"] = "test.user@okta.com".into();
    request
}

/// The single action value of an Okta answer, after checking the envelope's exact shape as
/// Okta reads it: one command of type `com.okta.telephony.action` whose `value` is an array (not
/// an object) of one action.
pub(crate) fn action(answer: &serde_json::Value) -> &serde_json::Value {
    if let Err(error) = OktaAnswer::from_json(answer) {
        panic!("not an answer Okta reads ({error}): {answer}");
    }
    &answer["commands"][0]["value"][0]
}

/// Reads a `key=value` item from `transactionMetadata`.
pub(crate) fn metadata<'a>(action: &'a serde_json::Value, key: &str) -> &'a str {
    let text = action["transactionMetadata"].as_str().expect("transactionMetadata is a string");
    metadata_item(text, key).unwrap_or_else(|| panic!("no {key} in {text}"))
}

/// Everything the server logged, as text, with a way to await a line.
#[derive(Clone)]
pub(crate) struct LogCapture {
    bytes: Arc<Mutex<Vec<u8>>>,
    writes: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Default for LogCapture {
    fn default() -> Self {
        LogCapture { bytes: Arc::default(), writes: Arc::new(tokio::sync::watch::channel(0).0) }
    }
}

impl LogCapture {
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes.lock().unwrap()).into_owned()
    }

    /// Completes when the logs contain `needle` (awaits writes; never polls on a timer).
    pub(crate) async fn wait_for(&self, needle: &str) {
        let mut writes = self.writes.subscribe();
        let _ = writes.wait_for(|_| self.text().contains(needle)).await;
    }

    /// Completes when a log line satisfies `is_match`.
    /// Waits until `needle` has been logged at least `count` times.
    pub(crate) async fn wait_for_count(&self, needle: &str, count: usize) {
        let mut writes = self.writes.subscribe();
        let _ = writes.wait_for(|_| self.text().matches(needle).count() >= count).await;
    }

    pub(crate) async fn wait_for_line(&self, is_match: impl Fn(&str) -> bool) {
        let mut writes = self.writes.subscribe();
        let _ = writes.wait_for(|_| self.text().lines().any(&is_match)).await;
    }
}

impl Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.bytes.lock().unwrap().extend_from_slice(buf);
        self.writes.send_modify(|n| *n += 1);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogCapture {
    type Writer = LogCapture;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Bounds an await that should complete quickly, so a regression fails instead of hanging.
/// Replicas sharing one real `redis-server` and the same two emulators, as behind a load
/// balancer: each has its own listeners, logs and admin API.
pub(crate) struct TestFleet {
    pub(crate) apps: Vec<TestApp>,
    pub(crate) redis: switchboard_sim::redis::RedisServer,
}

impl TestFleet {
    /// Every replica's log lines: in one test's thread the last replica's subscriber captures
    /// them all (tracing's default subscriber is per thread).
    pub(crate) fn logs(&self) -> &LogCapture {
        &self.apps.last().expect("a fleet has replicas").logs
    }
}

/// `[state]` for Redis mode at `url`, with `extra` keys (`command_timeout_ms = 20`).
pub(crate) fn redis_state(url: &str, extra: &str) -> String {
    format!("[state]\nbackend = \"redis\"\nurl = \"{url}\"\nsync_interval_ms = 200\n{extra}\n")
}

/// `count` replicas built from `options` (each gets the same config), sharing a fresh Redis.
pub(crate) async fn spawn_fleet(count: usize, options: impl Fn() -> AppOptions) -> TestFleet {
    let redis = switchboard_sim::redis::RedisServer::start();
    let mut apps: Vec<TestApp> = Vec::with_capacity(count);
    for _ in 0..count {
        let mut replica = options();
        if replica.state.is_empty() {
            replica.state = redis_state(&redis.url(), "");
        }
        if let Some(first) = apps.first() {
            replica.emulators = Some((Arc::clone(&first.primary), Arc::clone(&first.backup)));
        }
        apps.push(spawn_app_with(replica).await);
    }
    TestFleet { apps, redis }
}

/// One more replica on an existing fleet's Redis and emulators: a restart, or a scale-up.
pub(crate) async fn spawn_replica(
    redis: &switchboard_sim::redis::RedisServer,
    emulators: (Arc<RunningEmulator>, Arc<RunningEmulator>),
    mut options: AppOptions,
) -> TestApp {
    if options.state.is_empty() {
        options.state = redis_state(&redis.url(), "");
    }
    options.emulators = Some(emulators);
    spawn_app_with(options).await
}

pub(crate) async fn within<T>(seconds: u64, future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(seconds), future).await.expect("timed out waiting")
}
