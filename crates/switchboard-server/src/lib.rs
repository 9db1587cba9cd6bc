//! The switchboard server: the only crate that knows Okta's JSON.
//!
//! Two listeners: the hook listener that Okta calls (authenticated, small bodies, answers by the
//! deadline whatever the providers do), and the admin listener for `/metrics`, `/healthz` and
//! `/readyz`, which should stay on a private address. Errors never reach Okta as anything but a
//! well-formed answer, and no passcode, message text, secret or full phone number reaches a log
//! line, a metric or a response.

mod auth;
mod callbacks;
pub mod config;
mod dispatch;
mod hook;
mod ledger;
mod metrics;
mod okta;
mod phone;
mod state;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{any, get, post};
use tokio::net::TcpListener;

pub use config::{LoadError, Settings};

use crate::state::Shared;

/// Largest hook body accepted. Okta's requests are about 1.5 KiB.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// A configured server, ready to serve.
#[derive(Clone, Debug)]
pub struct Server {
    shared: Arc<Shared>,
}

impl Server {
    /// Builds the server's state from validated settings. Starts nothing.
    pub fn new(settings: Settings) -> Server {
        Server { shared: Arc::new(Shared::new(settings)) }
    }

    /// The router Okta calls.
    pub fn hook_router(&self) -> Router {
        let runtime = self.shared.runtime();
        let okta = Router::new().route(&runtime.okta.path, post(hook::handle_hook)).route_layer(
            axum::middleware::from_fn_with_state(Arc::clone(&self.shared), hook::require_okta_auth),
        );
        // Provider callbacks authenticate with the provider's own signature, checked by the
        // adapter, so they sit outside Okta's authentication.
        let callbacks = Router::new()
            .route("/callbacks/{provider}", any(callbacks::handle_callback))
            .route("/callbacks/{provider}/{*rest}", any(callbacks::handle_callback));
        okta.merge(callbacks)
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
            .with_state(Arc::clone(&self.shared))
    }

    /// The admin router: `/metrics`, `/healthz`, `/readyz`.
    pub fn admin_router(&self) -> Router {
        Router::new()
            .route("/metrics", get(metrics_text))
            .route("/healthz", get(|| async { "ok\n" }))
            .route("/readyz", get(ready))
            .with_state(Arc::clone(&self.shared))
    }

    /// Replaces routes, providers and Okta settings atomically, keeping provider health.
    pub fn reload(&self, settings: Settings) {
        self.shared.reload(settings);
    }

    /// Serves both listeners until `shutdown` completes, then stops accepting, reports not
    /// ready, and waits up to `grace` for in-flight requests.
    pub async fn run(
        self,
        hook_listener: TcpListener,
        admin_listener: TcpListener,
        grace: Duration,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let shared = Arc::clone(&self.shared);
        tokio::spawn(async move {
            shutdown.await;
            shared.start_draining();
            let _ = stop_tx.send(true);
        });
        // OAuth mode: fetch Okta's signing keys now, so Okta's first call does not wait on them
        // (a failure is logged by the cache and retried on demand).
        let auth = self.shared.runtime().okta.auth.clone();
        tokio::spawn(async move { auth.warm_up().await });
        let upkeep_shared = Arc::clone(&self.shared);
        let upkeep = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                upkeep_shared.metrics.upkeep();
            }
        });

        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            // Err means the sender is gone, which also means stop.
            let _ = rx.wait_for(|stop| *stop).await;
        };
        let hook = axum::serve(hook_listener, self.hook_router())
            .with_graceful_shutdown(stopped(stop_rx.clone()));
        let admin = axum::serve(admin_listener, self.admin_router())
            .with_graceful_shutdown(stopped(stop_rx.clone()));
        let serving =
            async { tokio::try_join!(hook.into_future(), admin.into_future()).map(|_| ()) };
        let result = tokio::select! {
            result = serving => result,
            () = async {
                stopped(stop_rx).await;
                tokio::time::sleep(grace).await;
            } => {
                tracing::warn!(grace_ms = grace.as_millis() as u64, "shutdown grace period over; abandoning in-flight requests");
                Ok(())
            }
        };
        upkeep.abort();
        // Deliveries still running in the background own codes Okta was told were sent.
        self.shared.tracker.close();
        let wait = self.shared.runtime().delivery.shutdown_wait;
        if tokio::time::timeout(wait, self.shared.tracker.wait()).await.is_err() {
            tracing::warn!(
                still_running = self.shared.tracker.len(),
                wait_ms = wait.as_millis() as u64,
                "shutdown wait over; abandoning background deliveries"
            );
        }
        result
    }
}

async fn metrics_text(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    let snapshot = {
        let runtime = shared.runtime();
        let health = shared.health();
        let now = tokio::time::Instant::now().into_std();
        let mut rows: Vec<_> = runtime
            .providers
            .keys()
            .map(|id| (id.clone(), health.status(id, now), health.operator_state(id)))
            .collect();
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        rows
    };
    shared.metrics.provider_health(&snapshot);
    ([("content-type", "text/plain; version=0.0.4")], shared.metrics.render())
}

async fn ready(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    if shared.is_draining() {
        (StatusCode::SERVICE_UNAVAILABLE, "draining\n")
    } else {
        (StatusCode::OK, "ready\n")
    }
}
