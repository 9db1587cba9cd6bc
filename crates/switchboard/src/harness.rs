//! What the commands that drive the real server with made-up Okta traffic share: the requests
//! (demo, simulator, chaos harness), the server on loopback and a nearest-rank percentile (demo
//! and chaos harness; the simulator serves through the router without sockets, and ranks its
//! never-accepted OTPs on purpose, so it keeps its own quantile).

use std::time::Duration;

use anyhow::Context;
use switchboard_core::Channel;
use switchboard_server::Server;
use switchboard_server::okta::OktaRequest;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The end user's address in every made-up request (a documentation range).
const USER_ADDRESS: &str = "198.51.100.7";
/// How long a stopping server may take to finish the answers in flight.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// Made-up request `index`'s six-digit code. 7,919 is prime to 10^6, so codes are distinct for
/// up to a million requests whatever the `offset`.
pub(crate) fn passcode(index: u64, offset: u64) -> String {
    format!("{:06}", (index * 7_919 + offset) % 1_000_000)
}

/// Made-up request `index`: a user of its own, every user behind one address.
pub(crate) fn okta_request(index: u64, channel: Channel, phone: &str, code: &str) -> OktaRequest {
    OktaRequest::new(channel, phone, code)
        .user_id(format!("00u{index:017}"))
        .ip_address(USER_ADDRESS)
}

/// The two loopback listeners a [`LoopbackServer`] serves on, bound before the server is built
/// so that its configuration can name the hook listener (`server.public_base_url`, where
/// providers post their receipts).
pub(crate) struct LoopbackListeners {
    hook: tokio::net::TcpListener,
    admin: tokio::net::TcpListener,
}

impl LoopbackListeners {
    /// Binds two free loopback ports.
    pub(crate) async fn bind() -> anyhow::Result<LoopbackListeners> {
        let hook = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        Ok(LoopbackListeners { hook, admin })
    }

    /// `http://127.0.0.1:PORT`: the hook listener, as providers reach it.
    pub(crate) fn hook_base_url(&self) -> anyhow::Result<String> {
        Ok(format!("http://{}", self.hook.local_addr()?))
    }
}

/// The real server on two loopback ports, stopped when told or when this is dropped.
pub(crate) struct LoopbackServer {
    /// The hook's URL.
    pub(crate) hook_url: String,
    /// The admin listener's base URL (`/metrics`).
    pub(crate) admin_url: String,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

impl LoopbackServer {
    /// Serves `server` with its hook at `hook_path`, on two free ports.
    pub(crate) async fn start(server: Server, hook_path: &str) -> anyhow::Result<LoopbackServer> {
        LoopbackServer::serve(LoopbackListeners::bind().await?, server, hook_path)
    }

    /// Serves `server` with its hook at `hook_path` on `listeners`.
    pub(crate) fn serve(
        listeners: LoopbackListeners,
        server: Server,
        hook_path: &str,
    ) -> anyhow::Result<LoopbackServer> {
        let LoopbackListeners { hook: hook_listener, admin: admin_listener } = listeners;
        let hook_url = format!("http://{}{hook_path}", hook_listener.local_addr()?);
        let admin_url = format!("http://{}", admin_listener.local_addr()?);
        let (stop, stopped) = oneshot::channel::<()>();
        let task =
            tokio::spawn(server.run(hook_listener, admin_listener, STOP_GRACE, async move {
                // A sent value and a dropped sender both mean "stop".
                match stopped.await {
                    Ok(()) | Err(_) => {}
                }
            }));
        Ok(LoopbackServer { hook_url, admin_url, stop, task })
    }

    /// Stops the server and waits until it has.
    pub(crate) async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.task.await.context("server task")?.context("server")
    }
}

/// The value at rank `p` (0 to 1) of `sorted`, rounded to the nearest rank; zero when empty.
pub(crate) fn percentile<T: Copy + Default>(sorted: &[T], p: f64) -> T {
    match sorted.len() {
        0 => T::default(),
        len => sorted[((len - 1) as f64 * p).round() as usize],
    }
}
