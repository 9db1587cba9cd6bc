//! The store alone, with plain instants: which send an event credits, what it supersedes, what
//! settles unseen, and that nothing settles twice.

use std::time::Duration;

use switchboard_core::{Country, ProviderId};

use super::*;

const SMS: Channel = Channel::Sms;

fn key(provider: &str) -> HealthKey {
    HealthKey::new(ProviderId::parse(provider).unwrap(), Country::parse("US").unwrap(), SMS)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// A send for `event_id` through `provider`, `at` after `start`, with a five-minute code, a
/// 30 s grace and settling two minutes after that.
fn send(event_id: &str, provider: &str, start: Instant, at: u64) -> Send {
    let sent_at = start + secs(at);
    let window_end = sent_at + secs(300 + 30);
    Send {
        event_id: event_id.into(),
        key: key(provider),
        sent_at,
        window_end,
        settle_at: window_end + secs(120),
    }
}

fn settled(observation: Observation) -> Vec<(String, &'static str)> {
    match observation {
        Observation::Matched(settlements) => labels(settlements),
        other => panic!("not matched: {other:?}"),
    }
}

fn labels(settlements: Vec<Settlement>) -> Vec<(String, &'static str)> {
    settlements
        .into_iter()
        .map(|s| (format!("{}@{}", s.event_id, s.key.provider()), s.outcome.label()))
        .collect()
}

#[test]
fn an_entry_credits_the_latest_live_send_and_supersedes_the_earlier_ones() {
    let store = ConversionStore::new(100);
    let start = Instant::now();
    let user = [1; 32];
    store.record_send(user, send("e1", "twilio", start, 0));
    store.record_send(user, send("e2", "vonage", start, 40));
    // Another user's and another channel's sends are not touched.
    store.record_send([2; 32], send("other", "twilio", start, 10));
    let at = start + secs(60);
    let observed = store.observe(&user, "uuid-1", at, Report::Entered, at);
    let mut outcomes = settled(observed);
    outcomes.sort();
    assert_eq!(outcomes, [("e1@twilio".into(), "superseded"), ("e2@vonage".into(), "entered")]);
    // Okta delivers again: nothing settles twice.
    assert_eq!(store.observe(&user, "uuid-1", at, Report::Entered, at), Observation::Duplicate);
    // Another event for the same send (the second activation event Identity Engine emits)
    // finds it, and settles nothing.
    assert_eq!(settled(store.observe(&user, "uuid-2", at, Report::Entered, at)), []);
    // When their windows end, only the other user's send is left to settle.
    let later = start + secs(1_000);
    assert_eq!(labels(store.sweep(later)), [("other@twilio".into(), "not_entered")]);
    assert_eq!(store.len().0, 0, "settled sends are forgotten");
}

#[test]
fn an_event_published_before_a_resend_credits_the_send_it_was_for() {
    let store = ConversionStore::new(100);
    let start = Instant::now();
    let user = [1; 32];
    store.record_send(user, send("e1", "twilio", start, 0));
    store.record_send(user, send("e2", "vonage", start, 40));
    let (published, now) = (start + secs(30), start + secs(90));
    assert_eq!(
        settled(store.observe(&user, "u", published, Report::Entered, now)),
        [("e1@twilio".into(), "entered")]
    );
    assert_eq!(labels(store.sweep(start + secs(1_000))), [("e2@vonage".into(), "not_entered")]);
}

#[test]
fn events_outside_every_window_match_nothing() {
    let store = ConversionStore::new(100);
    let start = Instant::now() + secs(60);
    let user = [1; 32];
    store.record_send(user, send("e1", "twilio", start, 0));
    for (at, why) in [(start - secs(1), "before the send"), (start + secs(331), "after the window")]
    {
        let uuid = format!("u-{why}");
        assert_eq!(
            store.observe(&user, &uuid, at, Report::Entered, at),
            Observation::Unmatched,
            "{why}"
        );
    }
    assert_eq!(
        store.observe(&[9; 32], "u-stranger", start, Report::Entered, start),
        Observation::Unmatched
    );
    assert_eq!(labels(store.sweep(start + secs(450))), [("e1@twilio".into(), "not_entered")]);
}

#[test]
fn a_wrong_code_means_the_user_was_there_until_the_right_one_comes() {
    let store = ConversionStore::new(100);
    let start = Instant::now();
    store.record_send([1; 32], send("e1", "twilio", start, 0));
    store.record_send([2; 32], send("e2", "twilio", start, 0));
    let at = start + secs(20);
    assert_eq!(settled(store.observe(&[1; 32], "a", at, Report::WrongCode, at)), []);
    assert_eq!(settled(store.observe(&[2; 32], "b", at, Report::WrongCode, at)), []);
    assert_eq!(
        settled(store.observe(&[2; 32], "c", at + secs(10), Report::Entered, at)),
        [("e2@twilio".into(), "entered")]
    );
    assert_eq!(labels(store.sweep(start + secs(451))), [("e1@twilio".into(), "wrong_code")]);
}

#[test]
fn a_send_settles_as_never_entered_only_when_its_time_comes() {
    let store = ConversionStore::new(100);
    let start = Instant::now();
    let sent = send("e1", "twilio", start, 0);
    let settle_at = sent.settle_at;
    store.record_send([1; 32], sent);
    assert_eq!(store.sweep(settle_at - Duration::from_millis(1)), []);
    assert_eq!(labels(store.sweep(settle_at)), [("e1@twilio".into(), "not_entered")]);
    assert_eq!(store.sweep(settle_at + secs(3_600)), [], "once");
    // An event arriving after the send settled finds nothing to settle.
    let late = settle_at - secs(200);
    assert_eq!(
        store.observe(&[1; 32], "late", late, Report::Entered, settle_at),
        Observation::Unmatched
    );
}

#[test]
fn memory_is_bounded_and_evicted_sends_never_settle() {
    let store = ConversionStore::new(3);
    let start = Instant::now();
    let dropped: Vec<usize> = [[1; 32], [2; 32], [3; 32], [4; 32]]
        .into_iter()
        .enumerate()
        .map(|(index, user)| {
            store.record_send(user, send(&format!("e{index}"), "twilio", start, index as u64))
        })
        .collect();
    assert_eq!(dropped, [0, 0, 0, 1], "the fourth send makes room by dropping one");
    assert_eq!(store.len().0, 3);
    let settled_ids: Vec<_> = labels(store.sweep(start + secs(1_000)));
    assert_eq!(settled_ids.len(), 3);
    assert!(!settled_ids.iter().any(|(id, _)| id.starts_with("e0@")), "the first to settle went");

    // One user's list is capped, oldest dropped.
    for index in 0..(MAX_SENDS_PER_USER as u64 + 2) {
        store.record_send([5; 32], send(&format!("r{index}"), "twilio", start, index));
    }
    assert_eq!(store.len().0, 3, "and the store's capacity still holds");
    let store = ConversionStore::new(1_000);
    for index in 0..(MAX_SENDS_PER_USER as u64 + 2) {
        store.record_send([5; 32], send(&format!("r{index}"), "twilio", start, index));
    }
    assert_eq!(store.len().0, MAX_SENDS_PER_USER);
    let swept = labels(store.sweep(start + secs(1_000)));
    assert_eq!(swept.len(), MAX_SENDS_PER_USER);
    assert!(!swept.iter().any(|(id, _)| id == "r0@twilio" || id == "r1@twilio"));

    // Event ids: bounded by capacity, and forgotten after their time.
    let store = ConversionStore::new(2);
    for uuid in ["a", "b", "c"] {
        store.observe(&[1; 32], uuid, start, Report::Entered, start);
    }
    assert_eq!(store.len().1, 2);
    assert_eq!(store.observe(&[1; 32], "c", start, Report::Entered, start), Observation::Duplicate);
    assert_eq!(
        store.observe(&[1; 32], "a", start, Report::Entered, start),
        Observation::Unmatched,
        "evicted"
    );
    store.sweep(start + SEEN_TTL);
    assert_eq!(store.len().1, 0);
}

#[test]
fn the_store_holds_no_user_id_phone_number_or_code() {
    let phones = PhoneHasher::new(b"test key");
    let store = ConversionStore::new(10);
    let user = user_key(&phones, "00uyxxSknGtK8022w0g3", SMS);
    assert_ne!(user, user_key(&phones, "00uyxxSknGtK8022w0g3", Channel::Voice), "per channel");
    assert_ne!(
        user,
        user_key(&PhoneHasher::new(b"other key"), "00uyxxSknGtK8022w0g3", SMS),
        "keyed"
    );
    store.record_send(user, send("evt-1", "twilio", Instant::now(), 0));
    let printed = format!("{store:?}");
    assert!(printed.contains("evt-1"), "{printed}");
    assert!(!printed.contains("00uyxx"), "{printed}");
}
