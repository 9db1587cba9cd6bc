//! A stand-in for the server's callback route, so an emulator's receipts and answer-URL fetches
//! reach the adapter's `handle_callback` over a real loopback socket, as they would in
//! production. It answers as `switchboard-server/src/callbacks.rs` does (the reply's status,
//! content type and body; 401 for a bad signature, 400 malformed, 404 otherwise), so a test
//! asserting the status a provider sees asserts what the real server would say.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use switchboard_providers::{Callback, CallbackError, CallbackReply, SharedProvider};
use tokio::sync::mpsc;

/// What one callback brought: the request as handed to the adapter, and the adapter's verdict.
#[derive(Debug)]
pub struct Delivered {
    pub callback: Callback,
    pub outcome: Result<CallbackReply, CallbackError>,
}

/// `/callbacks/{id}/...` on a loopback port, handing each request to the adapter.
pub struct CallbackServer {
    addr: SocketAddr,
    provider: Arc<OnceLock<SharedProvider>>,
    arrivals: mpsc::UnboundedReceiver<Delivered>,
    _task: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct RouteState {
    addr: SocketAddr,
    provider: Arc<OnceLock<SharedProvider>>,
    sender: mpsc::UnboundedSender<Delivered>,
}

impl CallbackServer {
    /// Binds a port now, so the adapter can be built with its callback base; call
    /// [`CallbackServer::attach`] with the adapter before anything calls back.
    pub async fn bind() -> CallbackServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let provider = Arc::new(OnceLock::new());
        let (sender, arrivals) = mpsc::unbounded_channel();
        let state = RouteState { addr, provider: Arc::clone(&provider), sender };
        let router = axum::Router::new().fallback(route).with_state(state);
        let task = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        CallbackServer { addr, provider, arrivals, _task: task }
    }

    /// `http://127.0.0.1:PORT/callbacks/{id}`, the adapter's `callback_base`.
    pub fn base(&self, id: &str) -> String {
        format!("http://{}/callbacks/{id}", self.addr)
    }

    /// The adapter that handles every callback from now on.
    pub fn attach(&self, provider: SharedProvider) {
        assert!(self.provider.set(provider).is_ok(), "attached twice");
    }

    /// The next callback and its outcome in the adapter. Waits for the callback itself; the
    /// bound only turns a lost callback into a failure instead of a hang.
    pub async fn next(&mut self) -> Delivered {
        tokio::time::timeout(Duration::from_secs(10), self.arrivals.recv())
            .await
            .expect("no callback arrived")
            .expect("callback server gone")
    }
}

async fn route(
    State(state): State<RouteState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // `/callbacks/{id}/rest` -> subpath `/rest`.
    let subpath = uri
        .path()
        .strip_prefix("/callbacks/")
        .and_then(|rest| rest.find('/').map(|slash| rest[slash..].to_owned()))
        .unwrap_or_default();
    let callback = Callback {
        method: method.as_str().to_owned(),
        url: format!("http://{}{uri}", state.addr),
        subpath,
        headers,
        body,
    };
    let Some(provider) = state.provider.get() else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    let outcome = provider.handle_callback(&callback).await;
    let response = match &outcome {
        Ok(reply) => (
            StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK),
            [("content-type", reply.content_type)],
            reply.body.clone(),
        )
            .into_response(),
        Err(CallbackError::BadSignature) => StatusCode::UNAUTHORIZED.into_response(),
        Err(CallbackError::Malformed(_)) => StatusCode::BAD_REQUEST.into_response(),
        Err(CallbackError::NotFound | CallbackError::Unsupported) => {
            StatusCode::NOT_FOUND.into_response()
        }
    };
    // A test that stopped listening has its answer already.
    let _ignored = state.sender.send(Delivered { callback, outcome });
    response
}
