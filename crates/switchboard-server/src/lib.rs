//! The switchboard server: the only crate that knows Okta's JSON.
//!
//! Two listeners: the hook listener that Okta calls (authenticated, small bodies, answers by the
//! deadline whatever the providers do), and the admin listener for `/metrics`, `/healthz` and
//! `/readyz`, which should stay on a private address. Errors never reach Okta as anything but a
//! well-formed answer, and no passcode, message text, secret or full phone number reaches a log
//! line, a metric or a response.

mod admin;
mod auth;
mod body;
mod budget;
mod callbacks;
mod clock;
pub mod config;
mod conversions;
mod dispatch;
mod events;
pub mod explain;
mod fleet;
mod guard;
mod health;
mod hook;
mod ledger;
mod listener;
mod metrics;
pub mod okta;
mod overload;
mod phone;
mod sent;
mod spend;
mod state;
mod switches;
#[cfg(test)]
mod testing;
mod throughput;
mod watch;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{any, get, post};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::{LoadError, Settings};
pub use watch::{Reload, Watcher};

use crate::state::Shared;

/// Largest body accepted on the hook listener. Okta's requests are about 1.5 KiB.
pub(crate) const MAX_BODY_BYTES: usize = 64 * 1024;
/// Time from a provider callback's arrival by which its whole body must be in.
const CALLBACK_BODY_TIME: Duration = Duration::from_secs(5);
/// Connections open at once on the admin listener.
const ADMIN_MAX_CONNECTIONS: usize = 256;

/// A configured server, ready to serve.
#[derive(Clone, Debug)]
pub struct Server {
    shared: Arc<Shared>,
    /// Cancelled when [`Server::run`] returns: background tasks tied to the server end.
    stopped: CancellationToken,
}

impl Server {
    /// Builds the server's state from validated settings. Starts nothing.
    pub fn new(settings: Settings) -> Server {
        Server { shared: Arc::new(Shared::new(settings)), stopped: CancellationToken::new() }
    }

    /// The router Okta calls.
    pub fn hook_router(&self) -> Router {
        let runtime = self.shared.runtime();
        // The hook reads its own body (within the deadline, with Okta-shaped refusals), after
        // authentication and admission control.
        let okta = Router::new().route(&runtime.okta.path, post(hook::handle_hook)).route_layer(
            axum::middleware::from_fn_with_state(Arc::clone(&self.shared), hook::require_okta_auth),
        );
        // Provider callbacks authenticate with the provider's own signature, checked by the
        // adapter, so they sit outside Okta's authentication.
        let callbacks = Router::new()
            .route("/callbacks/{provider}", any(callbacks::handle_callback))
            .route("/callbacks/{provider}/{*rest}", any(callbacks::handle_callback))
            .route_layer(axum::middleware::from_fn_with_state(
                (MAX_BODY_BYTES, CALLBACK_BODY_TIME),
                body::buffer,
            ));
        // Okta's event hook (which codes were entered), with its own header secret; mounted
        // when configured at start, so its path changes on restart.
        let okta = match &runtime.okta.events {
            Some(events) => okta.merge(
                Router::new()
                    .route(&events.path, get(events::verify).post(events::receive))
                    .route_layer(axum::middleware::from_fn_with_state(
                        Arc::clone(&self.shared),
                        events::require_events_auth,
                    )),
            ),
            None => okta,
        };
        okta.merge(callbacks).with_state(Arc::clone(&self.shared))
    }

    /// The admin router: `/metrics`, `/healthz`, `/readyz` and the admin API.
    pub fn admin_router(&self) -> Router {
        admin::router(Arc::clone(&self.shared))
    }

    /// Replaces routes, providers and Okta settings atomically, keeping provider health.
    pub fn reload(&self, settings: Settings) {
        self.shared.reload(settings);
    }

    /// Fixes the seed of the randomness routing uses (exploration), so replayed traffic takes
    /// the same decisions every time. Production servers keep the OS-seeded default.
    #[must_use]
    pub fn with_rng_seed(self, seed: u64) -> Server {
        self.shared.seed_rng(seed);
        self
    }

    /// Names the file the configuration came from, so `reload_from_source`, the admin API and
    /// [`Server::watch`] can re-read it.
    #[must_use]
    pub fn with_source(self, path: PathBuf) -> Server {
        self.shared.set_source(path);
        self
    }

    /// Re-reads the configuration file; a bad file is refused (the error names the key) and the
    /// running configuration stays in force.
    pub fn reload_from_source(&self) -> Result<(), String> {
        self.shared.reload_from_source()
    }

    /// Periodic upkeep: [`Server::run`] does it every 5 s; a caller driving the routers itself
    /// (the simulator) calls it on its own clock. Among other things it finds messages whose
    /// delivery receipt is overdue (`health.receipt_grace_ms`).
    pub fn upkeep(&self) {
        upkeep(&self.shared, tokio::time::Instant::now());
    }

    /// Polls the configuration file and the secret files it reads every `interval`, reloading
    /// when one changes. Runs until the watcher is stopped or [`Server::run`] returns; each
    /// reload's result is reported through [`Watcher::reloads`].
    pub fn watch(&self, interval: Duration) -> Watcher {
        watch::spawn(Arc::clone(&self.shared), interval, self.stopped.child_token())
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
        // However it ends, tasks tied to the server (the configuration watcher) end with it.
        let _stopped = self.stopped.clone().drop_guard();
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
                upkeep(&upkeep_shared, tokio::time::Instant::now());
            }
        });
        // Redis mode: what must be known before serving, then the bus and the sync loop.
        fleet::prime(&self.shared).await;
        fleet::spawn(&self.shared, self.stopped.child_token());
        // Okta's System Log, when [okta.system_log] is configured (now or after a reload).
        tokio::spawn(events::poll_system_log(Arc::clone(&self.shared), self.stopped.child_token()));

        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            // Err means the sender is gone, which also means stop.
            let _ = rx.wait_for(|stop| *stop).await;
        };
        let max_connections = self.shared.runtime().overload.max_connections;
        let hook = listener::serve(
            hook_listener,
            self.hook_router(),
            max_connections,
            stopped(stop_rx.clone()),
        );
        let admin = listener::serve(
            admin_listener,
            self.admin_router(),
            ADMIN_MAX_CONNECTIONS,
            stopped(stop_rx.clone()),
        );
        let serving = async { tokio::try_join!(hook, admin).map(|_| ()) };
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

/// Periodic upkeep, every 5 s while serving: the stores' (metrics, the guard's idle counters,
/// overdue receipts), sends whose codes' lives ended without a word from Okta (never entered),
/// and, without Okta's events, codes whose lives ended without a resend.
fn upkeep(shared: &Shared, now: tokio::time::Instant) {
    shared.upkeep(now);
    callbacks::record_overdue(shared, now);
    events::settle_expired(shared, now);
    events::settle_unresent(shared, now);
}
