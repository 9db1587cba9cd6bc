//! The accept loop for both listeners, with the limits `axum::serve` does not expose.
//!
//! The hook listener faces the internet and every request it accepts can cost money, so slow and
//! oversized requests are cut off before any handler runs: headers must arrive within
//! [`HEADER_READ_TIMEOUT`] (slowloris), at most [`MAX_HEADERS`] of them in at most
//! [`MAX_HEADER_BYTES`] (hyper answers 431 past that). Bodies are capped and timed by layers on
//! the router. HTTP/1.1 only: it is what Okta speaks.

use std::future::Future;
use std::io;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

/// Time allowed from accepting a connection (or finishing a request on it) to a complete
/// request head.
pub(crate) const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Most header fields in one request; Okta sends about ten.
pub(crate) const MAX_HEADERS: usize = 64;
/// Most bytes of request head hyper buffers (its minimum is 8 KiB).
pub(crate) const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Serves `router` on `listener` until `shutdown` completes, then stops accepting and waits for
/// open connections to finish their requests.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _peer)) => stream,
                    Err(error) => {
                        // Out of file descriptors and similar: back off instead of spinning.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                if let Err(error) = stream.set_nodelay(true) {
                    tracing::debug!(%error, "cannot set TCP_NODELAY");
                }
                let service = TowerToHyperService::new(router.clone());
                let connection = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_READ_TIMEOUT)
                    .max_headers(MAX_HEADERS)
                    .max_buf_size(MAX_HEADER_BYTES)
                    .serve_connection(TokioIo::new(stream), service);
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    if let Err(error) = connection.await {
                        tracing::debug!(%error, "connection ended with an error");
                    }
                });
            }
        }
    }
    graceful.shutdown().await;
    Ok(())
}
