//! The accept loop for both listeners, with the limits `axum::serve` does not expose.
//!
//! The hook listener faces the internet and every request it accepts can cost money, so slow and
//! oversized requests are cut off before any handler runs: headers must arrive within
//! [`HEADER_READ_TIMEOUT`] (slowloris), at most [`MAX_HEADERS`] of them in at most
//! [`MAX_HEADER_BYTES`] (hyper answers 431 past that), and at most `max_connections` are open at
//! once (past that the loop stops accepting and the kernel's backlog holds the rest), so memory
//! stays bounded under any load. Bodies are capped and timed by the handlers. HTTP/1.1 only: it
//! is what Okta speaks.
//!
//! Every request carries its [`Arrival`]: when its first byte was read from the socket. Okta's
//! 3 seconds start when it sends, so the answer deadline must start there too, not once the
//! head or the body has been parsed (a body sent in two parts 1.5 s apart would otherwise be
//! answered 1.5 s late, and so would every request that queued behind a busy runtime).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tower::ServiceExt as _;

/// Time allowed from accepting a connection (or finishing a request on it) to a complete
/// request head.
pub(crate) const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Most header fields in one request; Okta sends about ten.
pub(crate) const MAX_HEADERS: usize = 64;
/// Most bytes of request head hyper buffers (its minimum is 8 KiB).
pub(crate) const MAX_HEADER_BYTES: usize = 16 * 1024;

/// When a request's first byte arrived: a request extension set by the accept loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Arrival(pub(crate) Instant);

impl Arrival {
    /// The request's arrival, or now for a request that did not come through the accept loop
    /// (a router driven directly in a test).
    pub(crate) fn of(request: &Request) -> Instant {
        request.extensions().get::<Arrival>().map_or_else(Instant::now, |arrival| arrival.0)
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then stops accepting and waits for
/// open connections to finish their requests. At most `max_connections` are open at once.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    max_connections: usize,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let graceful = GracefulShutdown::new();
    let open = Arc::new(Semaphore::new(max_connections.max(1)));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = Arc::clone(&open).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_closed) => break,
            },
        };
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
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
        let clock = Arc::new(ArrivalClock::default());
        let stamped = Stamped { inner: stream, clock: Arc::clone(&clock) };
        let service = router.clone().map_request(move |mut request: Request<_>| {
            request.extensions_mut().insert(Arrival(clock.arrival()));
            request
        });
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .max_headers(MAX_HEADERS)
            .max_buf_size(MAX_HEADER_BYTES)
            .serve_connection(TokioIo::new(stamped), TowerToHyperService::new(service));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended with an error");
            }
            drop(permit);
        });
    }
    graceful.shutdown().await;
    Ok(())
}

/// When the request being read on one connection began to arrive. HTTP/1.1 answers requests in
/// order, so the first bytes read after a response was written begin the next request. With
/// pipelining a request is stamped when the one before it arrived: earlier, which errs on the
/// side of answering in time.
#[derive(Debug)]
struct ArrivalClock {
    state: Mutex<ClockState>,
}

#[derive(Debug, Clone, Copy)]
struct ClockState {
    arrival: Instant,
    is_between_requests: bool,
}

impl Default for ArrivalClock {
    fn default() -> ArrivalClock {
        let state = ClockState { arrival: Instant::now(), is_between_requests: true };
        ArrivalClock { state: Mutex::new(state) }
    }
}

impl ArrivalClock {
    fn arrival(&self) -> Instant {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner).arrival
    }

    fn on_read(&self) {
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if state.is_between_requests {
            state.arrival = Instant::now();
            state.is_between_requests = false;
        }
    }

    fn on_write(&self) {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner).is_between_requests =
            true;
    }
}

/// A connection's socket, stamping its [`ArrivalClock`] as bytes come and go.
struct Stamped<S> {
    inner: S,
    clock: Arc<ArrivalClock>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Stamped<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.clock.on_read();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Stamped<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.clock.on_write();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.clock.on_write();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_request_is_stamped_with_its_first_byte_and_the_next_after_the_answer() {
        let clock = ArrivalClock::default();
        let opened = Instant::now();
        tokio::time::advance(Duration::from_millis(700)).await;
        clock.on_read();
        let first = Instant::now();
        assert_eq!(clock.arrival(), first);
        assert!(first > opened, "an idle connection does not age the request");
        // More of the same request (the rest of the body, 1.5 s later) keeps the stamp.
        tokio::time::advance(Duration::from_millis(1_500)).await;
        clock.on_read();
        assert_eq!(clock.arrival(), first);
        // The answer goes out; the next bytes are the next request.
        clock.on_write();
        tokio::time::advance(Duration::from_millis(200)).await;
        clock.on_read();
        assert_eq!(clock.arrival(), first + Duration::from_millis(1_700));
    }
}
