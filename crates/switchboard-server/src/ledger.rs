//! What switchboard remembers between requests, for the OTP's lifetime: each `eventId` (so a
//! repeated request joins the in-flight send or gets the same answer again, never a second send)
//! and each phone number's last accepted send (so a resend tries a different provider, and,
//! when Okta's events are not configured, counts as a weak sign that the last code did not
//! arrive).
//!
//! Okta's best practices say to deduplicate on `eventId`; Okta retries at most once, and call
//! order is not guaranteed, so a retry can arrive while the first request is still sending. The
//! content (phone + code) is *not* a key: a user asking for a new code must get one. A reused
//! `eventId` with a different phone or code is refused (409): it is either a bug or a replay.
//!
//! Memory is bounded: entries expire with their OTP, and past `capacity` the entry closest to
//! expiry is evicted first. It is also small, since a busy replica remembers every code for its
//! whole life: an event is kept under a 128-bit digest of its `eventId` (Okta's ids are of any
//! length), and once its answer is published ([`Ledger::publish`]) only the answer stays, not
//! the channel that carried it (a tokio `watch` channel is about 400 bytes).
//!
//! In Redis mode this ledger stays the first look (a repeat on the same replica never needs
//! Redis) and the fallback; `fleet/ledger.rs` shares the rest. Two things here exist for it:
//! the answers this replica awaits from another replica (by event digest, filled from the bus),
//! and where an unresent code is judged. A resend may reach another replica, which marks the
//! send superseded in Redis only, so in Redis mode a code whose life ended unsuperseded *here*
//! is only a candidate: the sync loop checks the shared flag (`fleet::ledger::judge_unresent`)
//! and only then hands it to [`Ledger::take_unresent`]. The replica that recorded the send
//! judges it, once, because only it holds the local entry.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use sha2::{Digest, Sha256};

use switchboard_core::ProviderId;
use switchboard_core::health::HealthKey;
use tokio::sync::watch;
use tokio::time::Instant;

/// At most this many unresent codes wait for the upkeep to take them (every 5 s).
const MAX_UNRESENT: usize = 100_000;

/// An answer as sent to Okta, replayed verbatim to a repeated request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    pub(crate) body: String,
}

/// The digest of what a request asks for (phone, code, channel); never the values themselves.
pub(crate) type Fingerprint = [u8; 32];

/// What to do with a request.
#[derive(Debug)]
pub(crate) enum Admission {
    /// First time: deliver, then publish the answer through this sender.
    New(watch::Sender<Option<Arc<Answer>>>),
    /// Seen before with the same content: wait for (or reuse) its answer.
    Repeat(watch::Receiver<Option<Arc<Answer>>>),
    /// Seen before with a different phone, code or channel.
    Conflict,
}

#[derive(Debug)]
struct EventEntry {
    fingerprint: Fingerprint,
    expires: Instant,
    answer: Slot,
}

/// An event's answer: awaited while its delivery runs, then only the answer.
#[derive(Debug)]
enum Slot {
    Awaited(watch::Receiver<Option<Arc<Answer>>>),
    Published(Arc<Answer>),
}

impl Slot {
    /// A receiver a repeated request waits on (or reads at once).
    fn receiver(&self) -> watch::Receiver<Option<Arc<Answer>>> {
        match self {
            Slot::Awaited(receiver) => receiver.clone(),
            // The sender drops here; a receiver still reads the value it holds.
            Slot::Published(answer) => watch::channel(Some(Arc::clone(answer))).1,
        }
    }
}

/// An `eventId` as the ledger keys it: the first 128 bits of its SHA-256. Collisions would need
/// a second preimage of SHA-256 truncated to 128 bits; the ids are Okta's, authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct EventKey([u8; 16]);

impl EventKey {
    fn of(event_id: &str) -> EventKey {
        let digest = Sha256::digest(event_id.as_bytes());
        let mut key = [0; 16];
        key.copy_from_slice(&digest[..16]);
        EventKey(key)
    }
}

#[derive(Debug)]
struct PhoneEntry {
    /// The provider that accepted the code, the country and channel.
    key: HealthKey,
    /// Which send this is (the digest of its `eventId`), to tell it from a later one in Redis.
    send: Fingerprint,
    expires: Instant,
    /// A later request for the number has already counted against this send.
    is_superseded: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    Event(EventKey),
    Phone(Fingerprint),
}

