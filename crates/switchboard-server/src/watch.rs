//! Hot reload: poll the configuration file and the secret files it reads, and reload when one
//! changes. The watcher ends when its owner stops it or when the server stops, and every reload
//! it attempts is reported to its owner (a refused one is also logged and counted, and the
//! running configuration stays).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::state::Shared;

/// A reload the watcher attempted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reload {
    /// `Ok`, or why the file was refused (naming the key); the running configuration stayed.
    pub result: Result<(), String>,
    /// Reloads refused since the watcher started, this one included.
    pub failures: u64,
}

/// A running configuration watcher, from [`crate::Server::watch`].
#[derive(Debug)]
pub struct Watcher {
    task: JoinHandle<()>,
    stop: CancellationToken,
    reloads: watch::Receiver<Option<Reload>>,
}

impl Watcher {
    /// The latest reload, updated after each one: `changed().await` waits for the next.
    pub fn reloads(&self) -> watch::Receiver<Option<Reload>> {
        self.reloads.clone()
    }

    /// Stops polling and waits for the task to end.
    pub async fn stop(self) {
        self.stop.cancel();
        // The task only ends by cancellation; a panic in it has been reported already.
        let _ = self.task.await;
    }

    /// Stops polling without waiting.
    pub fn abort(&self) {
        self.stop.cancel();
        self.task.abort();
    }

    /// Whether the task has ended (stopped, aborted, or the server stopped).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

/// Starts polling every `interval` until `stop` is cancelled.
pub(crate) fn spawn(shared: Arc<Shared>, interval: Duration, stop: CancellationToken) -> Watcher {
    let (report, reloads) = watch::channel(None);
    // Taken now, not in the task: a change made before the task first runs must count.
    let seen = shared.source_fingerprint();
    let task = tokio::spawn(poll(shared, interval, seen, stop.clone(), report));
    Watcher { task, stop, reloads }
}

async fn poll(
    shared: Arc<Shared>,
    interval: Duration,
    mut seen: Vec<Option<std::time::SystemTime>>,
    stop: CancellationToken,
    report: watch::Sender<Option<Reload>>,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failures = 0;
    loop {
        tokio::select! {
            biased;
            () = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        let now = shared.source_fingerprint();
        if now == seen {
            continue;
        }
        seen = now;
        tracing::info!("configuration or a secret file changed; reloading");
        // Logged and counted inside; on an error the running configuration stays.
        let result = shared.reload_from_source();
        failures += u64::from(result.is_err());
        report.send_replace(Some(Reload { result, failures }));
    }
    tracing::debug!("configuration watcher stopped");
}

#[cfg(test)]
mod tests;
