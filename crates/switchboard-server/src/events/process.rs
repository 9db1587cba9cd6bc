//! From Okta's events to provider health: read each event, find the send it is about in the
//! conversion store, and record what settled; settle the sends whose time ran out; and, when
//! Okta's events are not configured, take a resend as a weak sign that the last code did not
//! arrive.

use std::time::Duration;

use switchboard_core::health::HealthKey;
use switchboard_core::{Channel, Conversion};
use time::OffsetDateTime;
use tokio::time::Instant;

use crate::conversions::{
    Observation, Outcome, Report, SEEN_TTL, Send, Settlement, UserKey, user_key,
};
use crate::fleet::events as shared_events;
use crate::fleet::evidence::{self, Evidence};
use crate::okta::events::{Entry, read_event};
use crate::state::{Runtime, Shared};

/// How long after a code's expiry an event about it is still believed. Okta refuses an expired
/// code, so this covers the two clocks (Okta's `published`, ours) only.
pub(crate) const GRACE: Duration = Duration::from_secs(30);
/// How long after a send's window its events may still arrive before it settles as never
/// entered: Okta delivers event hooks within seconds and retries once. System Log polling adds
/// its interval.
pub(crate) const LATENESS: Duration = Duration::from_secs(120);

/// Where events came from, as a metric label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    EventHook,
    SystemLog,
    /// Forwarded by another replica (Redis mode).
    Peer,
}

impl Source {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Source::EventHook => "event_hook",
            Source::SystemLog => "system_log",
            Source::Peer => "peer",
        }
    }
}

/// What one batch of events did, for its log line.
#[derive(Debug, Default)]
struct Tally {
    accepted: u64,
    duplicates: u64,
    ignored: u64,
    matched: u64,
    unmatched: u64,
}

/// Takes in one batch of events (an event hook delivery, a System Log page): each is read,
/// deduplicated by `uuid` (fleet-wide in Redis mode), matched to its send, and what settled goes
/// into health; in Redis mode the events this replica claimed are forwarded to the others,
/// which hold the sends they made (see `fleet::events`). `batch` names it in the log line.
pub(crate) async fn process(
    shared: &Shared,
    source: Source,
    batch: &str,
    events: Vec<serde_json::Value>,
) {
    let mut tally = Tally::default();
    let n_events = events.len();
    let mut sightings = Vec::with_capacity(n_events);
    for value in events {
        match read_event(value) {
            Ok(event) => sightings.push(Sighting {
                user: user_key(&shared.phones, &event.user_id, event.channel),
                uuid: event.uuid,
                published: event.published,
                report: match event.entry {
                    Entry::Entered => Report::Entered,
                    Entry::WrongCode => Report::WrongCode,
                },
                channel: event.channel,
            }),
            Err(_) => tally.ignored += 1,
        }
    }
    if let Some(redis) = shared.fleet.redis()
        && !sightings.is_empty()
    {
        let uuids: Vec<&str> = sightings.iter().map(|sighting| sighting.uuid.as_str()).collect();
        match shared_events::claim(redis, &uuids, SEEN_TTL).await {
            Ok(firsts) => {
                let before = sightings.len();
                let mut firsts = firsts.into_iter();
                sightings.retain(|_| firsts.next().unwrap_or(true));
                tally.duplicates += (before - sightings.len()) as u64;
                shared_events::forward(redis, sightings.iter().map(Sighting::to_wire).collect());
            }
            // Each replica dedupes what reaches it; events about other replicas' sends are
            // unmatched here.
            Err(why) => redis.fell_back("events", why),
        }
    }
    observe(shared, source, sightings, &mut tally);
    for (result, n) in
        [("accepted", tally.accepted), ("duplicate", tally.duplicates), ("ignored", tally.ignored)]
    {
        if n > 0 {
            shared.metrics.okta_events(source.as_str(), result, n);
        }
    }
    tracing::debug!(
        source = source.as_str(),
        batch,
        events = n_events,
        accepted = tally.accepted,
        duplicates = tally.duplicates,
        ignored = tally.ignored,
        matched = tally.matched,
        unmatched = tally.unmatched,
        "okta events processed"
    );
}