#[derive(Debug, Default)]
struct State {
    events: HashMap<EventKey, EventEntry>,
    phones: HashMap<Fingerprint, PhoneEntry>,
    /// Expiry order of both maps; `seq` keeps equal instants apart.
    expiry: BTreeMap<(Instant, u64), Key>,
    seq: u64,
    /// Health keys of codes whose life ended without a request superseding them, until
    /// [`Ledger::take_unresent`] takes them (bounded by the ledger's capacity).
    unresent: Vec<HealthKey>,
    /// In Redis mode, codes whose life ended unsuperseded here, until the sync loop has checked
    /// them against the shared flag (bounded like `unresent`).
    candidates: Vec<Unresent>,
    /// Senders of the answers awaited from another replica, by event digest; each is removed
    /// by whoever answers first (the bus, a poll, or the waiting request's own deadline).
    awaited: HashMap<Fingerprint, watch::Sender<Option<Arc<Answer>>>>,
}

/// A code whose life ended without a request superseding it on this replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unresent {
    pub(crate) phone: Fingerprint,
    pub(crate) send: Fingerprint,
    pub(crate) key: HealthKey,
}

/// The ledger. A std mutex: sections are map operations and never span an `.await`.
#[derive(Debug)]
pub(crate) struct Ledger {
    state: Mutex<State>,
    capacity: usize,
    /// Redis mode: unresent codes are judged against the fleet's flag before they count.
    is_judged_in_fleet: bool,
}

impl Ledger {
    pub(crate) fn new(capacity: usize) -> Ledger {
        Ledger {
            state: Mutex::new(State::default()),
            capacity: capacity.max(1),
            is_judged_in_fleet: false,
        }
    }

    /// A ledger whose unresent codes the fleet judges (Redis mode): see the module doc.
    pub(crate) fn judged_in_fleet(capacity: usize) -> Ledger {
        Ledger { is_judged_in_fleet: true, ..Ledger::new(capacity) }
    }

    /// Registers `event_id`, or finds it.
    pub(crate) fn admit(
        &self,
        event_id: &str,
        fingerprint: Fingerprint,
        expires: Instant,
        now: Instant,
    ) -> Admission {
        let key = EventKey::of(event_id);
        let mut state = self.lock();
        state.purge(now, self.is_judged_in_fleet);
        if let Some(entry) = state.events.get(&key) {
            return if entry.fingerprint == fingerprint {
                Admission::Repeat(entry.answer.receiver())
            } else {
                Admission::Conflict
            };
        }
        state.make_room(self.capacity, |s| s.events.len());
        let (sender, receiver) = watch::channel(None);
        let answer = Slot::Awaited(receiver);
        state.events.insert(key, EventEntry { fingerprint, expires, answer });
        state.schedule(expires, Key::Event(key));
        Admission::New(sender)
    }

    /// Publishes the answer of an event admitted here to every request waiting on `sender`, and
    /// keeps only the answer for later repeats.
    pub(crate) fn publish(
        &self,
        event_id: &str,
        sender: &watch::Sender<Option<Arc<Answer>>>,
        mut answer: Answer,
    ) {
        answer.body.shrink_to_fit();
        let answer = Arc::new(answer);
        sender.send_replace(Some(Arc::clone(&answer)));
        if let Some(entry) = self.lock().events.get_mut(&EventKey::of(event_id)) {
            entry.answer = Slot::Published(answer);
        }
    }

    /// Forgets an event admitted here that another replica had already taken with different
    /// content: a later request with the right content must not meet this entry's fingerprint.
    pub(crate) fn forget(&self, event_id: &str) {
        // Its index entry stays; `remove_if_expired` finds nothing when it comes.
        self.lock().events.remove(&EventKey::of(event_id));
    }

    /// Parks the sender of an event another replica may be answering, until
    /// [`Ledger::take_awaited`] (the bus, a poll, or the deadline) takes it.
    pub(crate) fn await_elsewhere(
        &self,
        event: Fingerprint,
        sender: watch::Sender<Option<Arc<Answer>>>,
    ) {
        self.lock().awaited.insert(event, sender);
    }

    /// The parked sender of an awaited event, once.
    pub(crate) fn take_awaited(
        &self,
        event: &Fingerprint,
    ) -> Option<watch::Sender<Option<Arc<Answer>>>> {
        self.lock().awaited.remove(event)
    }

