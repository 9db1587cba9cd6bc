//! The ledger across replicas: one send per `eventId` fleet-wide, and each phone's last accepted
//! send, so that Okta's retry or a user's resend can land on any replica.
//!
//! The local [`Ledger`](crate::ledger::Ledger) stays the first look and the fallback; this file
//! adds what only Redis can give. Keys (no phone, code or secret: events by SHA-256 of the
//! `eventId`, phones by the keyed digest of `PhoneHasher`):
//!
//! - `{p}ledger:event:<event digest>`: a hash, `fingerprint` (the digest of phone, code and
//!   channel) set by the one replica that claims the event (`HSETNX`, in [`CLAIM`]), and later
//!   `answer` (the exact body Okta got), and `waiting` (repeats on other replicas waiting for
//!   it). TTL: as long as the local ledger remembers the event.
//!   A repeat on another replica with the same fingerprint waits for the answer (over the bus,
//!   with a poll every [`POLL`] as a backstop for a lost message) until its *own* answer
//!   deadline and replays it verbatim; if none has come by then, it answers what the first
//!   request answers while its delivery is still running (`pending`), and sends nothing. A
//!   different fingerprint is the same 409 as on one replica.
//! - `{p}ledger:phone:<phone digest>`: a hash with the last accepted send's provider, country,
//!   channel, which send it was (its event digest), whether a later request superseded it, and
//!   `until`, the code's end by Redis's clock. One script reads it and, when asked, marks it
//!   superseded ([`LOOK`]), so "prefer another provider" and "count the resend once" hold
//!   whichever replica takes the resend. Its TTL is the code's life plus [`JUDGE_GRACE`], so
//!   that the replica that recorded the send can still read the flag when its own entry ends.
//!
//! When Redis is slow or down every step falls back to the local ledger (counted as
//! `switchboard_state_fallbacks_total{store="ledger"}`): a replica admits an event it cannot
//! claim, because a missing code is worse than a rare duplicate. The hook path makes at most two
//! calls, each bounded by `command_timeout_ms` (the claim, then the phone's history; a repeat
//! waiting on another replica also polls, but only while it waits for that replica's answer,
//! never past its deadline); answers and sends are written in the background, after Okta's
//! answer is published.

use std::sync::Arc;
use std::sync::LazyLock;
use std::time::Duration;

use serde_json::json;
use sha2::{Digest, Sha256};
use switchboard_core::health::HealthKey;
use switchboard_core::{Channel, Country, ProviderId};
use tokio::sync::watch;
use tokio::time::Instant;

use super::{Path, Redis};
use crate::ledger::{Answer, Fingerprint, Unresent};
use crate::state::Shared;

/// The store's name in keys and metrics.
const STORE: &str = "ledger";
/// The bus topic of answers for repeats waiting on other replicas.
pub(crate) const TOPIC_ANSWER: &str = "ledger.answer";
/// How often a repeat waiting on another replica reads the answer itself, in case the bus
/// message was lost.
const POLL: Duration = Duration::from_millis(300);
/// How long a phone's key outlives its code, for the recording replica's judgement.
const JUDGE_GRACE: Duration = Duration::from_secs(60);
/// Candidates judged per pipeline.
const JUDGE_BATCH: usize = 500;

type AnswerSender = watch::Sender<Option<Arc<Answer>>>;
type AnswerReceiver = watch::Receiver<Option<Arc<Answer>>>;

/// The event digest used in keys: the `eventId` is Okta's, of any length.
pub(crate) fn event_digest(event_id: &str) -> Fingerprint {
    Sha256::digest(event_id.as_bytes()).into()
}

/// What the fleet says about an event this replica admitted locally.
pub(crate) enum Claim {
    /// This replica sends (it claimed the event, or Redis was unavailable).
    Here(AnswerSender),
    /// Another replica took it with the same content: wait for its answer.
    Elsewhere(Elsewhere),
    /// Another replica took it with a different phone, code or channel.
    Conflict,
}

/// A repeat whose first request runs on another replica.
pub(crate) struct Elsewhere {
    event: Fingerprint,
    answer: AnswerReceiver,
}

impl Elsewhere {
    /// Where the answer will be published.
    pub(crate) fn answer(&self) -> AnswerReceiver {
        self.answer.clone()
    }
}

