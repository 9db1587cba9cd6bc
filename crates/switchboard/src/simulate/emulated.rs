//! Emulated providers: the real [`Provider`] trait, answered from the scenario's timeline on the
//! paused tokio clock, and the journal of everything they accepted.
//!
//! # Why record an acceptance when the send starts?
//!
//! Because that is when it becomes a fact. A provider that is slower than the caller's timeout
//! still takes the message once the request is written, whether or not anyone waits for the
//! answer: the caller sees a timeout ("possibly accepted"), fails over, and the user gets two
//! codes. So the journal records the acceptance at its own time (send time + latency) the moment
//! the send is made, and the run counts it whatever became of the future.
//!
//! # Throughput
//!
//! A provider with `max_per_second` is a GCRA on the run's clock, the shape of the server's own
//! cap (`governor`'s: one message per `1/N` s, a burst of `N`). A send the account has room for
//! goes out as usual; one beyond it is queued (accepted at its latency, but the message leaves,
//! and the acceptance is recorded, only when its turn comes at `N` per second) or refused (429,
//! `Retry-After: 1`), as the scenario says. The buckets count only the sends the provider would
//! otherwise accept.
//!
//! # Why one RNG per send?
//!
//! Each send draws from an RNG seeded by (run seed, OTP, provider, how many times this OTP went
//! to this provider). Outcomes then do not depend on the order in which tasks reach the
//! providers, which tokio's `select!` may vary, so the same seed gives the same report. An
//! accepted message's fate (does it reach the phone, what does its receipt say, when) is drawn
//! next from the same RNG, after everything the reply drew, so adding handsets to a scenario
//! moves no other draw.
//!
//! # Receipts and conversions
//!
//! In a switchboard run the world also plays what happens after an acceptance, on the paused
//! clock: the provider's delivery receipt is posted to the server's callback route
//! (`/callbacks/{id}`, in the emulated provider's own small JSON format, parsed by its
//! `handle_callback` as a real adapter parses its provider's), and the user who reads the code
//! enters it, which Okta reports to the server's event hook. The baselines read neither, so
//! their runs post nothing.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use axum::http::Request;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};
use switchboard_core::{Channel, Country, ErrorClass, OutboundMessage, ProviderId};
use switchboard_providers::{
    Accepted, Callback, CallbackError, CallbackReply, DeliveryState, Provider, ProviderError,
    Receipt,
};
use tokio::time::Instant;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use super::journal::{Acceptance, OtpRecord, mix, otp_index};
use super::scenario::{Capacity, Fate, OverCapacity, ReceiptCode, ReceiptState, Reply, Scenario};
use super::traffic::Arrival;
use super::users::{self, People};

/// What the emulated providers report as their kind.
const KIND: &str = "emulated";

/// What a run's providers did. A std mutex: sections are a few vector operations, never across
/// an `.await`.
#[derive(Debug)]
pub(crate) struct World {
    pub(crate) scenario: Arc<Scenario>,
    seed: u64,
    pub(crate) start: Instant,
    /// The users, if any, and the OTP's life.
    pub(crate) people: People,
    /// When each sign-in's first request came; request `k` of sign-in `u` is journal entry
    /// `k × sign-ins + u`.
    first_requests: Vec<Duration>,
    journal: Mutex<Vec<OtpRecord>>,
    /// One bucket per provider (unused for providers without a cap).
    buckets: Mutex<Vec<Bucket>>,
    /// Where receipts and conversions go in a switchboard run. Taken out when the run ends: it
    /// holds the server, whose providers hold this world.
    poster: Mutex<Option<Arc<Poster>>>,
    /// Receipts and conversions on their way.
    followers: TaskTracker,
    /// The first post the server did not take.
    error: Mutex<Option<String>>,
}