    /// The provider that last accepted a code for this phone, if that code has not expired:
    /// a new request for the same phone inside that window is a resend.
    pub(crate) fn previous_provider(
        &self,
        phone: &Fingerprint,
        now: Instant,
    ) -> Option<ProviderId> {
        let mut state = self.lock();
        state.purge(now, self.is_judged_in_fleet);
        state.phones.get(phone).map(|entry| entry.key.provider().clone())
    }

    /// The health key of the last code accepted for this phone, if that code has not expired
    /// and no request has superseded it yet: a new request for the same phone inside its life
    /// says the user asked again. Each send is returned once.
    pub(crate) fn supersede(&self, phone: &Fingerprint, now: Instant) -> Option<HealthKey> {
        let mut state = self.lock();
        state.purge(now, self.is_judged_in_fleet);
        let entry = state.phones.get_mut(phone).filter(|entry| !entry.is_superseded)?;
        entry.is_superseded = true;
        Some(entry.key.clone())
    }

    /// The health keys of codes whose life ended without the user asking again (each once;
    /// codes evicted for room are not among them: that says nothing about the code). In Redis
    /// mode only those the fleet has judged (see the module doc).
    pub(crate) fn take_unresent(&self, now: Instant) -> Vec<HealthKey> {
        let mut state = self.lock();
        state.purge(now, self.is_judged_in_fleet);
        std::mem::take(&mut state.unresent)
    }

    /// Redis mode: the codes whose life ended unsuperseded here, for the fleet to judge.
    pub(crate) fn take_candidates(&self, now: Instant) -> Vec<Unresent> {
        let mut state = self.lock();
        state.purge(now, self.is_judged_in_fleet);
        std::mem::take(&mut state.candidates)
    }

    /// Hands over the codes the fleet judged unresent, for [`Ledger::take_unresent`].
    pub(crate) fn add_unresent(&self, keys: impl IntoIterator<Item = HealthKey>) {
        let mut state = self.lock();
        let room = MAX_UNRESENT.saturating_sub(state.unresent.len());
        state.unresent.extend(keys.into_iter().take(room));
    }

    /// Remembers the health key (provider, country, channel) a code for this phone was
    /// accepted on, and which send it was, until the code expires.
    pub(crate) fn record_accepted(
        &self,
        phone: Fingerprint,
        key: HealthKey,
        send: Fingerprint,
        expires: Instant,
    ) {
        let mut state = self.lock();
        state.make_room(self.capacity, |s| s.phones.len());
        // A replaced entry's old index slot stays; `remove_if_expired` skips it because the new
        // entry expires later.
        state.phones.insert(phone, PhoneEntry { key, send, expires, is_superseded: false });
        state.schedule(expires, Key::Phone(phone));
    }

    #[cfg(test)]
    fn len(&self) -> (usize, usize) {
        let state = self.lock();
        (state.events.len(), state.phones.len())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Sections leave the maps consistent at every step, so a poisoned lock is usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    fn schedule(&mut self, expires: Instant, key: Key) {
        self.seq += 1;
        self.expiry.insert((expires, self.seq), key);
    }

    /// Drops every entry whose time has come; an unsuperseded phone entry goes to `unresent`,
    /// or to `candidates` when the fleet judges it, so each is judged exactly once.
    fn purge(&mut self, now: Instant, is_judged_in_fleet: bool) {
        while let Some(entry) = self.expiry.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let key = entry.remove();
            let Key::Phone(phone_key) = key else {
                self.remove_if_expired(&key, now);
                continue;
            };
            let Some(phone) = self.remove_if_expired(&key, now) else { continue };
            if phone.is_superseded {
                continue;
            }
            if is_judged_in_fleet {
                if self.candidates.len() < MAX_UNRESENT {
                    let (send, key) = (phone.send, phone.key);
                    self.candidates.push(Unresent { phone: phone_key, send, key });
                }
            } else if self.unresent.len() < MAX_UNRESENT {
                self.unresent.push(phone.key);
            }
        }
    }

    /// Evicts the entries closest to expiry until one more fits.
    fn make_room(&mut self, capacity: usize, len: impl Fn(&State) -> usize) {
        while len(self) >= capacity {
            let Some(((expires, _), key)) = self.expiry.pop_first() else { break };
            self.remove_if_expired(&key, expires);
        }
    }

