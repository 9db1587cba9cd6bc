//! The people behind the codes: when each asks (again), which code arrives while it is still
//! good, who enters it, and Okta's event when they do.
//!
//! # One sign-in, several requests
//!
//! Sign-in `u` is the `u`-th arrival. Its first request is Okta's telephony hook call at the
//! arrival; a user with no code after their patience asks again, up to `max_resends` times: a
//! new hook request with a new `eventId` and code, the same number and user id. Request `k` of
//! sign-in `u` is journal entry `k × users + u`, so every index is known before the run and the
//! same for every policy.
//!
//! # When a code counts
//!
//! A code is good from its request until the OTP's life ends, or until the user asks again
//! (Okta's new code replaces it): that is its *window*. A code that reaches the phone inside its
//! window is on the phone; the user then stops waiting and, with `entered_share`, enters it
//! after a typing delay, while it is still alive. What each user does with each code (patience,
//! whether they enter it, how fast) is drawn from the run's seed, the sign-in and the request,
//! never from the policy, so every policy meets the same people and the window of each code is
//! a pure function of them: the report recomputes exactly what the run did.

use std::ops::Range;
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;
use switchboard_core::Channel;
use switchboard_server::okta::OktaEvent;

use super::journal::{Acceptance, mix};
use super::scenario::{UserDraw, Users};

/// Separates the users' random stream from the providers'.
const USER_STREAM: u64 = 0x7573_6572;

/// The users of a run, if the scenario has any, and the OTP's life.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct People {
    seed: u64,
    users: Option<Users>,
    life: Duration,
}

/// The code of one request that a user enters, and when.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Entry {
    /// The acceptance whose message the user read.
    pub(crate) acceptance: Acceptance,
    /// When the user entered it, from the start of the run.
    pub(crate) at: Duration,
}

impl People {
    pub(crate) fn new(seed: u64, users: Option<Users>, life: Duration) -> People {
        People { seed, users, life }
    }

    /// Requests a sign-in may make: the first and every resend.
    pub(crate) fn requests_per_sign_in(&self) -> usize {
        1 + self.users.map_or(0, |users| users.max_resends as usize)
    }

    /// Whether there are users (who ask again and enter codes).
    pub(crate) fn has_users(&self) -> bool {
        self.users.is_some()
    }

    /// What the user of sign-in `user` does with the code of its request `k`.
    fn draw(&self, users: &Users, user: usize, k: usize) -> UserDraw {
        let mut rng = StdRng::seed_from_u64(mix(&[self.seed, user as u64, k as u64, USER_STREAM]));
        users.draw(&mut rng)
    }

    /// When request `k` of a sign-in whose first request came `first` into the run is made, if
    /// the user asks that often.
    pub(crate) fn requested_at(&self, first: Duration, user: usize, k: usize) -> Duration {
        let Some(users) = &self.users else { return first };
        (0..k).fold(first, |at, j| at + self.draw(users, user, j).patience)
    }

    /// When the user of request `k` asks again if no code has arrived; `None` for the last
    /// request a user makes.
    pub(crate) fn asks_again_at(&self, first: Duration, user: usize, k: usize) -> Option<Duration> {
        let users = self.users.as_ref()?;
        (k < users.max_resends as usize)
            .then(|| self.requested_at(first, user, k) + self.draw(users, user, k).patience)
    }

    /// The window in which the code of request `k` counts on the phone.
    pub(crate) fn window(&self, first: Duration, user: usize, k: usize) -> Range<Duration> {
        let from = self.requested_at(first, user, k);
        let expires = from + self.life;
        let until = self.asks_again_at(first, user, k).map_or(expires, |again| again.min(expires));
        from..until
    }

    /// The first acceptance of request `k` whose message reached the phone inside the code's
    /// window: ties between equal times go to the lower provider index.
    pub(crate) fn on_phone(
        &self,
        first: Duration,
        user: usize,
        k: usize,
        acceptances: &[Acceptance],
    ) -> Option<Acceptance> {
        let window = self.window(first, user, k);
        acceptances
            .iter()
            .filter(|acceptance| acceptance.is_on_phone && window.contains(&acceptance.at))
            .min_by(|a, b| a.at.cmp(&b.at).then(a.provider.cmp(&b.provider)))
            .copied()
    }

