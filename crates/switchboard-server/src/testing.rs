//! Test support for the request path on tokio's paused clock: a server whose providers are
//! scripted fakes, driven through its hook router without sockets.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use axum::http::Request;
use switchboard_core::{Channel, ErrorClass, OutboundMessage, ProviderId};
use switchboard_providers::{Accepted, Provider, ProviderError, SharedProvider};
use tokio::time::Instant;
use tower::ServiceExt as _;

use crate::listener::Arrival;
use crate::okta::OktaAnswer;
use crate::{Server, Settings};

/// The hook secret the harness's Okta sends.
pub(crate) const SECRET: &str = "paused-clock-secret-0123456789";

/// What a fake provider does with each send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Accepts after `latency`.
    Accept { latency: Duration },
    /// Answers 503 at once: nothing was sent.
    Refuse,
    /// Takes the request and never answers; the adapter's timeout ends the wait, and the
    /// message may have been accepted.
    Hang,
    /// Answers at once with an error of this class (a number-level verdict, say); nothing was
    /// sent.
    Reject(ErrorClass),
}

/// A provider that does what its [`Mode`] says and remembers when each send started.
#[derive(Debug)]
pub(crate) struct Fake {
    id: ProviderId,
    timeout: Duration,
    mode: Mutex<Mode>,
    sends: Mutex<Vec<(Instant, String)>>,
}

impl Fake {
    pub(crate) fn set(&self, mode: Mode) {
        *lock(&self.mode) = mode;
    }

    /// When each send started, and the event it was for.
    pub(crate) fn sends(&self) -> Vec<(Instant, String)> {
        lock(&self.sends).clone()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[async_trait]
impl Provider for Fake {
    fn id(&self) -> &ProviderId {
        &self.id
    }

    fn kind(&self) -> &'static str {
        "fake"
    }

    fn supports(&self, _channel: Channel) -> bool {
        true
    }

    async fn send(&self, message: &OutboundMessage) -> Result<Accepted, ProviderError> {
        lock(&self.sends).push((Instant::now(), message.reference.clone()));
        let mode = *lock(&self.mode);
        match mode {
            Mode::Accept { latency } => {
                tokio::time::sleep(latency).await;
                let n = lock(&self.sends).len();
                Ok(Accepted { message_id: format!("{}-{n}", self.id) })
            }
            Mode::Refuse => Err(ProviderError::not_sent("fake", ErrorClass::Transient, "503")),
            Mode::Reject(class) => Err(ProviderError::not_sent("fake", class, "rejected")),
            Mode::Hang => {
                tokio::time::sleep(self.timeout).await;
                Err(ProviderError::possibly_accepted("fake", ErrorClass::Timeout, "timed out"))
            }
        }
    }

    async fn probe(&self) -> Result<(), ProviderError> {
        Ok(())
    }
}

/// A server in front of fakes named `primary` and `backup` (one cascade rule, in that order),
/// with `extra` TOML appended to a realistic configuration.
pub(crate) fn server(extra: &str, primary: Mode, backup: Mode) -> (Server, Arc<Fake>, Arc<Fake>) {
    server_with(Config { extra, ..Config::default() }, primary, backup)
}

/// Additions to the harness's configuration.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Config<'a> {
    /// Keys for `[server]`.
    pub(crate) server: &'a str,
    /// Keys for `[okta]`.
    pub(crate) okta: &'a str,
    /// Keys for `[guard]` (by default it only watches: most of these tests are about delivery;
    /// its limits count on tokio's clock, so paused time refills them).
    pub(crate) guard: &'a str,
    /// Whole sections appended at the end.
    pub(crate) extra: &'a str,
    /// Keys for `[providers.primary]`.
    pub(crate) primary: &'a str,
}

impl Default for Config<'_> {
    fn default() -> Self {
        Config { server: "", okta: "", guard: "mode = \"monitor\"", extra: "", primary: "" }
    }
}

/// [`server`], with more configuration.
pub(crate) fn server_with(
    config: Config<'_>,
    primary: Mode,
    backup: Mode,
) -> (Server, Arc<Fake>, Arc<Fake>) {
    let Config { server: server_keys, okta: okta_keys, guard, extra, primary: primary_keys } =
        config;
    let config = format!(
        r#"
[server]
listen = "127.0.0.1:0"
{server_keys}

[okta]
deadline_ms = 2500
{okta_keys}
[okta.auth]
secrets = ["{SECRET}"]

[logging]
phone_hash_key = "paused-clock-phone-key"

[guard]
{guard}

[providers.primary]
kind = "twilio"
account_sid = "AC11111111111111111111111111111111"
auth_token = "primary-token"
from = "+15005550006"
base_url = "http://127.0.0.1:9"
timeout_ms = 1000
{primary_keys}

[providers.backup]
kind = "twilio"
account_sid = "AC22222222222222222222222222222222"
auth_token = "backup-token"
from = "+15005550006"
base_url = "http://127.0.0.1:9"
timeout_ms = 1000

[[routes]]
countries = ["*"]
providers = ["primary", "backup"]
{extra}
"#
    );
    let mut settings = Settings::parse(&config, |_| None).expect("the harness config is valid");
    let fake = |name: &str, mode| {
        Arc::new(Fake {
            id: ProviderId::parse(name).expect("a valid id"),
            timeout: Duration::from_millis(1_000),
            mode: Mutex::new(mode),
            sends: Mutex::new(Vec::new()),
        })
    };
    let (primary, backup) = (fake("primary", primary), fake("backup", backup));
    settings.providers =
        vec![Arc::clone(&backup) as SharedProvider, Arc::clone(&primary) as SharedProvider];
    (Server::new(settings), primary, backup)
}

/// Okta's request for event `event_id`: an SMS code to a US number, expiring `life` from now.
pub(crate) fn okta_body(event_id: &str, phone: &str, life: Duration) -> String {
    crate::okta::OktaRequest::sms(phone, "482915")
        .event_id(event_id)
        .without_template()
        .locale("en-US")
        .expires_in(life)
        .to_string()
}

/// Posts `body` to the hook as Okta would, as if its first byte arrived at `arrival`; returns
/// the status and the JSON answer.
pub(crate) async fn post(
    router: &Router,
    body: String,
    arrival: Option<Instant>,
) -> (u16, serde_json::Value) {
    let mut request = Request::post("/okta/telephony")
        .header("content-type", "application/json")
        .header("authorization", SECRET)
        .body(Body::from(body))
        .expect("a valid request");
    if let Some(arrival) = arrival {
        request.extensions_mut().insert(Arrival(arrival));
    }
    let response = router.clone().oneshot(request).await.expect("the router is infallible");
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.expect("a body");
    (status, serde_json::from_slice(&bytes).expect("a JSON answer"))
}

/// `transactionMetadata` of an answer, as key=value pairs.
pub(crate) fn metadata(answer: &serde_json::Value, key: &str) -> String {
    OktaAnswer::from_json(answer)
        .ok()
        .and_then(|answer| answer.metadata(key).map(str::to_owned))
        .unwrap_or_default()
}

/// Okta's status in an answer.
pub(crate) fn status(answer: &serde_json::Value) -> &'static str {
    OktaAnswer::from_json(answer).map_or("", |answer| answer.status.as_str())
}
