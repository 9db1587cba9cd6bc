//! What an emulator does wrong, shared by every provider emulator.
//!
//! Faults are set at runtime, in-process or with `PUT /__sim/faults`, and apply to every API
//! request the emulator receives (sends and probes alike, as a real outage would). Randomness
//! (jitter, the error rate) comes from one seeded RNG per emulator, so a run with the same seed
//! and the same request order draws the same faults.
//!
//! The emulator plays the delay, the hang and the reset itself; it hands error answers back to
//! the provider module, which renders them with [`InjectedAnswer::render`]: the provider's own
//! error bodies, around what every provider shares (the HTML page of a status without a code,
//! the `Retry-After` of a rate limit).

use std::sync::Mutex;
use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::server::ConnectionControl;

/// The faults an emulator injects; the default injects none.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Faults {
    /// Fixed delay before every answer, in milliseconds.
    pub latency_ms: u64,
    /// Extra delay per request, drawn uniformly from `0..=jitter_ms`.
    pub jitter_ms: u64,
    /// Probability (0 to 1) that a request gets `error` instead of its normal answer.
    pub error_rate: f64,
    /// The failure injected when `error_rate` draws it (`None`: no failure).
    pub error: Option<Fault>,
    /// When set, re-seeds the emulator's RNG as these faults are applied (a replayable run).
    pub seed: Option<u64>,
}

/// One kind of failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    /// Answer `status` with the provider's error body for `code`; without a code, a non-JSON
    /// (HTML) body, as a load balancer in front of the provider would send.
    Status {
        /// HTTP status, 100 to 599.
        status: u16,
        /// The provider's error code (Twilio `20500`).
        code: Option<u32>,
    },
    /// Answer 429 with `Retry-After` and the provider's rate-limit body.
    RateLimit {
        /// Seconds sent in `Retry-After`.
        retry_after_s: u64,
    },
    /// Read the request and never answer.
    Hang,
    /// Read the request, then reset the connection (the client sees a TCP RST).
    Reset,
}

impl Faults {
    /// No faults.
    #[must_use]
    pub fn none() -> Faults {
        Faults::default()
    }

    /// `fault` on every request.
    #[must_use]
    pub fn always(fault: Fault) -> Faults {
        Faults { error_rate: 1.0, error: Some(fault), ..Faults::default() }
    }

    /// `fault` on each request with probability `rate`.
    #[must_use]
    pub fn sometimes(rate: f64, fault: Fault) -> Faults {
        Faults { error_rate: rate, error: Some(fault), ..Faults::default() }
    }

    /// Adds a fixed delay and a random jitter to every answer.
    #[must_use]
    pub fn with_latency(self, fixed: Duration, jitter: Duration) -> Faults {
        Faults {
            latency_ms: saturating_millis(fixed),
            jitter_ms: saturating_millis(jitter),
            ..self
        }
    }

    /// Re-seeds the RNG when applied.
    #[must_use]
    pub fn with_seed(self, seed: u64) -> Faults {
        Faults { seed: Some(seed), ..self }
    }

    /// Checks the values a caller can get wrong; the message names the field.
    pub fn check(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.error_rate) {
            return Err(format!("error_rate: must be between 0 and 1, got {}", self.error_rate));
        }
        if let Some(Fault::Status { status, .. }) = self.error
            && !(100..=599).contains(&status)
        {
            return Err(format!("error.status: must be an HTTP status, got {status}"));
        }
        Ok(())
    }
}

fn saturating_millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The faults in force and the RNG they draw from.
///
/// A std mutex: every section is a few arithmetic operations and never spans an `.await`.
#[derive(Debug)]
pub(crate) struct FaultInjector {
    state: Mutex<InjectorState>,
}

#[derive(Debug)]
struct InjectorState {
    faults: Faults,
    rng: StdRng,
}

impl FaultInjector {
    /// No faults, RNG seeded with `seed`.
    pub(crate) fn new(seed: u64) -> FaultInjector {
        FaultInjector {
            state: Mutex::new(InjectorState {
                faults: Faults::none(),
                rng: StdRng::seed_from_u64(seed),
            }),
        }
    }

    /// Replaces the faults (and re-seeds when they carry a seed).
    ///
    /// # Panics
    /// If [`Faults::check`] refuses them: setting impossible faults is a bug in the caller.
    pub(crate) fn set(&self, faults: Faults) {
        if let Err(reason) = faults.check() {
            panic!("invalid faults: {reason}");
        }
        let mut state = self.lock();
        if let Some(seed) = faults.seed {
            state.rng = StdRng::seed_from_u64(seed);
        }
        state.faults = faults;
    }

    /// The faults in force.
    pub(crate) fn get(&self) -> Faults {
        self.lock().faults.clone()
    }