/// Where a switchboard run's receipts and conversions go: the server's hook router.
#[derive(Debug)]
pub(crate) struct Poster {
    pub(crate) router: Router,
    /// Whether providers' receipts reach the server (not when the operator set no callbacks).
    pub(crate) has_receipts: bool,
    /// Okta's event hook, as (path, header, secret); `None` when not configured.
    pub(crate) events: Option<(String, String, String)>,
}

/// The emulated providers' receipt, as posted to `/callbacks/{id}`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct WireReceipt {
    message_id: String,
    /// `delivered` or `undelivered`.
    status: String,
    /// For `undelivered`: a [`ReceiptCode`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    code: Option<String>,
}

/// One capped provider's GCRA state and what met its cap.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Bucket {
    /// Theoretical arrival time of the next message, from the start of the run; `None` before
    /// the first.
    tat: Option<Duration>,
    /// Sends beyond the cap (queued or refused).
    pub(crate) over_capacity: u64,
    /// The longest a queued message waited for its turn.
    pub(crate) longest_wait: Duration,
}

impl Bucket {
    /// A send `at` into the run under `capacity`: `Some(wait)` if it goes out (after waiting
    /// `wait` in the queue), `None` if refused.
    fn admit(&mut self, capacity: Capacity, at: Duration) -> Option<Duration> {
        // As governor computes it, in whole nanoseconds: the server's bucket and this one agree.
        let interval = Duration::from_secs(1) / capacity.per_second;
        let tolerance = interval * (capacity.per_second - 1);
        let tat = self.tat.unwrap_or(at);
        let earliest = tat.saturating_sub(tolerance);
        if at >= earliest {
            self.tat = Some(tat.max(at) + interval);
            return Some(Duration::ZERO);
        }
        self.over_capacity += 1;
        match capacity.over {
            OverCapacity::Refuse => None,
            OverCapacity::Queue => {
                let wait = earliest - at;
                self.longest_wait = self.longest_wait.max(wait);
                self.tat = Some(tat + interval);
                Some(wait)
            }
        }
    }
}

impl World {
    /// The world of one policy's run over `arrivals`, whose OTPs live `life`.
    pub(crate) fn new(
        scenario: Arc<Scenario>,
        seed: u64,
        arrivals: &[Arrival],
        life: Duration,
        start: Instant,
    ) -> World {
        let n_providers = scenario.providers.len();
        let people = People::new(seed, scenario.users, life);
        let record = OtpRecord { sends_by_provider: vec![0; n_providers], ..OtpRecord::default() };
        let n_requests = arrivals.len() * people.requests_per_sign_in();
        World {
            scenario,
            seed,
            start,
            people,
            first_requests: arrivals.iter().map(|arrival| arrival.at).collect(),
            journal: Mutex::new(vec![record; n_requests]),
            buckets: Mutex::new(vec![Bucket::default(); n_providers]),
            poster: Mutex::new(None),
            followers: TaskTracker::new(),
            error: Mutex::new(None),
        }
    }

    /// The journal and each provider's bucket, once the run is over.
    pub(crate) fn into_parts(self) -> (Vec<OtpRecord>, Vec<Bucket>) {
        let journal = self.journal.into_inner().unwrap_or_else(PoisonError::into_inner);
        let buckets = self.buckets.into_inner().unwrap_or_else(PoisonError::into_inner);
        (journal, buckets)
    }

    fn journal(&self) -> MutexGuard<'_, Vec<OtpRecord>> {
        self.journal.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sign-ins in the run.
    pub(crate) fn n_sign_ins(&self) -> usize {
        self.first_requests.len()
    }

    /// When sign-in `user`'s first request came, from the start of the run.
    pub(crate) fn first_request(&self, user: usize) -> Duration {
        self.first_requests[user]
    }

    /// (sign-in, request number) of journal entry `otp`.
    fn sign_in_of(&self, otp: usize) -> (usize, usize) {
        (otp % self.n_sign_ins(), otp / self.n_sign_ins())
    }

    /// The journal entry of request `k` of sign-in `user`.
    pub(crate) fn request_index(&self, user: usize, k: usize) -> usize {
        k * self.n_sign_ins() + user
    }

