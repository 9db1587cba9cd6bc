//! Provider callbacks on the hook listener: `{public_base_url}/callbacks/{provider id}/...`.
//!
//! The server knows neither payloads nor signatures: it hands the request, untouched, to the
//! provider the path names, which verifies and parses it. The server then correlates each receipt
//! with the attempt that produced it (by the provider's message id) and feeds the outcome into
//! that provider's health for the destination's country and channel, so an API that accepts but
//! does not deliver loses traffic. A request that fails verification changes nothing, and a
//! message's final receipt counts once, however often it is posted.
//!
//! With replicas sharing state (Redis mode) a receipt may land on a replica that did not send
//! its message: it is matched in the background (the provider is answered at once) against
//! this replica's index, then the shared one, once more a second later if it is in neither,
//! and counts once fleet-wide, in every replica's health (see `fleet::sent` and
//! `fleet::evidence`).

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use switchboard_core::health::HealthKey;
use switchboard_core::{Delivery, ProviderId};
use switchboard_providers::{Callback, CallbackError, DeliveryState, Receipt};
use tokio::time::Instant;

use crate::fleet::Redis;
use crate::fleet::evidence::{self, Evidence};
use crate::fleet::sent::{self as shared_sent, Settled};
use crate::sent::SentMessage;
use crate::state::Shared;

/// `ANY /callbacks/{provider}/{*rest}` (and without a rest).
pub(crate) async fn handle_callback(
    State(shared): State<Arc<Shared>>,
    Path(params): Path<HashMap<String, String>>,
    method: Method,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let runtime = shared.runtime();
    let Some(id) = params.get("provider").and_then(|p| ProviderId::parse(p)) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let Some(provider) = runtime.providers.get(&id) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let Some(base) = runtime.callback_base.as_deref() else {
        // Without a public base URL no send asked for callbacks.
        return StatusCode::NOT_FOUND.into_response();
    };
    let subpath = params.get("rest").map(|rest| format!("/{rest}")).unwrap_or_default();
    let mut url = format!("{base}/{id}{subpath}");
    if let Some(query) = &query {
        url.push('?');
        url.push_str(query);
    }
    let callback = Callback { method: method.as_str().to_owned(), url, subpath, headers, body };

    match provider.handle_callback(&callback).await {
        Ok(reply) => {
            match shared.fleet.redis().cloned() {
                None => {
                    for receipt in &reply.receipts {
                        take_in_locally(&shared, &id, receipt);
                    }
                }
                // Matching may wait on Redis and, for a receipt that beat its send record, a
                // second: the provider gets its answer now, and the receipts are matched in a
                // tracked task (shutdown waits for it).
                Some(redis) if !reply.receipts.is_empty() => {
                    let receipts = reply.receipts.clone();
                    let matching = Arc::clone(&shared);
                    shared.tracker.spawn(async move {
                        for receipt in &receipts {
                            take_in_shared(&matching, &redis, &id, receipt).await;
                        }
                    });
                }
                Some(_) => {}
            }
            let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK);
            (status, [("content-type", reply.content_type)], reply.body).into_response()
        }
        Err(error) => {
            let (status, reason) = match &error {
                CallbackError::BadSignature => (StatusCode::UNAUTHORIZED, "bad_signature"),
                CallbackError::Malformed(_) => (StatusCode::BAD_REQUEST, "malformed"),
                CallbackError::NotFound | CallbackError::Unsupported => {
                    (StatusCode::NOT_FOUND, "not_found")
                }
            };
            shared.metrics.callback_refused(&id, reason);
            tracing::warn!(provider = %id, reason, error = %error, "provider callback refused");
            status.into_response()
        }
    }
}

/// Messages whose final receipt is overdue (see [`crate::sent::SentMessages::overdue`]),
/// counted toward their key's receipt coverage: in every replica's health, in Redis mode. Each
/// replica judges the messages it sent; one settled on another replica was marked here by its
/// announcement and is not overdue.
pub(crate) fn record_overdue(shared: &Shared, now: Instant) {
    let grace = shared.health.receipt_grace();
    for sent in shared.sent.overdue(grace, now) {
        evidence::record(shared, &sent.key, Evidence::ReceiptMissing, now.into_std());
        shared.metrics.receipt_missing(sent.key.provider());
    }
}

/// A receipt's state: its label, and what a final one says.
fn read_state(receipt: &Receipt) -> (&'static str, Option<Delivery>) {
    match receipt.state {
        DeliveryState::Delivered => ("delivered", Some(Delivery::Delivered)),
        DeliveryState::Undelivered(class) => ("undelivered", Some(Delivery::Undelivered(class))),
        DeliveryState::Pending => ("pending", None),
    }
}

/// The send a receipt is about, as found.
struct Found {
    /// The health entry it was sent on.
    key: HealthKey,
    /// Okta's `eventId`, for the log line.
    event_id: String,
    /// Whether this is the message's first final receipt (fleet-wide in Redis mode).
    is_first_final: bool,
    /// `local` or `shared`: which index had it.
    found_in: &'static str,
}