/// Events another replica claimed and forwarded: matched against this replica's sends. Only
/// matches are counted here (`source="peer"`): the replica that took the events in counts them.
pub(crate) fn apply_forwarded(shared: &Shared, body: serde_json::Value) {
    let Ok(forwarded) = serde_json::from_value::<shared_events::Forwarded>(body) else {
        tracing::warn!("unreadable okta events on the shared-state bus");
        return;
    };
    let sightings: Vec<Sighting> =
        forwarded.events.iter().filter_map(Sighting::from_wire).collect();
    let mut tally = Tally::default();
    observe(shared, Source::Peer, sightings, &mut tally);
    if tally.matched > 0 {
        shared.metrics.okta_events(Source::Peer.as_str(), "matched", tally.matched);
    }
}

/// An event read: who (keyed hash), which, when, and what it says.
#[derive(Clone, Debug)]
struct Sighting {
    user: UserKey,
    uuid: String,
    published: OffsetDateTime,
    report: Report,
    channel: Channel,
}

impl Sighting {
    fn to_wire(&self) -> shared_events::Sighting {
        shared_events::Sighting {
            user: hex::encode(self.user),
            uuid: self.uuid.clone(),
            published_ms: (self.published.unix_timestamp_nanos() / 1_000_000) as i64,
            report: match self.report {
                Report::Entered => "entered",
                Report::WrongCode => "wrong_code",
            }
            .to_owned(),
            channel: self.channel.as_str().to_owned(),
        }
    }

    fn from_wire(wire: &shared_events::Sighting) -> Option<Sighting> {
        let user: UserKey = hex::decode(&wire.user).ok()?.try_into().ok()?;
        let published =
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(wire.published_ms) * 1_000_000)
                .ok()?;
        let report = match wire.report.as_str() {
            "entered" => Report::Entered,
            "wrong_code" => Report::WrongCode,
            _ => return None,
        };
        let channel = Channel::parse(&wire.channel)?;
        Some(Sighting { user, uuid: wire.uuid.clone(), published, report, channel })
    }
}

/// Matches each event against this replica's sends, and records what settled.
fn observe(shared: &Shared, source: Source, sightings: Vec<Sighting>, tally: &mut Tally) {
    let now = Instant::now();
    let wall = OffsetDateTime::now_utc();
    for sighting in sightings {
        let observation = match instant_of(sighting.published, wall, now) {
            Some(at) => {
                shared.conversions.observe(&sighting.user, &sighting.uuid, at, sighting.report, now)
            }
            // Published before this machine started: no send of ours can be its.
            None => Observation::Unmatched,
        };
        match observation {
            Observation::Duplicate => tally.duplicates += 1,
            Observation::Unmatched => {
                tally.accepted += 1;
                tally.unmatched += 1;
                if source != Source::Peer {
                    shared.metrics.conversion_match(sighting.channel, false);
                }
            }
            Observation::Matched(settled) => {
                tally.accepted += 1;
                tally.matched += 1;
                shared.metrics.conversion_match(sighting.channel, true);
                record(shared, &settled, now);
            }
        }
    }
}

/// `published` (Okta's clock) on tokio's clock, through the wall clock's reading now.
fn instant_of(published: OffsetDateTime, wall: OffsetDateTime, now: Instant) -> Option<Instant> {
    let age = wall - published;
    if age.is_negative() {
        Some(now + Duration::try_from(-age).unwrap_or_default())
    } else {
        now.checked_sub(Duration::try_from(age).unwrap_or_default())
    }
}