    /// Whether the code of request `k` of sign-in `user` reached the phone inside its window.
    /// Asked when the user's patience runs out, which ends the window: every message that
    /// reached the phone before was accepted, and journaled, by then.
    pub(crate) fn has_code_on_phone(&self, user: usize, k: usize) -> bool {
        let first = self.first_requests[user];
        let acceptances = self.journal()[self.request_index(user, k)].acceptances.clone();
        self.people.on_phone(first, user, k, &acceptances).is_some()
    }

    /// Notes that the user of sign-in `user` asked for request `k` `at` into the run.
    pub(crate) fn note_request(&self, user: usize, k: usize, at: Duration) {
        let index = self.request_index(user, k);
        self.journal()[index].requested_at = Some(at);
    }

    /// Sends receipts and conversions to `poster` from now on.
    pub(crate) fn post_to(&self, poster: Poster) {
        *self.poster.lock().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(poster));
    }

    /// Waits for every receipt and conversion on its way, then lets go of the server; fails if
    /// the server refused any.
    pub(crate) async fn finish(&self) -> anyhow::Result<()> {
        self.followers.close();
        self.followers.wait().await;
        self.poster.lock().unwrap_or_else(PoisonError::into_inner).take();
        match self.error.lock().unwrap_or_else(PoisonError::into_inner).take() {
            Some(error) => Err(anyhow::anyhow!(error)),
            None => Ok(()),
        }
    }

    /// Decides one send by `provider` of OTP `otp`, recording an acceptance if there is one;
    /// returns the reply and the message id an acceptance carries.
    pub(crate) fn send(
        self: &Arc<Self>,
        provider: usize,
        otp: usize,
        country: Country,
        channel: Channel,
    ) -> (Reply, String) {
        let at = self.start.elapsed();
        let n_before = {
            let mut journal = self.journal();
            let record = &mut journal[otp];
            record.sends += 1;
            let n = record.sends_by_provider[provider];
            record.sends_by_provider[provider] += 1;
            n
        };
        let mut rng = StdRng::seed_from_u64(mix(&[
            self.seed,
            otp as u64,
            provider as u64,
            u64::from(n_before),
        ]));
        let mut reply = self.scenario.reply(provider, at, country, &mut rng);
        let message_id = format!("{}-{otp}-{n_before}", self.scenario.providers[provider].id);
        if let Reply::Accept { after } = reply {
            let wait = match self.scenario.providers[provider].capacity {
                None => Some(Duration::ZERO),
                Some(capacity) => self.buckets.lock().unwrap_or_else(PoisonError::into_inner)
                    [provider]
                    .admit(capacity, at),
            };
            match wait {
                Some(wait) => {
                    let price = self.scenario.prices_at(at)[provider].price(country, channel);
                    let fate = self.scenario.fate(provider, at, country, &mut rng);
                    let acceptance = Acceptance {
                        provider,
                        at: at + after + wait,
                        price,
                        is_on_phone: fate.is_on_phone,
                    };
                    self.journal()[otp].acceptances.push(acceptance);
                    self.follow(otp, channel, &message_id, acceptance, fate);
                }
                None => {
                    reply = Reply::Refuse {
                        after: after / 3,
                        class: ErrorClass::RateLimited,
                        retry_after: Some(Duration::from_secs(1)),
                    };
                }
            }
        }
        (reply, message_id)
    }

    /// In a switchboard run, schedules what follows an acceptance: its receipt, and the user
    /// entering the code if this message is the one they read.
    fn follow(
        self: &Arc<Self>,
        otp: usize,
        channel: Channel,
        message_id: &str,
        acceptance: Acceptance,
        fate: Fate,
    ) {
        let Some(poster) = self.poster.lock().unwrap_or_else(PoisonError::into_inner).clone()
        else {
            return;
        };
        if poster.has_receipts
            && let Some((delay, state)) = fate.receipt
        {
            let (status, code) = match state {
                ReceiptState::Delivered => ("delivered", None),
                ReceiptState::Undelivered(code) => ("undelivered", Some(code.as_str().to_owned())),
            };
            let receipt =
                WireReceipt { message_id: message_id.to_owned(), status: status.to_owned(), code };
            let path = format!("/callbacks/{}", self.scenario.providers[acceptance.provider].id);
            let due = self.start + acceptance.at + delay;
            let world = Arc::clone(self);
            let poster = Arc::clone(&poster);
            self.followers.spawn(async move {
                tokio::time::sleep_until(due).await;
                let request = Request::post(&path)
                    .header("content-type", "application/json")
                    .body(Body::from(serde_json::to_string(&receipt).unwrap_or_default()));
                world.post(&poster.router, &path, request).await;
            });
        }
        let Some((path, header, secret)) = poster.events.clone() else { return };
        let (user, k) = self.sign_in_of(otp);
        let first = self.first_requests[user];
        // Whether this message is the *first* to reach the phone is known once every earlier
        // one has been accepted, which is certain by the time the user types; whether the user
        // would type it at all is known now.
        let Some(entry) = self.people.entry(first, user, k, &[acceptance]) else { return };
        let world = Arc::clone(self);
        self.followers.spawn(async move {
            tokio::time::sleep_until(world.start + entry.at).await;
            let acceptances = world.journal()[otp].acceptances.clone();
            let read = world.people.entry(first, user, k, &acceptances);
            if read.map(|read| read.acceptance) != Some(acceptance) {
                return;
            }
            let request = Request::post(&path)
                .header("content-type", "application/json")
                .header(header.as_str(), secret.as_str())
                .body(Body::from(users::okta_event(user, channel, otp)));
            world.post(&poster.router, &path, request).await;
        });
    }

    /// Posts one request to the server, keeping the first refusal for [`World::finish`].
    async fn post(
        &self,
        router: &Router,
        path: &str,
        request: Result<Request<Body>, axum::http::Error>,
    ) {
        let outcome = match request.context("building a request") {
            Ok(request) => match router.clone().oneshot(request).await {
                Ok(response) if response.status().is_success() => Ok(()),
                Ok(response) => Err(format!("{path} answered {}", response.status())),
                Err(error) => Err(format!("{path}: {error}")),
            },
            Err(error) => Err(format!("{path}: {error:#}")),
        };
        if let Err(error) = outcome {
            self.error.lock().unwrap_or_else(PoisonError::into_inner).get_or_insert(error);
        }
    }
}

