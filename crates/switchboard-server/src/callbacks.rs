//! Provider callbacks on the hook listener: `{public_base_url}/callbacks/{provider id}/...`.
//!
//! The server knows neither payloads nor signatures: it hands the request, untouched, to the
//! provider the path names, which verifies and parses it. The server then correlates each receipt
//! with the attempt that produced it (by the provider's message id) and feeds the outcome into
//! that provider's health for the destination's country and channel, so an API that accepts but
//! does not deliver loses traffic. A request that fails verification changes nothing, and a
//! message's final receipt counts once, however often it is posted.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use switchboard_core::{Delivery, ProviderId};
use switchboard_providers::{Callback, CallbackError, DeliveryState};
use tokio::time::Instant;

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
            let now = Instant::now();
            for receipt in &reply.receipts {
                let state = match receipt.state {
                    DeliveryState::Delivered => "delivered",
                    DeliveryState::Undelivered(_) => "undelivered",
                    DeliveryState::Pending => "pending",
                };
                let delivery = match receipt.state {
                    DeliveryState::Delivered => Some(Delivery::Delivered),
                    DeliveryState::Undelivered(class) => Some(Delivery::Undelivered(class)),
                    DeliveryState::Pending => None,
                };
                let found = match delivery {
                    Some(_) => shared.sent.settle(&id, &receipt.message_id, now),
                    None => {
                        shared.sent.get(&id, &receipt.message_id, now).map(|sent| (sent, false))
                    }
                };
                shared.metrics.receipt(&id, state, found.is_some());
                let Some((sent, is_first_final)) = found else {
                    tracing::info!(provider = %id, state, "receipt for an unknown or expired message");
                    continue;
                };
                match delivery {
                    Some(delivery) if is_first_final => {
                        shared.health.record_receipt(&sent.key, delivery, now.into_std());
                    }
                    Some(_) => {
                        tracing::info!(event_id = %sent.event_id, provider = %id, state, "repeated final receipt; counted once");
                        continue;
                    }
                    None => {}
                }
                let class = match receipt.state {
                    DeliveryState::Undelivered(class) => class.as_str(),
                    _ => "-",
                };
                tracing::info!(
                    event_id = %sent.event_id,
                    provider = %id,
                    country = %sent.key.country(),
                    channel = %sent.key.channel(),
                    state,
                    class,
                    provider_code = receipt.provider_code.as_deref().unwrap_or("-"),
                    "delivery receipt"
                );
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