/// Claims `event_id` fleet-wide for `remember_for`, after the local ledger admitted it as new
/// (with `publish`). In memory mode, or when Redis is unavailable, the event is ours.
pub(crate) async fn claim(
    shared: &Shared,
    event_id: &str,
    fingerprint: Fingerprint,
    remember_for: Duration,
    publish: AnswerSender,
) -> Claim {
    let Some(redis) = shared.fleet.redis() else { return Claim::Here(publish) };
    let event = event_digest(event_id);
    let answer = publish.subscribe();
    // Parked before asking, so an answer that crosses the bus between the claim and the wait is
    // not missed.
    shared.ledger.await_elsewhere(event, publish);
    let mut invocation = CLAIM.key(redis.key(STORE, &["event", &hex::encode(event)]));
    invocation.arg(hex::encode(fingerprint)).arg(millis(remember_for));
    let claimed: Result<(i64, Option<String>, Option<String>), _> =
        redis.query(STORE, Path::Hook, &invocation).await;
    let here = |shared: &Shared, answer: AnswerReceiver| match shared.ledger.take_awaited(&event) {
        Some(publish) => Claim::Here(publish),
        // Another replica's answer came over the bus already (it sent on a fallback).
        None => Claim::Elsewhere(Elsewhere { event, answer }),
    };
    match claimed {
        Ok((1, _, _)) => here(shared, answer),
        Ok((_, Some(theirs), stored)) if theirs == hex::encode(fingerprint) => {
            if let Some(body) = stored {
                answered(shared, &event, body);
            }
            Claim::Elsewhere(Elsewhere { event, answer })
        }
        Ok(_) => {
            drop(shared.ledger.take_awaited(&event));
            shared.ledger.forget(event_id);
            Claim::Conflict
        }
        Err(why) => {
            redis.fell_back(STORE, why);
            here(shared, answer)
        }
    }
}

/// Waits for another replica's answer until `deadline` (this request's own) and publishes it
/// where [`Elsewhere::answer`] reads; with no answer by then, publishes `pending` (what the
/// first request answers while its delivery is still running) so Okta is answered in time, and
/// no second code is sent.
pub(crate) async fn wait_elsewhere(
    shared: &Shared,
    elsewhere: Elsewhere,
    deadline: Instant,
    pending: impl FnOnce() -> Answer,
) {
    let Elsewhere { event, mut answer } = elsewhere;
    let polled = async {
        let Some(redis) = shared.fleet.redis() else { return };
        let key = redis.key(STORE, &["event", &hex::encode(event)]);
        loop {
            tokio::select! {
                biased;
                _ = answer.wait_for(Option::is_some) => return,
                () = tokio::time::sleep(POLL) => {}
            }
            let mut command = redis::cmd("HGET");
            command.arg(&key).arg("answer");
            if let Ok(Some(body)) = redis.query::<Option<String>>(STORE, Path::Hook, &command).await
            {
                answered(shared, &event, body);
            }
        }
    };
    let is_answered = tokio::time::timeout_at(deadline, polled).await.is_ok();
    if let Some(publish) = shared.ledger.take_awaited(&event) {
        publish.send_if_modified(|current| {
            current.is_none() && {
                *current = Some(Arc::new(pending()));
                true
            }
        });
    }
    let how = if is_answered { "replayed" } else { "pending" };
    shared.metrics.ledger_repeat_elsewhere(how);
}

/// An answer from another replica, for a repeat waiting here (from the bus or a poll).
fn answered(shared: &Shared, event: &Fingerprint, body: String) {
    if let Some(publish) = shared.ledger.take_awaited(event) {
        publish.send_replace(Some(Arc::new(Answer { body })));
    }
}

/// Shares the answer Okta got for `event_id`, in the background: stored beside the claim (for a
/// repeat that polls or arrives later) and, when a repeat on another replica is waiting for it,
/// sent over the bus. Almost no event has one, so almost no answer crosses the bus: the claim
/// counts waiters in the same script that would have returned a stored answer, so a waiter is
/// either counted before the answer is stored, or finds it.
pub(crate) fn share_answer(shared: &Shared, event_id: &str, body: &str) {
    let Some(redis) = shared.fleet.redis() else { return };
    let event = hex::encode(event_digest(event_id));
    let redis = Arc::clone(redis);
    let body = body.to_owned();
    tokio::spawn(async move {
        let mut invocation = STORE_ANSWER.key(redis.key(STORE, &["event", &event]));
        invocation.arg(&body);
        match redis.query::<i64>(STORE, Path::Background, &invocation).await {
            Ok(waiting) if waiting > 0 => {
                redis.publish(TOPIC_ANSWER, json!({ "event": event, "answer": body }));
            }
            Ok(_) => {}
            // A waiter, if any, answers `pending` at its deadline: nothing was sent twice.
            Err(why) => redis.fell_back(STORE, why),
        }
    });
}

