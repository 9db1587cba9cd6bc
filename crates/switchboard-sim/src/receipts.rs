//! Delivery receipts an emulator sends back, shared by every provider emulator.
//!
//! After accepting a send that asked for a receipt, an emulator renders the provider's own
//! receipt (payload, signature) and hands it here; what to report is set at runtime with
//! [`ReceiptPlan`]: nothing (the default), delivered, or undelivered with the provider's code,
//! optionally after a delay. Each receipt is posted from its own task, and every attempt, failed
//! ones included, is recorded so tests can see what was sent.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::journal::Journal;

/// What the emulator reports for each accepted send that asked for a receipt.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReceiptPlan {
    /// The reported outcome.
    pub outcome: ReceiptOutcome,
    /// Delay before the receipt is posted, in milliseconds.
    pub delay_ms: u64,
}

/// One reported outcome.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ReceiptOutcome {
    /// Send no receipt.
    #[default]
    None,
    /// The message was delivered (the call was answered).
    Delivered,
    /// The message was not delivered; `code` is the provider's own (a Vonage `err-code`, a
    /// Vonage call status such as `busy`, a Sinch report code, a Sinch DiCE result).
    Undelivered {
        /// The provider's code, as its receipt carries it.
        code: String,
    },
}

impl ReceiptPlan {
    /// Report delivery at once.
    #[must_use]
    pub fn delivered() -> ReceiptPlan {
        ReceiptPlan { outcome: ReceiptOutcome::Delivered, delay_ms: 0 }
    }

    /// Report failure with the provider's `code` at once.
    #[must_use]
    pub fn undelivered(code: impl Into<String>) -> ReceiptPlan {
        ReceiptPlan { outcome: ReceiptOutcome::Undelivered { code: code.into() }, delay_ms: 0 }
    }

    /// Waits `delay` before posting.
    #[must_use]
    pub fn after(self, delay: Duration) -> ReceiptPlan {
        ReceiptPlan { delay_ms: u64::try_from(delay.as_millis()).unwrap_or(u64::MAX), ..self }
    }
}

/// One receipt the emulator posted (or tried to).
#[derive(Clone, Debug, Serialize)]
pub struct SentReceipt {
    /// Where it went.
    pub url: String,
    /// The message or call id it reports on.
    pub message_id: String,
    /// The receiver's HTTP status; `None` when the request failed.
    pub status: Option<u16>,
    /// The body posted.
    pub body: String,
}

/// A rendered receipt, ready to post.
#[derive(Clone, Debug)]
pub(crate) struct OutgoingReceipt {
    pub(crate) url: String,
    pub(crate) message_id: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

/// Posts receipts and records them.
///
/// A std mutex around the plan: sections only clone or assign it.
#[derive(Debug)]
pub(crate) struct ReceiptPoster {
    plan: Mutex<ReceiptPlan>,
    client: reqwest::Client,
    journal: Journal<SentReceipt>,
}

impl ReceiptPoster {
    pub(crate) fn new() -> ReceiptPoster {
        ReceiptPoster {
            plan: Mutex::new(ReceiptPlan::default()),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap_or_default(),
            journal: Journal::new(),
        }
    }

    pub(crate) fn plan(&self) -> ReceiptPlan {
        self.plan.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    pub(crate) fn set_plan(&self, plan: ReceiptPlan) {
        *self.plan.lock().unwrap_or_else(PoisonError::into_inner) = plan;
    }

    pub(crate) fn sent(&self) -> Vec<SentReceipt> {
        self.journal.snapshot()
    }

    /// Posts `receipt` after `delay` from a task of its own.
    pub(crate) fn post(self: &Arc<Self>, receipt: OutgoingReceipt, delay: Duration) {
        let poster = Arc::clone(self);
        tokio::spawn(async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let mut request = poster.client.post(&receipt.url);
            for (name, value) in &receipt.headers {
                request = request.header(name, value);
            }
            let status = match request.body(receipt.body.clone()).send().await {
                Ok(response) => Some(response.status().as_u16()),
                Err(error) => {
                    tracing::warn!(%error, "emulator could not post a receipt");
                    None
                }
            };
            poster.journal.push(SentReceipt {
                url: receipt.url,
                message_id: receipt.message_id,
                status,
                body: String::from_utf8_lossy(&receipt.body).into_owned(),
            });
        });
    }
}
