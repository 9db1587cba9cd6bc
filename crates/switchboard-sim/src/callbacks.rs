//! Requests an emulator makes *to* the system under test, as the real provider does after a
//! send: delivery receipts and status callbacks to the URL the send (or the account) named, and
//! (Plivo) the fetch of a call's answer URL. Shared by every emulator that posts them (Twilio,
//! Vonage, Sinch, Telesign, Infobip, Plivo).
//!
//! Why one mechanism: the policy (what to report, after what delay), the client that never
//! follows redirects, the task that posts in order and the record of what was posted are the
//! same for every provider; only the wire format differs. So each provider module renders its
//! own [`Outgoing`] requests (body, signature, headers) from the [`ReceiptOutcome`] and hands
//! them to [`CallbackLog::schedule`].
//!
//! What receipts say is set at runtime, in-process or with `PUT /__sim/receipts`: none (the
//! default for all but Twilio, whose emulator starts with "delivered"), delivered, or
//! undelivered with the provider's own code, after an optional delay. Every callback made is
//! recorded with the answer it got, and tests wait for them with `wait_for_callbacks` instead of
//! sleeping.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::emulator::{Api, Emulator};
use crate::journal::Journal;

/// The most of a callback's answer that is recorded (answer XML is a few hundred bytes).
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// What the receipts an emulator sends say; the default sends none.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Receipts {
    /// The final state reported.
    pub outcome: ReceiptOutcome,
    /// Delay between accepting the send and posting its receipt, in milliseconds.
    pub delay_ms: u64,
}

/// The final state a receipt reports.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ReceiptOutcome {
    /// Send no receipts.
    #[default]
    None,
    /// Delivered to the handset (SMS) or answered (calls).
    Delivered,
    /// Not delivered, with the provider's own code, as its receipt carries it: a string,
    /// because some are words (Twilio `ErrorCode` such as 30003, Vonage `err-code` such as 6
    /// or a call status such as `busy`, Sinch report code 402 or DiCE result `NOANSWER`,
    /// Telesign `status.code` such as 211, Infobip `status.id` such as 14, Plivo `ErrorCode`
    /// such as 50).
    Undelivered {
        /// The provider's code for why.
        code: String,
    },
}

impl Receipts {
    /// No receipts.
    #[must_use]
    pub fn none() -> Receipts {
        Receipts::default()
    }

    /// Every send gets a "delivered" receipt.
    #[must_use]
    pub fn delivered() -> Receipts {
        Receipts { outcome: ReceiptOutcome::Delivered, delay_ms: 0 }
    }

    /// Every send gets an "undelivered" receipt with the provider's `code` (a number or a word).
    #[must_use]
    pub fn undelivered(code: impl ToString) -> Receipts {
        Receipts { outcome: ReceiptOutcome::Undelivered { code: code.to_string() }, delay_ms: 0 }
    }

    /// Posts receipts `delay` after the send.
    #[must_use]
    pub fn with_delay(self, delay: Duration) -> Receipts {
        Receipts { delay_ms: u64::try_from(delay.as_millis()).unwrap_or(u64::MAX), ..self }
    }
}

/// Why the emulator made a callback.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CallbackKind {
    /// A delivery receipt (SMS status, call hangup).
    Receipt,
    /// A fetch of a call's answer URL for the call's script.
    AnswerFetch,
}

/// One callback the emulator made, and what it got back.
#[derive(Clone, Debug, Serialize)]
pub struct SentCallback {
    /// Receipt or answer fetch.
    pub kind: CallbackKind,
    /// The URL called.
    pub url: String,
    /// The provider's id of the message or call it is about.
    pub message_id: String,
    /// The body sent.
    pub request_body: String,
    /// The HTTP status answered; `None` when the request failed.
    pub status: Option<u16>,
    /// The answer's body (bounded), such as a call's XML.
    pub response_body: String,
    /// The transport error, when the request failed.
    pub error: Option<String>,
}

/// One callback to make.
#[derive(Clone, Debug)]
pub(crate) struct Outgoing {
    pub(crate) kind: CallbackKind,
    pub(crate) url: String,
    pub(crate) message_id: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) content_type: &'static str,
    pub(crate) body: String,
}