/// The bus's `ledger.answer`: another replica answered an event a request here may wait for.
pub(crate) fn on_answer(shared: &Shared, body: &serde_json::Value) {
    let (Some(event), Some(answer)) = (body["event"].as_str(), body["answer"].as_str()) else {
        tracing::warn!("unreadable ledger answer on the shared-state bus");
        return;
    };
    let mut digest = [0; 32];
    if hex::decode_to_slice(event, &mut digest).is_ok() {
        answered(shared, &digest, answer.to_owned());
    }
}

/// What is known about a phone's last accepted send, for a new request for it.
#[derive(Debug, Default)]
pub(crate) struct PhoneHistory {
    /// The provider that took the last code, while that code lives: goes last this time.
    pub(crate) previous: Option<ProviderId>,
    /// The last code's health key, when this request is the first to supersede it (asked for
    /// with `supersede`): fleet-wide, each send is superseded once.
    pub(crate) superseded: Option<HealthKey>,
}

/// Reads `phone`'s last accepted send (one hook-path call in Redis mode), marking it superseded
/// when `supersede`. Redis first, so a resend on any replica sees a send made on another; the
/// local ledger when Redis has nothing (a write not landed yet) or is unavailable.
pub(crate) async fn phone_history(
    shared: &Shared,
    phone: &Fingerprint,
    supersede: bool,
    now: Instant,
) -> PhoneHistory {
    let local = || PhoneHistory {
        previous: shared.ledger.previous_provider(phone, now),
        superseded: if supersede { shared.ledger.supersede(phone, now) } else { None },
    };
    let Some(redis) = shared.fleet.redis() else { return local() };
    let mut invocation = LOOK.key(redis.key(STORE, &["phone", &hex::encode(phone)]));
    invocation.arg(u8::from(supersede));
    let looked: Result<Option<(String, String, String, i64)>, _> =
        redis.query(STORE, Path::Hook, &invocation).await;
    match looked {
        Ok(Some((provider, country, channel, was_superseded))) => {
            let Some(key) = health_key(&provider, &country, &channel) else { return local() };
            // Keeps the local entry (if this replica made the send) in step, so it is not
            // judged as unresent.
            let _ = local();
            PhoneHistory {
                previous: Some(key.provider().clone()),
                superseded: (supersede && was_superseded == 0).then_some(key),
            }
        }
        Ok(None) => local(),
        Err(why) => {
            redis.fell_back(STORE, why);
            local()
        }
    }
}

/// Records an accepted send for `phone` fleet-wide, in the background, for `life` (what is
/// left of the code's life).
pub(crate) fn record_accepted(
    shared: &Shared,
    phone: &Fingerprint,
    key: &HealthKey,
    send: &Fingerprint,
    life: Duration,
) {
    let Some(redis) = shared.fleet.redis() else { return };
    let redis = Arc::clone(redis);
    let phone_key = redis.key(STORE, &["phone", &hex::encode(phone)]);
    let fields = [
        key.provider().as_str().to_owned(),
        key.country().as_str().to_owned(),
        key.channel().as_str().to_owned(),
        hex::encode(send),
    ];
    tokio::spawn(async move {
        let mut invocation = RECORD.key(phone_key);
        invocation.arg(&fields[..]).arg(millis(life)).arg(millis(JUDGE_GRACE));
        if let Err(why) = redis.query::<i64>(STORE, Path::Background, &invocation).await {
            redis.fell_back(STORE, why);
        }
    });
}

/// Judges the codes whose life ended unsuperseded on this replica (from the sync loop): a
/// resend on another replica marked the shared flag only. Superseded there, or replaced by a
/// later send (a later request for the number came), it was resent; its key gone, or Redis
/// unavailable, the local judgement stands.
pub(crate) async fn judge_unresent(shared: &Shared, redis: &Redis) {
    let candidates = shared.ledger.take_candidates(Instant::now());
    for batch in candidates.chunks(JUDGE_BATCH) {
        let mut pipeline = redis::pipe();
        for candidate in batch {
            let key = redis.key(STORE, &["phone", &hex::encode(candidate.phone)]);
            pipeline.cmd("HMGET").arg(key).arg("send").arg("superseded");
        }
        let flags: Result<Vec<(Option<String>, Option<String>)>, _> =
            redis.query(STORE, Path::Background, &pipeline).await;
        let verdicts: Vec<Verdict> = match flags {
            Ok(flags) => batch.iter().zip(&flags).map(|(c, flags)| verdict(c, flags)).collect(),
            Err(why) => {
                redis.fell_back(STORE, why);
                vec![Verdict::Local; batch.len()]
            }
        };
        for verdict in &verdicts {
            shared.metrics.ledger_unresent_judged(verdict.as_str());
        }
        let unresent = batch.iter().zip(verdicts).filter(|(_, v)| *v != Verdict::Resent);
        shared.ledger.add_unresent(unresent.map(|(candidate, _)| candidate.key.clone()));
    }
}