/// Records settled sends in health (a wrong code in the metrics only) and logs each.
fn record(shared: &Shared, settled: &[Settlement], now: Instant) {
    for settlement in settled {
        let key = &settlement.key;
        if let Outcome::Conversion(conversion) = settlement.outcome {
            evidence::record(shared, key, Evidence::Conversion(conversion), now.into_std());
        }
        let outcome = settlement.outcome.label();
        shared.metrics.conversion(key.provider(), key.channel(), outcome);
        tracing::debug!(
            event_id = %settlement.event_id,
            provider = %key.provider(),
            country = %key.country(),
            channel = key.channel().as_str(),
            outcome,
            "send settled by okta's events"
        );
    }
}

/// Settles the sends whose time ran out with no event: never entered (or only wrong codes).
/// When neither the event hook nor System Log polling is configured any more (a reload), they
/// are dropped instead: no event could have come.
pub(crate) fn settle_expired(shared: &Shared, now: Instant) {
    let settled = shared.conversions.sweep(now);
    if settled.is_empty() {
        return;
    }
    if shared.runtime().okta.reports_conversions() {
        record(shared, &settled, now);
    } else {
        tracing::info!(
            dropped = settled.len(),
            "sends dropped unsettled: okta's events are no longer configured"
        );
    }
}

/// Codes whose life ended without the user asking again: without Okta's events, a weak sign
/// that they arrived, so that resends count as a share of a provider's codes and not by their
/// number (which would punish the busiest provider). With Okta's events they are dropped: the
/// conversion store settles those sends with better information.
pub(crate) fn settle_unresent(shared: &Shared, now: Instant) {
    let unresent = shared.ledger.take_unresent(now);
    if shared.runtime().okta.reports_conversions() {
        return;
    }
    for key in unresent {
        let not_resent = Evidence::Conversion(Conversion::NotResent);
        evidence::record(shared, &key, not_resent, now.into_std());
        shared.metrics.conversion(key.provider(), key.channel(), Conversion::NotResent.label());
    }
}

/// Remembers a send a provider accepted for Okta, when Okta's events are configured, until
/// what Okta says (or does not) settles it. `user` is the keyed hash of the Okta user and the
/// channel; `expires` the code's expiry.
pub(crate) fn record_send(
    shared: &Shared,
    runtime: &Runtime,
    user: UserKey,
    event_id: &str,
    key: HealthKey,
    sent_at: Instant,
    expires: Instant,
) {
    if !runtime.okta.reports_conversions() {
        return;
    }
    let window_end = expires + GRACE;
    let polling = runtime.okta.system_log.as_ref().map_or(Duration::ZERO, |log| log.interval);
    let settle_at = window_end + LATENESS + polling;
    let send = Send { event_id: event_id.to_owned(), key, sent_at, window_end, settle_at };
    let dropped = shared.conversions.record_send(user, send);
    if dropped > 0 {
        shared.metrics.conversion_sends_dropped(dropped);
    }
}

/// A new request for a phone while its last code lives: without Okta's events, a weak sign that
/// the last code did not arrive (users also ask again out of impatience, so it weighs half).
/// With them, the conversion store settles that send with better information. `superseded` is
/// the last send's health key when this request is the first to supersede it (the ledger's
/// `supersede`, fleet-wide in Redis mode: `fleet::ledger::phone_history`).
pub(crate) fn note_resend(
    shared: &Shared,
    runtime: &Runtime,
    superseded: Option<HealthKey>,
    now: Instant,
) {
    if runtime.okta.reports_conversions() {
        return;
    }
    let Some(previous) = superseded else { return };
    let resent = Conversion::Superseded { confirmed: false };
    evidence::record(shared, &previous, Evidence::Conversion(resent), now.into_std());
    shared.metrics.conversion(previous.provider(), previous.channel(), "resent");
    tracing::debug!(
        provider = %previous.provider(),
        country = %previous.country(),
        channel = previous.channel().as_str(),
        "resend inside the last code's life: counted against its provider, at half weight"
    );
}