    /// Removes `key` if its entry expires at or before `at` (a later re-registration of the same
    /// phone moved its expiry, and its own index entry will come); returns a removed phone's
    /// entry.
    fn remove_if_expired(&mut self, key: &Key, at: Instant) -> Option<PhoneEntry> {
        match key {
            Key::Event(event) => {
                if self.events.get(event).is_some_and(|e| e.expires <= at) {
                    self.events.remove(event);
                }
                None
            }
            Key::Phone(phone) => {
                if self.phones.get(phone).is_some_and(|e| e.expires <= at) {
                    self.phones.remove(phone)
                } else {
                    None
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn provider(id: &str) -> ProviderId {
        ProviderId::parse(id).unwrap()
    }

    fn key(id: &str) -> HealthKey {
        let us = switchboard_core::Country::parse("US").unwrap();
        HealthKey::new(provider(id), us, switchboard_core::Channel::Sms)
    }

    #[test]
    fn a_repeated_event_shares_the_first_answer() {
        let ledger = Ledger::new(10);
        let now = Instant::now();
        let expires = now + Duration::from_secs(300);
        let Admission::New(sender) = ledger.admit("evt", [1; 32], expires, now) else { panic!() };
        let Admission::Repeat(receiver) = ledger.admit("evt", [1; 32], expires, now) else {
            panic!()
        };
        assert!(receiver.borrow().is_none(), "still sending");
        sender.send_replace(Some(Arc::new(Answer { body: "answer".into() })));
        assert_eq!(receiver.borrow().as_ref().unwrap().body, "answer");
        assert!(matches!(ledger.admit("evt", [2; 32], expires, now), Admission::Conflict));
    }

    #[test]
    fn a_published_answer_is_kept_without_its_channel_and_replayed() {
        let ledger = Ledger::new(10);
        let now = Instant::now();
        let expires = now + Duration::from_secs(300);
        let Admission::New(sender) = ledger.admit("evt", [1; 32], expires, now) else { panic!() };
        let Admission::Repeat(waiting) = ledger.admit("evt", [1; 32], expires, now) else {
            panic!()
        };
        ledger.publish("evt", &sender, Answer { body: "answer".into() });
        assert_eq!(waiting.borrow().as_ref().unwrap().body, "answer", "a waiter gets it");
        drop(sender);
        assert!(matches!(
            ledger.lock().events.get(&EventKey::of("evt")).map(|e| &e.answer),
            Some(Slot::Published(_))
        ));
        let Admission::Repeat(later) = ledger.admit("evt", [1; 32], expires, now) else { panic!() };
        assert_eq!(later.borrow().as_ref().unwrap().body, "answer", "a later repeat too");
        assert!(matches!(ledger.admit("evt", [2; 32], expires, now), Admission::Conflict));
        // Another id is another event, even one that shares a long prefix.
        assert!(matches!(ledger.admit("evt2", [1; 32], expires, now), Admission::New(_)));
    }

    #[test]
    fn entries_expire_with_the_otp() {
        let ledger = Ledger::new(10);
        let now = Instant::now();
        let expires = now + Duration::from_secs(60);
        assert!(matches!(ledger.admit("evt", [1; 32], expires, now), Admission::New(_)));
        ledger.record_accepted([9; 32], key("twilio"), [0; 32], expires);
        assert_eq!(ledger.previous_provider(&[9; 32], now), Some(provider("twilio")));
        let later = expires + Duration::from_millis(1);
        assert_eq!(ledger.previous_provider(&[9; 32], later), None);
        assert!(matches!(
            ledger.admit("evt", [2; 32], later + Duration::from_secs(60), later),
            Admission::New(_)
        ));
    }

    #[test]
    fn a_newer_resend_keeps_the_phone_until_its_own_expiry() {
        let ledger = Ledger::new(10);
        let now = Instant::now();
        ledger.record_accepted([9; 32], key("twilio"), [0; 32], now + Duration::from_secs(60));
        ledger.record_accepted([9; 32], key("vonage"), [0; 32], now + Duration::from_secs(120));
        let between = now + Duration::from_secs(90);
        assert_eq!(ledger.previous_provider(&[9; 32], between), Some(provider("vonage")));
    }

    #[test]
    fn a_send_is_superseded_once_and_only_while_its_code_lives() {
        let ledger = Ledger::new(10);
        let now = Instant::now();
        let expires = now + Duration::from_secs(60);
        assert_eq!(ledger.supersede(&[9; 32], now), None, "nothing sent yet");
        ledger.record_accepted([9; 32], key("twilio"), [0; 32], expires);
        assert_eq!(ledger.supersede(&[9; 32], now), Some(key("twilio")));
        assert_eq!(ledger.supersede(&[9; 32], now), None, "a third request counts nothing again");
        assert_eq!(
            ledger.previous_provider(&[9; 32], now),
            Some(provider("twilio")),
            "still avoided"
        );
        ledger.record_accepted([9; 32], key("vonage"), [0; 32], expires);
        assert_eq!(ledger.supersede(&[9; 32], expires), None, "the code expired");
    }

    #[test]
    fn capacity_evicts_the_entry_closest_to_expiry() {
        let ledger = Ledger::new(2);
        let now = Instant::now();
        for (index, id) in ["a", "b", "c"].iter().enumerate() {
            let expires = now + Duration::from_secs(100 + index as u64);
            assert!(matches!(ledger.admit(id, [0; 32], expires, now), Admission::New(_)));
        }
        assert_eq!(ledger.len().0, 2);
        // "a" expired soonest, so it was the one evicted: it is new again.
        assert!(matches!(
            ledger.admit("a", [7; 32], now + Duration::from_secs(200), now),
            Admission::New(_)
        ));
        assert!(matches!(
            ledger.admit("c", [7; 32], now + Duration::from_secs(200), now),
            Admission::Conflict
        ));
    }

    #[test]
    fn codes_that_expire_without_a_resend_are_taken_once_and_evicted_ones_never() {
        let ledger = Ledger::new(2);
        let now = Instant::now();
        let later = now + Duration::from_secs(60);
        ledger.record_accepted([1; 32], key("twilio"), [0; 32], later);
        ledger.record_accepted([2; 32], key("vonage"), [0; 32], later);
        assert_eq!(ledger.supersede(&[2; 32], now), Some(key("vonage")));
        assert!(ledger.take_unresent(now).is_empty(), "nothing has expired");
        // A third phone evicts the entry closest to expiry: that says nothing about its code.
        ledger.record_accepted([3; 32], key("sinch"), [0; 32], now + Duration::from_secs(30));
        ledger.record_accepted([4; 32], key("plivo"), [0; 32], now + Duration::from_secs(90));
        let taken = ledger.take_unresent(later + Duration::from_secs(60));
        assert_eq!(taken, [key("plivo")], "superseded and evicted codes are not among them");
        assert!(ledger.take_unresent(later + Duration::from_secs(60)).is_empty(), "once");
    }

    #[test]
    fn in_redis_mode_unsuperseded_codes_wait_for_the_fleets_judgement() {
        let ledger = Ledger::judged_in_fleet(10);
        let now = Instant::now();
        let later = now + Duration::from_secs(60);
        ledger.record_accepted([1; 32], key("twilio"), [7; 32], later);
        ledger.record_accepted([2; 32], key("vonage"), [8; 32], later);
        assert_eq!(ledger.supersede(&[2; 32], now), Some(key("vonage")));
        let after = later + Duration::from_secs(1);
        assert!(ledger.take_unresent(after).is_empty(), "not counted before it is judged");
        let candidates = ledger.take_candidates(after);
        assert_eq!(candidates, [Unresent { phone: [1; 32], send: [7; 32], key: key("twilio") }]);
        assert!(ledger.take_candidates(after).is_empty(), "each judged once");
        ledger.add_unresent([key("twilio")]);
        assert_eq!(ledger.take_unresent(after), [key("twilio")]);
    }

    #[test]
    fn an_awaited_answer_is_taken_once_and_a_forgotten_event_is_new_again() {
        let ledger = Ledger::new(10);
        let now = Instant::now();
        let expires = now + Duration::from_secs(60);
        let Admission::New(sender) = ledger.admit("evt", [1; 32], expires, now) else { panic!() };
        ledger.await_elsewhere([5; 32], sender);
        assert!(ledger.take_awaited(&[5; 32]).is_some());
        assert!(ledger.take_awaited(&[5; 32]).is_none(), "whoever answers first takes it");
        ledger.forget("evt");
        assert!(matches!(ledger.admit("evt", [2; 32], expires, now), Admission::New(_)));
    }
}
