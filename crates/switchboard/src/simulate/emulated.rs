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
//! providers, which tokio's `select!` may vary, so the same seed gives the same report.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use rand::SeedableRng;
use rand::rngs::StdRng;
use switchboard_core::{Channel, Country, ErrorClass, OutboundMessage, ProviderId};
use switchboard_providers::{Accepted, Provider, ProviderError};
use tokio::time::Instant;

use super::scenario::{Capacity, OverCapacity, Reply, Scenario};
use super::traffic::Arrival;

/// What the emulated providers report as their kind.
const KIND: &str = "emulated";

/// Everything accepted for one OTP, and how many sends it took.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct OtpRecord {
    /// Sends made, accepted or not.
    pub(crate) sends: u32,
    /// Sends per provider index (to seed each send's RNG).
    pub(crate) sends_by_provider: Vec<u32>,
    /// (provider index, acceptance time from the start of the run, price).
    pub(crate) acceptances: Vec<(usize, Duration, f64)>,
}

/// What a run's providers did. A std mutex: sections are a few vector operations, never across
/// an `.await`.
#[derive(Debug)]
pub(crate) struct World {
    pub(crate) scenario: Arc<Scenario>,
    seed: u64,
    pub(crate) start: Instant,
    journal: Mutex<Vec<OtpRecord>>,
    /// One bucket per provider (unused for providers without a cap).
    buckets: Mutex<Vec<Bucket>>,
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
    pub(crate) fn new(scenario: Arc<Scenario>, seed: u64, otps: usize, start: Instant) -> World {
        let n_providers = scenario.providers.len();
        let record = OtpRecord { sends_by_provider: vec![0; n_providers], ..OtpRecord::default() };
        World {
            scenario,
            seed,
            start,
            journal: Mutex::new(vec![record; otps]),
            buckets: Mutex::new(vec![Bucket::default(); n_providers]),
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

    /// Decides one send by `provider` of OTP `otp`, recording an acceptance if there is one.
    pub(crate) fn send(
        &self,
        provider: usize,
        otp: usize,
        country: Country,
        channel: Channel,
    ) -> Reply {
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
                    self.journal()[otp].acceptances.push((provider, at + after + wait, price));
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
        reply
    }
}

/// SplitMix64 over the parts: a cheap, well-spread seed from several numbers.
fn mix(parts: &[u64]) -> u64 {
    parts.iter().fold(0x9e37_79b9_7f4a_7c15_u64, |state, part| {
        let mut z = state.wrapping_add(*part).wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    })
}

/// The Okta `eventId` of the `index`-th OTP.
pub(crate) fn event_id(index: usize) -> String {
    format!("sim-{index:08}")
}

fn otp_index(reference: &str) -> Option<usize> {
    reference.strip_prefix("sim-")?.parse().ok()
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
        match self.world.send(self.index, otp, country, channel) {
            Reply::Accept { after } if after <= self.timeout => {
                tokio::time::sleep(after).await;
                Ok(Accepted { message_id: format!("{}-{otp}", self.id) })
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_round_trip() {
        assert_eq!(otp_index(&event_id(42)), Some(42));
        assert_eq!(otp_index("evt-1"), None);
    }

    #[test]
    fn mixing_separates_nearby_inputs() {
        assert_ne!(mix(&[1, 2, 3, 0]), mix(&[1, 2, 3, 1]));
        assert_ne!(mix(&[1, 2, 3, 0]), mix(&[1, 3, 2, 0]));
        assert_eq!(mix(&[7, 8]), mix(&[7, 8]));
    }

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
