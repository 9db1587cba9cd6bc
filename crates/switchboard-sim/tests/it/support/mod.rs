//! What the emulator tests share: a loopback stand-in for the system under test, where an
//! emulator posts its receipts, status callbacks and call events.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use serde_json::Value;
use tokio::sync::mpsc;

/// One request the receiver got, as sent.
#[derive(Debug)]
pub(crate) struct Arrival {
    /// Path and query.
    pub(crate) uri: Uri,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Arrival {
    /// The body as JSON (receipts of Vonage and Sinch).
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    /// The body as a form, in the order sent (Twilio's status callbacks).
    pub(crate) fn form(&self) -> Vec<(String, String)> {
        serde_urlencoded::from_bytes(&self.body).unwrap()
    }

    /// The first value of header `name`, as text.
    pub(crate) fn header(&self, name: &str) -> &str {
        self.headers[name].to_str().unwrap()
    }
}

/// Answers every request on `127.0.0.1:0` with 200 and hands it to the test, so a test awaits
/// what the emulator sent instead of sleeping.
pub(crate) struct Receiver {
    /// `http://127.0.0.1:PORT`.
    pub(crate) base: String,
    arrivals: mpsc::UnboundedReceiver<Arrival>,
}

impl Receiver {
    pub(crate) async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (sender, arrivals) = mpsc::unbounded_channel();
        let router = Router::new().fallback(forward).with_state(sender);
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Receiver { base, arrivals }
    }

    /// The next request.
    pub(crate) async fn next(&mut self) -> Arrival {
        self.arrivals.recv().await.unwrap()
    }

    /// The next request if one has arrived already.
    pub(crate) fn try_next(&mut self) -> Option<Arrival> {
        self.arrivals.try_recv().ok()
    }
}

/// Sends `request` and reads the answer's status and JSON body.
pub(crate) async fn exchange_json(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// A client that gives up after 200 ms, for requests an emulator is told to hang.
pub(crate) fn impatient_client() -> reqwest::Client {
    reqwest::Client::builder().timeout(std::time::Duration::from_millis(200)).build().unwrap()
}

/// Sends the request `request` builds on an [`impatient_client`] and asserts it times out: what
/// every emulator told to hang must do.
pub(crate) async fn assert_hang_times_out(
    request: impl FnOnce(&reqwest::Client) -> reqwest::RequestBuilder,
) {
    let error = request(&impatient_client()).send().await.unwrap_err();
    assert!(error.is_timeout(), "{error:?}");
}

async fn forward(
    State(sender): State<mpsc::UnboundedSender<Arrival>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) {
    // A send error means the test finished; the request has nowhere to go.
    sender.send(Arrival { uri, headers, body }).ok();
}
