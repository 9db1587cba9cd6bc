//! The accept loop every emulator runs on: HTTP/1.1 over tokio, one task per connection.
//!
//! Why not `axum::serve`: it owns each socket, so a handler cannot make the client see a broken
//! connection. Here every request carries a [`ConnectionControl`] in its extensions; a handler
//! that calls [`ConnectionControl::reset`] gets its connection dropped with `SO_LINGER` zero, so
//! the kernel sends a TCP RST instead of an orderly FIN, after the request was read. That is the
//! failure an adapter must classify as "possibly accepted".
//!
//! Shutdown is abrupt on purpose: in-flight requests (hung ones included) are dropped, which is
//! what a client of a dying provider sees.

use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, oneshot};
use tokio::task::{JoinHandle, JoinSet};
use tower::ServiceExt;

/// What a handler extracts to reach [`ConnectionControl`]: `None` when the router is served by
/// something other than [`serve`].
pub(crate) type Connection = Option<axum::Extension<ConnectionControl>>;

/// Lets a handler reset the connection its request came on.
#[derive(Clone, Debug, Default)]
pub(crate) struct ConnectionControl {
    inner: Arc<ControlState>,
}

#[derive(Debug, Default)]
struct ControlState {
    is_reset: AtomicBool,
    reset_requested: Notify,
}

impl ConnectionControl {
    /// Asks the connection's task to drop the connection with a TCP RST.
    pub(crate) fn reset(&self) {
        self.inner.is_reset.store(true, Ordering::Release);
        // `notify_one` keeps a permit if the task is not waiting yet, so the reset is never lost.
        self.inner.reset_requested.notify_one();
    }

    fn is_reset(&self) -> bool {
        self.inner.is_reset.load(Ordering::Acquire)
    }
}

/// Serves `router` on `listener` until `shutdown` completes.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send,
) {
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    connections.spawn(serve_connection(stream, router.clone()));
                }
                Err(error) => {
                    // Usually out of file descriptors: back off instead of spinning on the error.
                    tracing::warn!(%error, "emulator accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            // Reap finished connections so the set does not grow for the emulator's lifetime.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.shutdown().await;
}

async fn serve_connection(stream: TcpStream, router: Router) {
    let control = ConnectionControl::default();
    let io = TokioIo::new(ResettableStream { stream, control: control.clone() });
    let request_control = control.clone();
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(request_control.clone());
        router.clone().oneshot(request)
    });
    let connection = http1::Builder::new().timer(TokioTimer::new()).serve_connection(io, service);
    tokio::select! {
        result = connection => {
            if let Err(error) = result {
                tracing::debug!(%error, "emulator connection ended with an error");
            }
        }
        () = control.inner.reset_requested.notified() => {
            // Dropping the connection future drops the stream, whose `Drop` sends the RST.
            tracing::debug!("emulator resetting a connection (injected fault)");
        }
    }
}

/// A TCP stream that, once its connection was reset, closes with `SO_LINGER` zero.
///
/// Linger is set at drop time only: with it set from the start, every ordinary close would be an
/// RST as well, and clients would see spurious errors on pooled connections.
struct ResettableStream {
    stream: TcpStream,
    control: ConnectionControl,
}

impl Drop for ResettableStream {
    fn drop(&mut self) {
        if self.control.is_reset()
            && let Err(error) = self.stream.set_zero_linger()
        {
            tracing::warn!(%error, "emulator could not set SO_LINGER for a reset");
        }
    }
}

impl AsyncRead for ResettableStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for ResettableStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// A server running on its own task; stops when [`RunningServer::shutdown`] is called or the
/// handle is dropped.
#[derive(Debug)]
pub(crate) struct RunningServer {
    addr: SocketAddr,
    // Dropping the sender is the stop signal, so dropping the handle stops the server.
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl RunningServer {
    /// Binds `127.0.0.1:0` and serves `router` there.
    pub(crate) async fn start(router: Router) -> io::Result<RunningServer> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, router, async move {
            // A sent value and a dropped sender both mean "stop".
            match stopped.await {
                Ok(()) | Err(_) => {}
            }
        }));
        Ok(RunningServer { addr, stop, task })
    }

    /// The bound address.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, drops every open connection and waits until the server task ended.
    pub(crate) async fn shutdown(self) {
        drop(self.stop);
        if let Err(error) = self.task.await {
            tracing::warn!(%error, "emulator server task failed");
        }
    }
}
