//! The sent-message index: accepted messages by (provider, message id), so a delivery receipt
//! finds the attempt it is about (the health key it was sent on, the Okta event) and counts once.
//!
//! Every method takes `now` and returns owned values: nothing borrowed from the index leaves it,
//! so a shared backend can stand in for this in-process one.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use switchboard_core::ProviderId;
use switchboard_core::health::HealthKey;
use tokio::time::Instant;

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
