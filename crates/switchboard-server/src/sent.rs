//! The sent-message index: accepted messages by (provider, message id), so a delivery receipt
//! finds the attempt it is about (the health key it was sent on, the Okta event) and counts once,
//! and so messages whose receipt never came are found ([`SentMessages::overdue`]).
//!
//! # Which messages should have had a receipt?
//!
//! Not every provider sends receipts (AWS End User Messaging reports through EventBridge, a
//! generic webhook may not be configured to, Telesign reports voice only when its portal says
//! so), and adapters do not say whether they asked. So a message counts as overdue only when its
//! provider has sent a final receipt on the message's channel within the correlation TTL: a
//! provider that reports is expected to go on reporting, and one whose receipts stop is what the
//! coverage flag is for.
//!
//! Every method takes `now` and returns owned values: nothing borrowed from the index leaves it,
//! so a shared backend can stand in for this in-process one.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use switchboard_core::health::HealthKey;
use switchboard_core::{Channel, ProviderId};
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

/// What is known of a message's receipt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    /// No final receipt yet.
    Pending,
    /// Its grace ran out without a final receipt: counted as missing.
    Missing,
    /// A final receipt was counted.
    Settled,
}

/// A message as a provider names it. The id is shared by the map and the order (one copy).
type MessageKey = (ProviderId, Arc<str>);