    /// Draws what happens to the next request.
    pub(crate) fn draw(&self) -> Decision {
        let mut state = self.lock();
        let InjectorState { faults, rng } = &mut *state;
        let jitter_ms =
            if faults.jitter_ms > 0 { rng.random_range(0..=faults.jitter_ms) } else { 0 };
        let delay = Duration::from_millis(faults.latency_ms.saturating_add(jitter_ms));
        // A rate of exactly 0 or 1 draws nothing, so turning a fault on or off does not shift the
        // random sequence of the other draws.
        let is_failing = match faults.error_rate {
            rate if rate <= 0.0 => false,
            rate if rate >= 1.0 => true,
            rate => rng.random::<f64>() < rate,
        };
        Decision { delay, fault: if is_failing { faults.error } else { None } }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, InjectorState> {
        // A panic while holding this lock cannot leave the state half-written (each section
        // assigns whole values), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// What happens to one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Decision {
    delay: Duration,
    fault: Option<Fault>,
}

/// An error answer the provider module must render in its own format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum InjectedAnswer {
    /// See [`Fault::Status`].
    Status { status: u16, code: Option<u32> },
    /// See [`Fault::RateLimit`].
    RateLimit { retry_after_s: u64 },
}

impl InjectedAnswer {
    /// The answer to send: for a status with a code, the provider's `error(status, code)`; for a
    /// rate limit, the provider's `rate_limited()` answer with `Retry-After` added. A status
    /// without a code gets [`html_page`], whatever the provider.
    pub(crate) fn render(
        self,
        error: impl FnOnce(StatusCode, u32) -> Response,
        rate_limited: impl FnOnce() -> Response,
    ) -> Response {
        match self {
            InjectedAnswer::Status { status, code } => {
                // `Faults::check` keeps the status in 100..=599.
                let status =
                    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                match code {
                    Some(code) => error(status, code),
                    None => html_page(status),
                }
            }
            InjectedAnswer::RateLimit { retry_after_s } => {
                let mut response = rate_limited();
                let retry_after = HeaderValue::from(retry_after_s);
                response.headers_mut().insert(header::RETRY_AFTER, retry_after);
                response
            }
        }
    }
}

/// The bare HTML error page a load balancer or proxy in front of a provider answers with: what
/// an adapter must handle without a JSON body to read.
pub(crate) fn html_page(status: StatusCode) -> Response {
    let page = format!("<html><body><h1>{status}</h1></body></html>");
    (status, [(header::CONTENT_TYPE, "text/html")], page).into_response()
}

impl Decision {
    /// Plays the delay, hang or reset; returns the error answer to send instead of the normal
    /// one, if any. Never returns for a hang or a reset.
    ///
    /// Without a `connection` (the router served by something other than [`crate::server`]) a
    /// reset degrades to a hang: the client still gets no answer.
    pub(crate) async fn play(
        self,
        connection: Option<&ConnectionControl>,
    ) -> Option<InjectedAnswer> {
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        match self.fault? {
            Fault::Status { status, code } => Some(InjectedAnswer::Status { status, code }),
            Fault::RateLimit { retry_after_s } => Some(InjectedAnswer::RateLimit { retry_after_s }),
            Fault::Hang => std::future::pending().await,
            Fault::Reset => {
                if let Some(connection) = connection {
                    connection.reset();
                }
                std::future::pending().await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draws(injector: &FaultInjector, n: usize) -> Vec<Decision> {
        (0..n).map(|_| injector.draw()).collect()
    }

    #[test]
    fn same_seed_draws_the_same_faults() {
        let faults = Faults::sometimes(0.5, Fault::Hang)
            .with_latency(Duration::from_millis(10), Duration::from_millis(20))
            .with_seed(7);
        let first = FaultInjector::new(1);
        first.set(faults.clone());
        let second = FaultInjector::new(2);
        second.set(faults);
        let drawn = draws(&first, 64);
        assert_eq!(drawn, draws(&second, 64));
        let n_failing = drawn.iter().filter(|d| d.fault.is_some()).count();
        assert!((16..=48).contains(&n_failing), "{n_failing} of 64 at rate 0.5");
        assert!(drawn.iter().all(|d| (10..=30).contains(&d.delay.as_millis())));
    }

    #[test]
    fn rates_zero_and_one_are_exact() {
        let injector = FaultInjector::new(0);
        assert!(draws(&injector, 32).iter().all(|d| d.fault.is_none() && d.delay.is_zero()));
        injector.set(Faults::always(Fault::Reset));
        assert!(draws(&injector, 32).iter().all(|d| d.fault == Some(Fault::Reset)));
    }

    #[test]
    fn json_shape_round_trips_and_rejects_unknown_keys() {
        let json = r#"{"latency_ms":5,"error_rate":1,"error":{"kind":"status","status":503,"code":20503}}"#;
        let faults: Faults = serde_json::from_str(json).unwrap();
        assert_eq!(faults.error, Some(Fault::Status { status: 503, code: Some(20503) }));
        assert_eq!(faults.latency_ms, 5);
        let rate_limit: Fault =
            serde_json::from_str(r#"{"kind":"rate_limit","retry_after_s":3}"#).unwrap();
        assert_eq!(rate_limit, Fault::RateLimit { retry_after_s: 3 });
        assert!(serde_json::from_str::<Faults>(r#"{"latency":5}"#).is_err());
        let typo = r#"{"kind":"rate_limit","retry_after":3}"#;
        assert!(serde_json::from_str::<Fault>(typo).is_err());
    }

    #[test]
    fn check_names_the_field() {
        assert!(Faults::sometimes(1.5, Fault::Hang).check().unwrap_err().starts_with("error_rate"));
        let bad_status = Faults::always(Fault::Status { status: 42, code: None });
        assert!(bad_status.check().unwrap_err().starts_with("error.status"));
        assert!(Faults::none().check().is_ok());
    }
}