    /// Whether and when the user enters the code of request `k`: its first message on the
    /// phone, if the user is one who enters it and does so before the code expires.
    pub(crate) fn entry(
        &self,
        first: Duration,
        user: usize,
        k: usize,
        acceptances: &[Acceptance],
    ) -> Option<Entry> {
        let users = self.users.as_ref()?;
        let acceptance = self.on_phone(first, user, k, acceptances)?;
        let draw = self.draw(users, user, k);
        let at = acceptance.at + draw.entry_delay;
        let expires = self.requested_at(first, user, k) + self.life;
        (draw.enters && at < expires).then_some(Entry { acceptance, at })
    }
}

/// The Okta user id of sign-in `user` (the telephony hook's `data.userProfile.userId`).
pub(crate) fn user_id(user: usize) -> String {
    format!("00u{user:017}")
}

/// Okta's event hook delivery for one code entered, request `index`'s:
/// `user.authentication.auth_via_mfa`, `SUCCESS`, for the factor of `channel`, published now
/// (the server places it on its own clock by how long ago that was).
pub(crate) fn okta_event(user: usize, channel: Channel, index: usize) -> String {
    let event = OktaEvent::verified(user_id(user), channel).uuid(format!("sim-log-{index:012}"));
    OktaEvent::delivery(&format!("sim-delivery-{index:012}"), &[event]).to_string()
}

#[cfg(test)]
mod tests {
    use super::super::scenario::Scenario;
    use super::*;

    fn people(max_resends: u32) -> People {
        let text = format!(
            r#"
            name = "t"
            description = "t"
            duration_s = 100
            [traffic]
            countries = {{ US = 1 }}
            [users]
            entered_share = 0.5
            entry_delay_s = {{ median = 10, p99 = 30 }}
            patience_s = {{ median = 40, p99 = 40 }}
            max_resends = {max_resends}
            [providers.alpha]
            latency_ms = {{ median = 100, p99 = 300 }}
            prices.default = {{ sms = 0.01, voice_minute = 0.02 }}
            [switchboard.guard]
            mode = "monitor"
            [[switchboard.routes]]
            countries = ["*"]
            providers = ["alpha"]
            "#
        );
        let scenario = Scenario::parse(&text).unwrap();
        People::new(1, scenario.users, Duration::from_secs(300))
    }

    fn accepted(at_s: u64, is_on_phone: bool) -> Acceptance {
        Acceptance { provider: 0, at: Duration::from_secs(at_s), price: 0.01, is_on_phone }
    }

    #[test]
    fn a_code_counts_until_the_user_asks_again_and_the_last_until_it_expires() {
        let people = people(2);
        let s = Duration::from_secs;
        // A patience of exactly 40 s (median = p99): asks again at 50 s and 90 s.
        assert_eq!(people.window(s(10), 7, 0), s(10)..s(50));
        assert_eq!(people.window(s(10), 7, 1), s(50)..s(90));
        assert_eq!(people.window(s(10), 7, 2), s(90)..s(390));
        assert_eq!(people.asks_again_at(s(10), 7, 2), None);
        assert_eq!(people.requests_per_sign_in(), 3);

        // The late first code does not count; the lost one never does.
        let acceptances = [accepted(20, false), accepted(55, true)];
        assert_eq!(people.on_phone(s(10), 7, 0, &acceptances), None);
        assert_eq!(people.on_phone(s(10), 7, 1, &acceptances), Some(acceptances[1]));
        // Without users, the one request's code counts for the OTP's life.
        let alone = People::new(1, None, s(300));
        assert_eq!(alone.window(s(10), 7, 0), s(10)..s(310));
        assert_eq!(alone.on_phone(s(10), 7, 0, &acceptances), Some(acceptances[1]));
        assert_eq!(alone.entry(s(10), 7, 0, &acceptances), None, "nobody to enter it");
    }

    #[test]
    fn about_the_entered_share_of_users_enter_their_code() {
        let people = people(0);
        let entries = (0..2_000)
            .filter(|user| people.entry(Duration::ZERO, *user, 0, &[accepted(5, true)]).is_some())
            .count();
        assert!((900..1_100).contains(&entries), "{entries}");
    }

    #[test]
    fn the_event_names_the_user_and_the_factor() {
        let event: serde_json::Value =
            serde_json::from_str(&okta_event(42, Channel::Voice, 3)).unwrap();
        let log = &event["data"]["events"][0];
        assert_eq!(log["actor"]["id"], "00u00000000000000042");
        assert_eq!(log["uuid"], "sim-log-000000000003");
        assert_eq!(log["debugContext"]["debugData"]["factor"], "CALL_FACTOR");
    }
}