/// One emulated provider account, standing in for the configured adapter of the same id.
#[derive(Debug)]
pub(crate) struct EmulatedProvider {
    id: ProviderId,
    index: usize,
    /// The adapter's own per-request timeout, from the switchboard config.
    timeout: Duration,
    world: Arc<World>,
}

impl EmulatedProvider {
    pub(crate) fn new(id: ProviderId, index: usize, timeout: Duration, world: Arc<World>) -> Self {
        EmulatedProvider { id, index, timeout, world }
    }

    /// Sends, honouring the adapter's timeout as a real HTTP client would.
    pub(crate) async fn deliver(
        &self,
        arrival: &Arrival,
        otp: usize,
    ) -> Result<Accepted, ProviderError> {
        self.answer(otp, arrival.country, arrival.channel).await
    }

    async fn answer(
        &self,
        otp: usize,
        country: Country,
        channel: Channel,
    ) -> Result<Accepted, ProviderError> {
        let timed_out =
            || ProviderError::possibly_accepted(KIND, ErrorClass::Timeout, "request timed out");
        let (reply, message_id) = self.world.send(self.index, otp, country, channel);
        match reply {
            Reply::Accept { after } if after <= self.timeout => {
                tokio::time::sleep(after).await;
                Ok(Accepted { message_id })
            }
            Reply::Refuse { after, class, retry_after } if after <= self.timeout => {
                tokio::time::sleep(after).await;
                let mut error = ProviderError::not_sent(KIND, class, "refused");
                error.retry_after = retry_after;
                Err(error)
            }
            Reply::Accept { .. } | Reply::Refuse { .. } | Reply::Hang => {
                tokio::time::sleep(self.timeout).await;
                Err(timed_out())
            }
        }
    }
}

