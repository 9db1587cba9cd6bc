//! A loopback stand-in for switchboard's callback endpoint: every request it receives is handed
//! to the test, untouched, as the [`Callback`] the server would pass to the adapter.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use switchboard_providers::Callback;
use tokio::sync::mpsc;

/// Receives callbacks on `127.0.0.1:0`; stops when dropped.
pub(crate) struct CallbackReceiver {
    addr: SocketAddr,
    received: mpsc::UnboundedReceiver<(Method, Uri, HeaderMap, Bytes)>,
    _server: tokio::task::JoinHandle<()>,
}

impl CallbackReceiver {
    pub(crate) async fn start() -> CallbackReceiver {
        let (sender, received) = mpsc::unbounded_channel();
        let router = Router::new().fallback(forward).with_state(sender);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        CallbackReceiver { addr, received, _server: server }
    }

    /// `http://127.0.0.1:PORT/callbacks/{provider_id}`: what the server puts in
    /// `BuildContext::callback_base`.
    pub(crate) fn callback_base(&self, provider_id: &str) -> String {
        format!("http://{}/callbacks/{provider_id}", self.addr)
    }

    /// The next request, as the server would hand it to provider `provider_id`. Waits for the
    /// request itself; the bound only turns a lost callback into a failure instead of a hang.
    pub(crate) async fn next(&mut self, provider_id: &str) -> Callback {
        let (method, uri, headers, body) =
            tokio::time::timeout(Duration::from_secs(10), self.received.recv())
                .await
                .expect("no callback arrived")
                .expect("receiver stopped");
        let prefix = format!("/callbacks/{provider_id}");
        let subpath = uri.path().strip_prefix(&prefix).expect("callback for another provider");
        Callback {
            method: method.as_str().to_owned(),
            url: format!("http://{}{}", self.addr, uri),
            subpath: subpath.to_owned(),
            headers,
            body,
        }
    }
}

type Forwarded = mpsc::UnboundedSender<(Method, Uri, HeaderMap, Bytes)>;

async fn forward(
    State(sender): State<Forwarded>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> &'static str {
    // A send error means the test finished; the request has nowhere to go.
    sender.send((method, uri, headers, body)).ok();
    ""
}