/// What the fleet says about a code whose life ended unsuperseded on this replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    /// Superseded on another replica, or replaced by a later send: it was resent.
    Resent,
    /// The shared flag agrees: nobody asked again.
    Unresent,
    /// Nothing to read (the key is gone, or Redis unavailable): the local judgement stands.
    Local,
}

impl Verdict {
    fn as_str(self) -> &'static str {
        match self {
            Verdict::Resent => "resent",
            Verdict::Unresent => "unresent",
            Verdict::Local => "local",
        }
    }
}

fn verdict(candidate: &Unresent, (send, superseded): &(Option<String>, Option<String>)) -> Verdict {
    match send {
        None => Verdict::Local,
        Some(send) if *send != hex::encode(candidate.send) => Verdict::Resent,
        Some(_) if superseded.as_deref() == Some("1") => Verdict::Resent,
        Some(_) => Verdict::Unresent,
    }
}

fn health_key(provider: &str, country: &str, channel: &str) -> Option<HealthKey> {
    let provider = ProviderId::parse(provider)?;
    Some(HealthKey::new(provider, Country::parse(country)?, Channel::parse(channel)?))
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// Claims an event: `{1}` for the first claim, else `{0, fingerprint, answer or nil}`, counting
/// a waiter (a same-content repeat) when there is no answer yet.
static CLAIM: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
if redis.call('HSETNX', KEYS[1], 'fingerprint', ARGV[1]) == 1 then
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
  return {1, false, false}
end
local stored = redis.call('HMGET', KEYS[1], 'fingerprint', 'answer')
if stored[1] == ARGV[1] and not stored[2] then
  redis.call('HINCRBY', KEYS[1], 'waiting', 1)
end
return {0, stored[1], stored[2]}
",
    )
});

/// Stores an event's answer once, only while its claim lives (never a key without a TTL), and
/// returns how many repeats wait for it on other replicas.
static STORE_ANSWER: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
redis.call('HSETNX', KEYS[1], 'answer', ARGV[1])
return tonumber(redis.call('HGET', KEYS[1], 'waiting') or '0')
",
    )
});

/// Records a phone's last accepted send, replacing the previous one; `until` on Redis's clock.
static RECORD: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local life = tonumber(ARGV[5])
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'provider', ARGV[1], 'country', ARGV[2], 'channel', ARGV[3],
  'send', ARGV[4], 'superseded', 0, 'until', ms + life)
redis.call('PEXPIRE', KEYS[1], life + tonumber(ARGV[6]))
return 1
",
    )
});

/// Reads a phone's last send while its code lives, `{provider, country, channel, superseded}`
/// (superseded as it was before this call), marking it superseded when `ARGV[1]` is `1`.
static LOOK: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local v = redis.call('HMGET', KEYS[1], 'provider', 'country', 'channel', 'superseded', 'until')
if not v[1] or not v[5] or tonumber(v[5]) <= ms then
  return false
end
local was = tonumber(v[4]) or 0
if ARGV[1] == '1' and was == 0 then
  redis.call('HSET', KEYS[1], 'superseded', 1)
end
return {v[1], v[2], v[3], was}
",
    )
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shared_flag_overturns_a_local_unresent_only_for_the_same_send() {
        let us = Country::parse("US").unwrap();
        let key = HealthKey::new(ProviderId::parse("twilio").unwrap(), us, Channel::Sms);
        let candidate = Unresent { phone: [1; 32], send: [7; 32], key };
        let ours = Some(hex::encode([7; 32]));
        let flags = |send: &Option<String>, flag: &str| (send.clone(), Some(flag.to_owned()));
        assert_eq!(verdict(&candidate, &flags(&ours, "1")), Verdict::Resent);
        assert_eq!(verdict(&candidate, &flags(&ours, "0")), Verdict::Unresent);
        let later_send = Some(hex::encode([8; 32]));
        assert_eq!(verdict(&candidate, &flags(&later_send, "0")), Verdict::Resent);
        assert_eq!(verdict(&candidate, &(None, None)), Verdict::Local);
    }
}
