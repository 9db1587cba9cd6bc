//! Provider callbacks on the hook listener: `{public_base_url}/callbacks/{provider id}/...`.
//!
//! The server knows neither payloads nor signatures: it hands the request, untouched, to the
//! provider the path names, which verifies and parses it. The server then correlates each receipt
//! with the attempt that produced it (by the provider's message id) and feeds the outcome into
//! that provider's health for the destination's country and channel, so an API that accepts but
//! does not deliver loses traffic. A request that fails verification changes nothing, and a
//! message's final receipt counts once, however often it is posted.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use switchboard_core::health::HealthKey;
use switchboard_core::{Delivery, ProviderId};
use switchboard_providers::{Callback, CallbackError, DeliveryState};
use tokio::time::Instant;

use crate::state::Shared;

/// How long a sent message's correlation is kept. Receipts arrive within minutes; carriers retry
/// for hours, but a receipt that late says little about the provider's health now.
const CORRELATION_TTL: Duration = Duration::from_secs(6 * 3600);

/// What a receipt is matched against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SentMessage {
    /// The health entry the send was made on (provider, country, channel).
    pub(crate) key: HealthKey,
    pub(crate) event_id: String,
}

/// Accepted messages by (provider, message id), bounded, oldest dropped first.
/// A std mutex: sections are map operations, never across an `.await`.
#[derive(Debug)]
pub(crate) struct SentMessages {
    state: Mutex<SentState>,
    capacity: usize,
}

#[derive(Debug, Default)]
struct SentState {
    /// The message, when its correlation expires, and whether a final receipt was counted.
    by_id: HashMap<(ProviderId, String), (SentMessage, Instant, bool)>,
    order: VecDeque<(Instant, (ProviderId, String))>,
}

impl SentMessages {
    pub(crate) fn new(capacity: usize) -> SentMessages {
        SentMessages { state: Mutex::new(SentState::default()), capacity: capacity.max(1) }
    }

    pub(crate) fn insert(
        &self,
        provider: ProviderId,
        message_id: String,
        sent: SentMessage,
        now: Instant,
    ) {
        let mut state = self.lock();
        state.expire(now);
        while state.by_id.len() >= self.capacity {
            let Some((_, key)) = state.order.pop_front() else { break };
            state.by_id.remove(&key);
        }
        let key = (provider, message_id);
        state.order.push_back((now + CORRELATION_TTL, key.clone()));
        state.by_id.insert(key, (sent, now + CORRELATION_TTL, false));
    }

    pub(crate) fn get(
        &self,
        provider: &ProviderId,
        message_id: &str,
        now: Instant,
    ) -> Option<SentMessage> {
        let mut state = self.lock();
        state.expire(now);
        state.by_id.get(&(provider.clone(), message_id.to_owned())).map(|(sent, ..)| sent.clone())
    }

    /// The message a *final* receipt is about, and whether this is the first final receipt for
    /// it. A message has one fate: a second final receipt (a provider retrying, or a captured
    /// receipt replayed: most providers' signatures carry no timestamp) must not count again,
    /// or a single undelivered receipt sent twenty times could eject a healthy provider.
    pub(crate) fn settle(
        &self,
        provider: &ProviderId,
        message_id: &str,
        now: Instant,
    ) -> Option<(SentMessage, bool)> {
        let mut state = self.lock();
        state.expire(now);
        let (sent, _, is_settled) =
            state.by_id.get_mut(&(provider.clone(), message_id.to_owned()))?;
        let is_first = !*is_settled;
        *is_settled = true;
        Some((sent.clone(), is_first))
    }

    fn lock(&self) -> MutexGuard<'_, SentState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl SentState {
    fn expire(&mut self, now: Instant) {
        while self.order.front().is_some_and(|(expires, _)| *expires <= now) {
            if let Some((expires, key)) = self.order.pop_front()
                && self.by_id.get(&key).is_some_and(|(_, e, _)| *e <= expires)
            {
                self.by_id.remove(&key);
            }
        }
    }
}

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
                        shared.health().record_receipt(&sent.key, delivery, now.into_std());
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

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(event: &str) -> SentMessage {
        let key = HealthKey::new(
            ProviderId::parse("twilio").unwrap(),
            switchboard_core::Country::parse("US").unwrap(),
            switchboard_core::Channel::Sms,
        );
        SentMessage { key, event_id: event.into() }
    }

    #[test]
    fn correlates_by_provider_and_message_id_and_forgets_when_full() {
        let messages = SentMessages::new(2);
        let now = Instant::now();
        let twilio = ProviderId::parse("twilio").unwrap();
        let vonage = ProviderId::parse("vonage").unwrap();
        messages.insert(twilio.clone(), "SM1".into(), sent("e1"), now);
        messages.insert(vonage.clone(), "SM1".into(), sent("e2"), now);
        assert_eq!(messages.get(&twilio, "SM1", now).unwrap().event_id, "e1");
        assert_eq!(messages.get(&vonage, "SM1", now).unwrap().event_id, "e2");
        messages.insert(twilio.clone(), "SM3".into(), sent("e3"), now);
        assert!(messages.get(&twilio, "SM1", now).is_none(), "the oldest went first");
        assert!(messages.get(&twilio, "SM3", now + CORRELATION_TTL).is_none(), "expired");
    }

    #[test]
    fn a_message_settles_once() {
        let messages = SentMessages::new(4);
        let now = Instant::now();
        let twilio = ProviderId::parse("twilio").unwrap();
        messages.insert(twilio.clone(), "SM1".into(), sent("e1"), now);
        assert!(messages.get(&twilio, "SM1", now).is_some(), "a pending receipt settles nothing");
        assert_eq!(
            messages.settle(&twilio, "SM1", now).map(|(s, first)| (s.event_id, first)),
            Some(("e1".into(), true))
        );
        assert_eq!(messages.settle(&twilio, "SM1", now).map(|(_, first)| first), Some(false));
        assert!(messages.settle(&twilio, "SM2", now).is_none());
    }
}
