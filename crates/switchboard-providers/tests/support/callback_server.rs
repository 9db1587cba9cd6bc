//! What the adapter integration tests share: a stand-in for the server's callback route, so an
//! emulator's receipts and answer-URL fetches reach the adapter's `handle_callback` over a real
//! loopback socket, as they would in production.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use switchboard_providers::{Callback, CallbackError, CallbackReply, Provider};
use tokio::sync::mpsc;

/// What one callback produced in the adapter.
pub type Handled = Result<CallbackReply, CallbackError>;

/// `/callbacks/{id}/...` on a loopback port, handing each request to the adapter.
pub struct CallbackServer {
    addr: SocketAddr,
    provider: Arc<OnceLock<Arc<dyn Provider>>>,
    handled: mpsc::UnboundedReceiver<Handled>,
}

#[derive(Clone)]
struct RouteState {
    provider: Arc<OnceLock<Arc<dyn Provider>>>,
    handled: mpsc::UnboundedSender<Handled>,
}

impl CallbackServer {
    /// Binds a port now, so the adapter can be built with its callback base; call
    /// [`CallbackServer::attach`] with the adapter before anything calls back.
    pub async fn bind() -> CallbackServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let provider = Arc::new(OnceLock::new());
        let (sender, handled) = mpsc::unbounded_channel();
        let state = RouteState { provider: Arc::clone(&provider), handled: sender };
        let router = axum::Router::new().fallback(route).with_state(state);
        tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, router).await {
                eprintln!("callback server stopped: {error}");
            }
        });
        CallbackServer { addr, provider, handled }
    }

    /// `http://127.0.0.1:PORT/callbacks/{id}`, the adapter's `callback_base`.
    pub fn base(&self, id: &str) -> String {
        format!("http://{}/callbacks/{id}", self.addr)
    }

    pub fn attach(&self, provider: Arc<dyn Provider>) {
        assert!(self.provider.set(provider).is_ok(), "attached twice");
    }

    /// The next callback's outcome in the adapter (fails the test after 5 s).
    pub async fn next(&mut self) -> Handled {
        tokio::time::timeout(Duration::from_secs(5), self.handled.recv())
            .await
            .expect("no callback within 5 s")
            .expect("callback server gone")
    }
}

async fn route(State(state): State<RouteState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body: Bytes = match axum::body::to_bytes(body, 64 * 1024).await {
        Ok(body) => body,
        Err(_) => return StatusCode::PAYLOAD_TOO_LARGE.into_response(),
    };
    let host = header(&parts.headers, "host");
    let path_and_query = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    // `/callbacks/{id}/rest` -> subpath `/rest`.
    let subpath = parts
        .uri
        .path()
        .strip_prefix("/callbacks/")
        .and_then(|rest| rest.find('/').map(|slash| rest[slash..].to_owned()))
        .unwrap_or_default();
    let callback = Callback {
        method: parts.method.as_str().to_owned(),
        url: format!("http://{host}{path_and_query}"),
        subpath,
        headers: parts.headers.clone(),
        body,
    };
    let provider = state.provider.get().expect("provider attached").clone();
    let handled = provider.handle_callback(&callback).await;
    let response = match &handled {
        Ok(reply) => (
            StatusCode::from_u16(reply.status).unwrap(),
            [("content-type", reply.content_type)],
            reply.body.clone(),
        )
            .into_response(),
        Err(CallbackError::BadSignature) => StatusCode::FORBIDDEN.into_response(),
        Err(CallbackError::Malformed(_)) => StatusCode::BAD_REQUEST.into_response(),
        Err(CallbackError::NotFound | CallbackError::Unsupported) => {
            StatusCode::NOT_FOUND.into_response()
        }
    };
    // The test may have finished with the channel; nothing to do then.
    if state.handled.send(handled).is_err() {
        eprintln!("callback outcome dropped: test no longer listening");
    }
    response
}

fn header(headers: &HeaderMap, name: &str) -> String {
    headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}