#[async_trait]
impl Provider for EmulatedProvider {
    fn id(&self) -> &ProviderId {
        &self.id
    }

    fn kind(&self) -> &'static str {
        KIND
    }

    fn supports(&self, _channel: Channel) -> bool {
        true
    }

    async fn send(&self, message: &OutboundMessage) -> Result<Accepted, ProviderError> {
        let Some(otp) = otp_index(&message.reference) else {
            return Err(ProviderError::not_sent(
                KIND,
                ErrorClass::AuthConfig,
                "not a simulated OTP",
            ));
        };
        self.answer(otp, message.destination.country(), message.channel).await
    }

    async fn probe(&self) -> Result<(), ProviderError> {
        Ok(())
    }

    /// The emulated receipt: `{"message_id", "status": "delivered" | "undelivered", "code"}`,
    /// posted only by this world to a router no one else can reach, so unsigned.
    async fn handle_callback(&self, callback: &Callback) -> Result<CallbackReply, CallbackError> {
        let malformed = |what: &str| CallbackError::Malformed(format!("simulated receipt: {what}"));
        let receipt: WireReceipt =
            serde_json::from_slice(&callback.body).map_err(|_| malformed("not its JSON"))?;
        let state = match (receipt.status.as_str(), receipt.code.as_deref()) {
            ("delivered", None) => DeliveryState::Delivered,
            ("undelivered", Some(code)) => {
                // As the real adapters classify their providers' codes: a filtered message is a
                // verdict on the number (Twilio 30007), so is an unknown subscriber; an
                // unreachable handset is not the number's fault.
                let class = match ReceiptCode::parse(code) {
                    Some(ReceiptCode::Filtered) => ErrorClass::Blocked,
                    Some(ReceiptCode::UnknownSubscriber) => ErrorClass::InvalidNumber,
                    Some(ReceiptCode::Unreachable) => ErrorClass::Transient,
                    None => return Err(malformed("unknown code")),
                };
                DeliveryState::Undelivered(class)
            }
            _ => return Err(malformed("unknown status")),
        };
        Ok(CallbackReply::receipts(vec![Receipt {
            message_id: receipt.message_id,
            state,
            provider_code: receipt.code,
        }]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_passes_a_second_s_worth_then_queues_or_refuses() {
        let queue = Capacity { per_second: 4, over: OverCapacity::Queue };
        let mut bucket = Bucket::default();
        let at = Duration::from_secs(10);
        let waits: Vec<_> = (0..6).map(|_| bucket.admit(queue, at)).collect();
        let ms = |ms| Some(Duration::from_millis(ms));
        assert_eq!(waits, [ms(0), ms(0), ms(0), ms(0), ms(250), ms(500)]);
        assert_eq!((bucket.over_capacity, bucket.longest_wait), (2, Duration::from_millis(500)));
        // Two seconds later the queue has drained and the bucket refilled.
        assert_eq!(bucket.admit(queue, at + Duration::from_secs(2)), ms(0));

        let refuse = Capacity { per_second: 4, over: OverCapacity::Refuse };
        let mut bucket = Bucket::default();
        let answers: Vec<_> = (0..6).map(|_| bucket.admit(refuse, at).is_some()).collect();
        assert_eq!(answers, [true, true, true, true, false, false]);
        // A refusal takes no turn: a quarter second later one message has room again.
        assert_eq!(bucket.admit(refuse, at + Duration::from_millis(250)), ms(0));
        assert_eq!(bucket.admit(refuse, at + Duration::from_millis(250)), None);
    }
}