/// An [`Api`] whose emulator makes its callbacks through a [`CallbackLog`]: its emulator gets
/// the receipt methods below, and serves `/__sim/receipts` and `/__sim/callbacks` when the
/// provider's routes merge this module's `routes`.
pub trait CallbackApi: Api {
    /// The provider's log.
    fn callback_log(&self) -> &Arc<CallbackLog>;
}

/// Wires an emulator whose API makes callbacks, the same way for every provider: its own
/// routes (`$routes(emulator)`) plus the `/__sim/receipts` and `/__sim/callbacks` controls,
/// `clear` forgetting the callbacks made, and [`CallbackApi`] over its `callbacks` field.
///
/// The braced form also declares the usual API struct, an account and its callback log
/// starting with `receipts`, and its [`AccountApi`](crate::emulator::AccountApi) impl; an
/// emulator that keeps more state declares its own struct and uses the short form.
macro_rules! callback_emulator {
    (
        $(#[$meta:meta])*
        pub struct $api:ident { account: $account:ty, receipts: $receipts:expr $(,)? }
        received = $received:ty, routes = $routes:path $(;)?
    ) => {
        $(#[$meta])*
        #[derive(Debug)]
        pub struct $api {
            account: $account,
            callbacks: std::sync::Arc<crate::callbacks::CallbackLog>,
        }

        impl crate::emulator::AccountApi for $api {
            type Account = $account;

            fn for_account(account: $account) -> $api {
                $api {
                    account,
                    callbacks: std::sync::Arc::new(crate::callbacks::CallbackLog::new($receipts)),
                }
            }

            fn account(&self) -> &$account {
                &self.account
            }
        }

        crate::callbacks::callback_emulator!($api, received = $received, routes = $routes);
    };
    ($api:ty, received = $received:ty, routes = $routes:path) => {
        impl crate::emulator::Api for $api {
            type Received = $received;

            fn routes(emulator: &crate::emulator::Emulator<$api>) -> axum::Router {
                $routes(emulator.clone()).merge(crate::callbacks::routes(emulator))
            }

            fn clear(&self) {
                self.callbacks.clear();
            }
        }

        impl crate::callbacks::CallbackApi for $api {
            fn callback_log(&self) -> &std::sync::Arc<crate::callbacks::CallbackLog> {
                &self.callbacks
            }
        }
    };
}

pub(crate) use callback_emulator;

impl<A: CallbackApi> Emulator<A> {
    /// Sets what the receipts of later sends say.
    pub fn set_receipts(&self, receipts: Receipts) {
        self.api().callback_log().set_receipts(receipts);
    }

    /// The receipt policy in force.
    #[must_use]
    pub fn receipts(&self) -> Receipts {
        self.api().callback_log().receipts()
    }

    /// Every callback made so far, with the answer it got.
    #[must_use]
    pub fn callbacks(&self) -> Vec<SentCallback> {
        self.api().callback_log().sent()
    }

    /// Waits until `n` callbacks were made (and answered or failed); bound it with a timeout.
    pub async fn wait_for_callbacks(&self, n: usize) -> Vec<SentCallback> {
        self.api().callback_log().wait_for(n).await
    }

    pub(crate) fn callback_log(&self) -> Arc<CallbackLog> {
        Arc::clone(self.api().callback_log())
    }
}

/// The receipt policy, the client that calls out, and the record of callbacks made: opaque
/// outside this crate, public only because [`CallbackApi`] names it.
#[derive(Debug)]
pub struct CallbackLog {
    /// A std mutex: held only to copy or replace the policy.
    receipts: Mutex<Receipts>,
    client: reqwest::Client,
    journal: Journal<SentCallback>,
    /// Counts callbacks completed, so waiters wake without polling.
    completed: watch::Sender<usize>,
}

impl CallbackLog {
    /// A log whose receipts start as `receipts`.
    pub(crate) fn new(receipts: Receipts) -> CallbackLog {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        CallbackLog {
            receipts: Mutex::new(receipts),
            client,
            journal: Journal::new(),
            completed: watch::Sender::new(0),
        }
    }

    pub(crate) fn set_receipts(&self, receipts: Receipts) {
        *self.receipts.lock().unwrap_or_else(PoisonError::into_inner) = receipts;
    }

    pub(crate) fn receipts(&self) -> Receipts {
        self.receipts.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    pub(crate) fn sent(&self) -> Vec<SentCallback> {
        self.journal.snapshot()
    }

    pub(crate) fn clear(&self) {
        self.journal.clear();
    }

    /// Waits until at least `n` callbacks completed since the emulator started; returns the
    /// record. Bound it with a timeout in tests.
    pub(crate) async fn wait_for(&self, n: usize) -> Vec<SentCallback> {
        let mut completed = self.completed.subscribe();
        // The sender lives as long as `self`, so `wait_for` cannot fail while we borrow it.
        if completed.wait_for(|count| *count >= n).await.is_err() {
            tracing::warn!("emulator callback counter closed");
        }
        self.sent()
    }

    /// Makes `outgoing` now and records it.
    pub(crate) async fn call(&self, outgoing: Outgoing) -> SentCallback {
        let mut request = self
            .client
            .post(&outgoing.url)
            .header(reqwest::header::CONTENT_TYPE, outgoing.content_type)
            .body(outgoing.body.clone());
        for (name, value) in &outgoing.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let (status, response_body, error) = match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                match response.bytes().await {
                    Ok(bytes) => {
                        let kept = &bytes[..bytes.len().min(MAX_ANSWER_BYTES)];
                        (Some(status), String::from_utf8_lossy(kept).into_owned(), None)
                    }
                    Err(error) => (Some(status), String::new(), Some(error.to_string())),
                }
            }
            Err(error) => (None, String::new(), Some(error.to_string())),
        };
        if let Some(error) = &error {
            tracing::debug!(url = %outgoing.url, %error, "emulator callback failed");
        }
        let sent = SentCallback {
            kind: outgoing.kind,
            url: outgoing.url,
            message_id: outgoing.message_id,
            request_body: outgoing.body,
            status,
            response_body,
            error,
        };
        self.journal.push(sent.clone());
        self.completed.send_modify(|count| *count += 1);
        sent
    }

    /// Makes `outgoing` in order from a task of its own, after the configured delay: the
    /// provider's answer to the send is built first, as the real provider answers before it
    /// reports, and a test awaits the record instead of sleeping.
    pub(crate) fn schedule(self: &Arc<Self>, outgoing: Vec<Outgoing>) {
        if outgoing.is_empty() {
            return;
        }
        let delay = Duration::from_millis(self.receipts().delay_ms);
        let log = Arc::clone(self);
        tokio::spawn(async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            for outgoing in outgoing {
                log.call(outgoing).await;
            }
        });
    }
}

