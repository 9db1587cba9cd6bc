//! The conversion store: the codes providers accepted for Okta, waiting to learn from Okta's
//! events whether the user entered them, and the events already seen.
//!
//! A send is kept under a keyed hash of (Okta user id, channel) with the health key of the
//! provider that accepted it, when it was sent and when its code expired; nothing else: no phone
//! number, no code, no raw user id. An event (user, channel, published at) credits the **latest**
//! send whose window (sent, expiry + grace) contains it, since a code can only be entered while
//! it is valid and a resend's code replaces the earlier one: that send was *entered*, and every
//! earlier send of the same window that the user asked again after was *superseded*, confirmed
//! by the code that did arrive. A wrong code means the user was there: the send is not counted
//! as never entered, nor against its provider. A send whose window ends with no event settles
//! as *never entered*, at its `settle_at` (after the window, with time for Okta's events to
//! arrive). Every send settles exactly once; one that is evicted (the store is full) or outlives
//! a configuration without events is dropped unsettled, which neither helps nor hurts its
//! provider.
//!
//! Events are deduplicated by `uuid`, since Okta delivers at least once (and System Log polling
//! may see what the event hook delivered): a `uuid` is remembered for [`SEEN_TTL`], longer than
//! any send is held, so a repeat can never settle anything twice.
//!
//! Memory is bounded: at most `capacity` sends (past it the one settling soonest is dropped),
//! [`MAX_SENDS_PER_USER`] per user and channel, and `capacity` event ids.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use sha2::{Digest, Sha256};
use switchboard_core::health::HealthKey;
use switchboard_core::{Channel, Conversion};
use tokio::time::Instant;

use crate::phone::PhoneHasher;

/// How long an event's `uuid` is remembered: longer than the longest time a send is held
/// (an OTP lives at most an hour, plus the grace, plus an hour's System Log interval).
pub(crate) const SEEN_TTL: Duration = Duration::from_secs(3 * 3600);
/// Sends kept per user and channel; past it the oldest is dropped. A user asks again a few
/// times at most within a code's life; more is a script, and the guard's business.
pub(crate) const MAX_SENDS_PER_USER: usize = 16;

/// Keyed hash of (Okta user id, channel): the only form a user is kept in.
pub(crate) type UserKey = [u8; 32];

/// A digest of an event's `uuid` (fixed size, whatever Okta sends).
type Seen = [u8; 16];

/// The key sends and events of `user_id` on `channel` meet under.
pub(crate) fn user_key(phones: &PhoneHasher, user_id: &str, channel: Channel) -> UserKey {
    let mut bytes = Vec::with_capacity(user_id.len() + 24);
    bytes.extend_from_slice(b"okta-user\0");
    bytes.extend_from_slice(user_id.as_bytes());
    bytes.push(0);
    bytes.extend_from_slice(channel.as_str().as_bytes());
    phones.digest(&bytes)
}

/// An accepted send, as remembered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Send {
    /// Okta's `eventId` of the telephony hook request, for logs.
    pub(crate) event_id: String,
    /// The provider that accepted it first, the country and channel.
    pub(crate) key: HealthKey,
    /// When Okta asked (a code cannot be entered before).
    pub(crate) sent_at: Instant,
    /// The code's expiry plus a grace for clocks: events published later are not about it.
    pub(crate) window_end: Instant,
    /// When it settles as never entered, if no event came (the window's end plus the time
    /// Okta's events may take to arrive).
    pub(crate) settle_at: Instant,
}

/// What an event says about the code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Report {
    /// The code was entered.
    Entered,
    /// A wrong code was entered: the user was there.
    WrongCode,
}

/// How a send ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Evidence about its provider.
    Conversion(Conversion),
    /// Only wrong codes were entered: the user was there, and nothing is said of the provider.
    WrongCode,
}

impl Outcome {
    /// `entered`, `superseded`, `not_entered` or `wrong_code`, for metrics and logs.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Outcome::Conversion(conversion) => conversion.label(),
            Outcome::WrongCode => "wrong_code",
        }
    }
}

/// One send settled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Settlement {
    pub(crate) event_id: String,
    pub(crate) key: HealthKey,
    pub(crate) outcome: Outcome,
}

/// What became of an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Observation {
    /// Its `uuid` was seen before: nothing changed.
    Duplicate,
    /// No send of the user's on that channel was live when it was published.
    Unmatched,
    /// It found its send; these sends settled (none when the send had settled already, or for
    /// a wrong code).
    Matched(Vec<Settlement>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Open,
    /// A wrong code was entered for it.
    UserSeen,
    Settled,
}

#[derive(Debug)]
struct Held {
    send: Send,
    state: State,
    /// Its entry in [`Inner::settling`].
    seq: u64,
}

#[derive(Debug, Default)]
struct Inner {
    /// Each user's sends on a channel, oldest first.
    users: HashMap<UserKey, Vec<Held>>,
    /// When each send settles; `u64` keeps equal instants apart.
    settling: BTreeMap<(Instant, u64), UserKey>,
    n_sends: usize,
    seen: HashMap<Seen, Instant>,
    seen_order: VecDeque<(Instant, Seen)>,
    seq: u64,
}

/// The store. A std mutex: sections are map operations and never span an `.await`.
#[derive(Debug)]
pub(crate) struct ConversionStore {
    inner: Mutex<Inner>,
    capacity: usize,
}

impl ConversionStore {
    pub(crate) fn new(capacity: usize) -> ConversionStore {
        ConversionStore { inner: Mutex::new(Inner::default()), capacity: capacity.max(1) }
    }