/// Memory mode: the receipt is matched against this replica's index.
fn take_in_locally(shared: &Shared, id: &ProviderId, receipt: &Receipt) {
    let now = Instant::now();
    let (state, delivery) = read_state(receipt);
    let found = match delivery {
        Some(_) => shared.sent.settle(id, &receipt.message_id, now),
        None => shared.sent.get(id, &receipt.message_id, now).map(|sent| (sent, false)),
    };
    let found = found.map(|(sent, is_first_final)| Found {
        key: sent.key,
        event_id: sent.event_id,
        is_first_final,
        found_in: "local",
    });
    count(shared, id, receipt, state, delivery, found.as_ref());
}

/// Redis mode: the receipt is matched against this replica's index, then the shared one (once
/// more after [`shared_sent::RETRY_AFTER`] if it is in neither), and a final receipt counts
/// once fleet-wide. When Redis is unavailable, this replica's index alone (counted).
async fn take_in_shared(shared: &Shared, redis: &Arc<Redis>, id: &ProviderId, receipt: &Receipt) {
    let (state, delivery) = read_state(receipt);
    let message_id = receipt.message_id.as_str();
    let mut found = None;
    let mut is_retried = false;
    for round in 0..2 {
        if round > 0 {
            // Jasmin's #423: the provider's callback can beat the send's background write.
            tokio::time::sleep(shared_sent::RETRY_AFTER).await;
            is_retried = true;
        }
        let now = Instant::now();
        found = match delivery {
            Some(_) => settle_shared(shared, redis, id, message_id, now).await,
            None => find_shared(shared, redis, id, message_id, now).await,
        };
        if found.is_some() {
            break;
        }
    }
    shared.metrics.receipt_match(match &found {
        Some(found) if found.found_in == "local" => "local",
        Some(_) if is_retried => "shared_after_retry",
        Some(_) => "shared",
        None => "none",
    });
    count(shared, id, receipt, state, delivery, found.as_ref());
    if let (Some(_), Some(found)) = (delivery, &found)
        && found.is_first_final
    {
        shared_sent::announce(redis, id, message_id, found.key.channel());
    }
}

/// An intermediate receipt's send, in this replica's index or the shared one.
async fn find_shared(
    shared: &Shared,
    redis: &Redis,
    id: &ProviderId,
    message_id: &str,
    now: Instant,
) -> Option<Found> {
    if let Some(sent) = shared.sent.get(id, message_id, now) {
        let (key, event_id) = (sent.key, sent.event_id);
        return Some(Found { key, event_id, is_first_final: false, found_in: "local" });
    }
    match shared_sent::find(redis, id, message_id).await {
        Ok(record) => record.map(|record| Found {
            key: record.key,
            event_id: record.event_id,
            is_first_final: false,
            found_in: "shared",
        }),
        Err(why) => {
            redis.fell_back("sent", why);
            None
        }
    }
}

/// A final receipt settled in this replica's index and the shared one.
async fn settle_shared(
    shared: &Shared,
    redis: &Redis,
    id: &ProviderId,
    message_id: &str,
    now: Instant,
) -> Option<Found> {
    let local = shared.sent.settle(id, message_id, now);
    let fleet = shared_sent::settle(redis, id, message_id, local.is_some()).await;
    let found_here = |sent: SentMessage, is_first_final| Found {
        key: sent.key,
        event_id: sent.event_id,
        is_first_final,
        found_in: "local",
    };
    match (local, fleet) {
        // Counted when it is the first final receipt here and anywhere.
        (Some((sent, is_first)), Ok(Settled::Found { is_first: is_first_anywhere, .. })) => {
            Some(found_here(sent, is_first && is_first_anywhere))
        }
        (Some((sent, is_first)), Ok(Settled::Unknown)) => Some(found_here(sent, is_first)),
        (Some((sent, is_first)), Err(why)) => {
            redis.fell_back("sent", why);
            Some(found_here(sent, is_first))
        }
        (None, Ok(Settled::Found { record: Some(record), is_first })) => Some(Found {
            key: record.key,
            event_id: record.event_id,
            is_first_final: is_first,
            found_in: "shared",
        }),
        (None, Ok(Settled::Found { record: None, .. } | Settled::Unknown)) => None,
        (None, Err(why)) => {
            redis.fell_back("sent", why);
            None
        }
    }
}

/// Counts a receipt (matched or not) and, for the first final receipt of a message, records
/// it in health (every replica's, in Redis mode); logs it.
fn count(
    shared: &Shared,
    id: &ProviderId,
    receipt: &Receipt,
    state: &'static str,
    delivery: Option<Delivery>,
    found: Option<&Found>,
) {
    let now = Instant::now();
    shared.metrics.receipt(id, state, found.is_some());
    let Some(Found { key, event_id, is_first_final, .. }) = found else {
        tracing::info!(provider = %id, state, "receipt for an unknown or expired message");
        return;
    };
    match delivery {
        Some(delivery) if *is_first_final => {
            evidence::record(shared, key, Evidence::Receipt(delivery), now.into_std());
        }
        Some(_) => {
            tracing::info!(event_id = %event_id, provider = %id, state, "repeated final receipt; counted once");
            return;
        }
        None => {}
    }
    let class = match receipt.state {
        DeliveryState::Undelivered(class) => class.as_str(),
        _ => "-",
    };
    tracing::info!(
        event_id = %event_id,
        provider = %id,
        country = %key.country(),
        channel = %key.channel(),
        state,
        class,
        provider_code = receipt.provider_code.as_deref().unwrap_or("-"),
        "delivery receipt"
    );
}