#[derive(Debug, Default)]
struct SentState {
    /// The message, when it was accepted, and its receipt's fate.
    by_id: HashMap<MessageKey, (SentMessage, Instant, Fate)>,
    /// Acceptance order, which is also expiry order (every message is kept
    /// [`CORRELATION_TTL`]): expiry pops the front, [`SentMessages::overdue`] walks on from
    /// `checked`.
    order: VecDeque<(Instant, MessageKey)>,
    /// How many of `order`'s first entries [`SentMessages::overdue`] has looked at.
    checked: usize,
    /// When each (provider, channel) last sent a final receipt.
    reporting: HashMap<(ProviderId, Channel), Instant>,
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
            if !state.pop_oldest() {
                break;
            }
        }
        let key: MessageKey = (provider, Arc::from(message_id));
        state.order.push_back((now, key.clone()));
        state.by_id.insert(key, (sent, now, Fate::Pending));
    }

    pub(crate) fn get(
        &self,
        provider: &ProviderId,
        message_id: &str,
        now: Instant,
    ) -> Option<SentMessage> {
        let mut state = self.lock();
        state.expire(now);
        state
            .by_id
            .get(&(provider.clone(), Arc::<str>::from(message_id)))
            .map(|(sent, ..)| sent.clone())
    }

    /// The message a *final* receipt is about, and whether this is the first final receipt for
    /// it. A message has one fate: a second final receipt (a provider retrying, or a captured
    /// receipt replayed: most providers' signatures carry no timestamp) must not count again,
    /// or a single undelivered receipt sent twenty times could eject a healthy provider. A late
    /// receipt for a message already counted missing still counts, once.
    pub(crate) fn settle(
        &self,
        provider: &ProviderId,
        message_id: &str,
        now: Instant,
    ) -> Option<(SentMessage, bool)> {
        let mut state = self.lock();
        state.expire(now);
        let (sent, _, fate) =
            state.by_id.get_mut(&(provider.clone(), Arc::<str>::from(message_id)))?;
        let is_first = *fate != Fate::Settled;
        *fate = Fate::Settled;
        let sent = sent.clone();
        state.reporting.insert((provider.clone(), sent.key.channel()), now);
        Some((sent, is_first))
    }

    /// Another replica settled a final receipt (shared mode): the message, if it is in this
    /// index, has its fate and is never counted missing here; and the provider reports on
    /// `channel`, so this replica's messages from it are expected to have receipts too.
    pub(crate) fn note_settled(
        &self,
        provider: &ProviderId,
        message_id: &str,
        channel: Channel,
        now: Instant,
    ) {
        let mut state = self.lock();
        state.expire(now);
        if let Some((_, _, fate)) =
            state.by_id.get_mut(&(provider.clone(), Arc::<str>::from(message_id)))
        {
            *fate = Fate::Settled;
        }
        state.reporting.insert((provider.clone(), channel), now);
    }

    /// Messages accepted at least `grace` ago that still have no final receipt, from providers
    /// that send receipts on their channel (see the module docs): each is returned once, and
    /// counts as missing from then on.
    pub(crate) fn overdue(&self, grace: Duration, now: Instant) -> Vec<SentMessage> {
        let mut state = self.lock();
        state.expire(now);
        let mut overdue = Vec::new();
        while let Some((sent_at, key)) = state.order.get(state.checked).cloned() {
            if sent_at + grace > now {
                break;
            }
            state.checked += 1;
            let is_reporting = |state: &SentState, sent: &SentMessage| {
                state
                    .reporting
                    .get(&(key.0.clone(), sent.key.channel()))
                    .is_some_and(|at| now.saturating_duration_since(*at) < CORRELATION_TTL)
            };
            let Some((sent, _, fate)) = state.by_id.get(&key) else { continue };
            if *fate != Fate::Pending || !is_reporting(&state, sent) {
                continue;
            }
            let sent = sent.clone();
            if let Some((_, _, fate)) = state.by_id.get_mut(&key) {
                *fate = Fate::Missing;
            }
            overdue.push(sent);
        }
        overdue
    }

    fn lock(&self) -> MutexGuard<'_, SentState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl SentState {
    fn expire(&mut self, now: Instant) {
        while self.order.front().is_some_and(|(sent_at, _)| *sent_at + CORRELATION_TTL <= now) {
            self.pop_oldest();
        }
    }

    /// Forgets the oldest message (unless the same id was accepted again since); false when
    /// there is none.
    fn pop_oldest(&mut self) -> bool {
        let Some((sent_at, key)) = self.order.pop_front() else { return false };
        self.checked = self.checked.saturating_sub(1);
        if self.by_id.get(&key).is_some_and(|(_, accepted, _)| *accepted <= sent_at) {
            self.by_id.remove(&key);
        }
        true
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

    #[test]
    fn a_receipt_settled_on_another_replica_is_never_missing_here() {
        let messages = SentMessages::new(16);
        let now = Instant::now();
        let grace = Duration::from_secs(60);
        let twilio = ProviderId::parse("twilio").unwrap();
        messages.insert(twilio.clone(), "SM1".into(), sent("e1"), now);
        messages.insert(twilio.clone(), "SM2".into(), sent("e2"), now);
        // Another replica got SM1's receipt: SM1 has its fate here, and Twilio reports on SMS,
        // so SM2, which got none anywhere, is missing.
        messages.note_settled(&twilio, "SM1", Channel::Sms, now);
        let overdue: Vec<String> =
            messages.overdue(grace, now + grace).into_iter().map(|sent| sent.event_id).collect();
        assert_eq!(overdue, ["e2"]);
        assert_eq!(messages.settle(&twilio, "SM1", now).map(|(_, first)| first), Some(false));
    }

    #[test]
    fn only_messages_of_a_reporting_provider_become_overdue_once() {
        let messages = SentMessages::new(16);
        let now = Instant::now();
        let grace = Duration::from_secs(60);
        let twilio = ProviderId::parse("twilio").unwrap();
        messages.insert(twilio.clone(), "SM1".into(), sent("e1"), now);
        messages.insert(twilio.clone(), "SM2".into(), sent("e2"), now);
        // Twilio has never sent a receipt: nothing is overdue, however long we wait.
        assert!(messages.overdue(grace, now + grace).is_empty());
        messages.insert(twilio.clone(), "SM3".into(), sent("e3"), now + grace);
        messages.insert(twilio.clone(), "SM4".into(), sent("e4"), now + grace);
        messages.settle(&twilio, "SM3", now + grace);
        let later = now + grace * 2;
        assert!(messages.overdue(grace, later - Duration::from_millis(1)).is_empty(), "in grace");
        let overdue: Vec<String> =
            messages.overdue(grace, later).into_iter().map(|sent| sent.event_id).collect();
        assert_eq!(overdue, ["e4"], "SM3 has its receipt; SM1 and SM2 were already looked at");
        assert!(messages.overdue(grace, later).is_empty(), "each message once");
        // A late receipt for a message counted missing still counts, once.
        assert_eq!(messages.settle(&twilio, "SM4", later).map(|(_, first)| first), Some(true));
        assert_eq!(messages.settle(&twilio, "SM4", later).map(|(_, first)| first), Some(false));
    }
}