/// `/__sim/receipts` (GET, PUT [`Receipts`]) and `/__sim/callbacks` (GET, DELETE).
pub(crate) fn routes<A: CallbackApi>(emulator: &Emulator<A>) -> Router {
    Router::new()
        .route("/__sim/receipts", get(get_receipts).put(put_receipts))
        .route("/__sim/callbacks", get(get_callbacks).delete(delete_callbacks))
        .with_state(emulator.callback_log())
}

async fn get_receipts(State(log): State<Arc<CallbackLog>>) -> Json<Receipts> {
    Json(log.receipts())
}

async fn put_receipts(
    State(log): State<Arc<CallbackLog>>,
    Json(receipts): Json<Receipts>,
) -> Response {
    log.set_receipts(receipts);
    Json(log.receipts()).into_response()
}

async fn get_callbacks(State(log): State<Arc<CallbackLog>>) -> Json<Vec<SentCallback>> {
    Json(log.sent())
}

async fn delete_callbacks(State(log): State<Arc<CallbackLog>>) -> StatusCode {
    log.clear();
    StatusCode::NO_CONTENT
}

/// RFC 3339 UTC with milliseconds, as providers stamp their receipts.
pub(crate) fn rfc3339_now() -> String {
    time::OffsetDateTime::from(SystemTime::now())
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipts_json_shape() {
        let receipts: Receipts =
            serde_json::from_str(r#"{"outcome":{"kind":"undelivered","code":"211"},"delay_ms":5}"#)
                .unwrap();
        assert_eq!(receipts, Receipts::undelivered(211).with_delay(Duration::from_millis(5)));
        assert_eq!(serde_json::from_str::<Receipts>("{}").unwrap(), Receipts::none());
        assert!(serde_json::from_str::<Receipts>(r#"{"delay":5}"#).is_err());
    }
}