    /// Remembers an accepted send of `user`'s until it settles. Returns how many sends were
    /// dropped unsettled to make room (the store full, or the user's list at its cap): they will
    /// never count for or against their providers.
    pub(crate) fn record_send(&self, user: UserKey, send: Send) -> usize {
        let mut inner = self.lock();
        let mut dropped = 0;
        while inner.n_sends >= self.capacity {
            let Some(((_, seq), evicted)) = inner.settling.pop_first() else { break };
            inner.remove(&evicted, seq);
            dropped += 1;
        }
        if inner.users.get(&user).is_some_and(|sends| sends.len() >= MAX_SENDS_PER_USER) {
            let oldest = inner.users[&user][0].seq;
            inner.remove(&user, oldest);
            dropped += 1;
        }
        inner.seq += 1;
        let seq = inner.seq;
        inner.settling.insert((send.settle_at, seq), user);
        inner.n_sends += 1;
        let sends = inner.users.entry(user).or_default();
        let at = sends.partition_point(|held| held.send.sent_at <= send.sent_at);
        sends.insert(at, Held { send, state: State::Open, seq });
        dropped
    }

    /// Takes in an event: deduplicates it by `uuid`, then settles what it says about the
    /// user's sends on its channel. `at` is when Okta published it, on this clock.
    pub(crate) fn observe(
        &self,
        user: &UserKey,
        uuid: &str,
        at: Instant,
        report: Report,
        now: Instant,
    ) -> Observation {
        let mut inner = self.lock();
        if !inner.first_sighting(seen_digest(uuid), now, self.capacity) {
            return Observation::Duplicate;
        }
        let Some(sends) = inner.users.get_mut(user) else { return Observation::Unmatched };
        let live: Vec<usize> = (0..sends.len())
            .filter(|&i| sends[i].send.sent_at <= at && at <= sends[i].send.window_end)
            .collect();
        let Some((&latest, earlier)) = live.split_last() else { return Observation::Unmatched };
        let mut settled = Vec::new();
        match report {
            Report::WrongCode => {
                if sends[latest].state == State::Open {
                    sends[latest].state = State::UserSeen;
                }
            }
            Report::Entered if sends[latest].state == State::Settled => {}
            Report::Entered => {
                settled.push(settle(&mut sends[latest], Conversion::Entered));
                for &i in earlier {
                    if sends[i].state != State::Settled {
                        let superseded = Conversion::Superseded { confirmed: true };
                        settled.push(settle(&mut sends[i], superseded));
                    }
                }
            }
        }
        Observation::Matched(settled)
    }

    /// Settles every send whose time has come without an event (never entered, or only wrong
    /// codes), and forgets it with those settled before.
    pub(crate) fn sweep(&self, now: Instant) -> Vec<Settlement> {
        let mut inner = self.lock();
        inner.forget_seen(now);
        let mut settled = Vec::new();
        while let Some(entry) = inner.settling.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let user = entry.remove();
            let Some(sends) = inner.users.get_mut(&user) else { continue };
            let before = sends.len();
            sends.retain_mut(|held| {
                if held.send.settle_at > now {
                    return true;
                }
                let outcome = match held.state {
                    State::Open => Some(Outcome::Conversion(Conversion::NotEntered)),
                    State::UserSeen => Some(Outcome::WrongCode),
                    State::Settled => None,
                };
                if let Some(outcome) = outcome {
                    let (event_id, key) = (held.send.event_id.clone(), held.send.key.clone());
                    settled.push(Settlement { event_id, key, outcome });
                }
                false
            });
            let n_removed = before - sends.len();
            if sends.is_empty() {
                inner.users.remove(&user);
            }
            inner.n_sends -= n_removed;
        }
        settled
    }

    /// Sends held and event ids remembered.
    #[cfg(test)]
    pub(crate) fn len(&self) -> (usize, usize) {
        let inner = self.lock();
        (inner.n_sends, inner.seen.len())
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every section leaves the maps consistent, so a poisoned lock is usable.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn settle(held: &mut Held, conversion: Conversion) -> Settlement {
    held.state = State::Settled;
    let outcome = Outcome::Conversion(conversion);
    Settlement { event_id: held.send.event_id.clone(), key: held.send.key.clone(), outcome }
}

fn seen_digest(uuid: &str) -> Seen {
    let digest = Sha256::digest(uuid.as_bytes());
    let mut seen = [0; 16];
    seen.copy_from_slice(&digest[..16]);
    seen
}

impl Inner {
    /// Remembers `seen`; false when it was already remembered.
    fn first_sighting(&mut self, seen: Seen, now: Instant, capacity: usize) -> bool {
        self.forget_seen(now);
        if self.seen.contains_key(&seen) {
            return false;
        }
        while self.seen.len() >= capacity {
            let Some((_, oldest)) = self.seen_order.pop_front() else { break };
            self.seen.remove(&oldest);
        }
        let until = now + SEEN_TTL;
        self.seen.insert(seen, until);
        self.seen_order.push_back((until, seen));
        true
    }

    fn forget_seen(&mut self, now: Instant) {
        while self.seen_order.front().is_some_and(|(until, _)| *until <= now) {
            if let Some((_, seen)) = self.seen_order.pop_front() {
                self.seen.remove(&seen);
            }
        }
    }

    /// Drops `user`'s send `seq` unsettled (the store or the user's list is full).
    fn remove(&mut self, user: &UserKey, seq: u64) {
        let Some(sends) = self.users.get_mut(user) else { return };
        if let Some(index) = sends.iter().position(|held| held.seq == seq) {
            let held = sends.remove(index);
            self.settling.remove(&(held.send.settle_at, seq));
            self.n_sends -= 1;
        }
        if sends.is_empty() {
            self.users.remove(user);
        }
    }
}

#[cfg(test)]
mod tests;
