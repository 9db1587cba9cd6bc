//! The OTP stream: open-loop Poisson arrivals, destinations drawn from the scenario's country
//! mix, and a distinct phone number for every code.
//!
//! Distinct numbers matter: the server treats a second code to the same number within the OTP's
//! lifetime as a resend and prefers another provider, and its fraud guard counts per number and
//! prefix. Reusing numbers would measure those rules, not routing.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use switchboard_core::{Channel, Country, Destination};

use super::numbers::phone_number;
use super::scenario::Scenario;

/// One OTP request.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Arrival {
    /// When, from the start of the run.
    pub(crate) at: Duration,
    pub(crate) country: Country,
    pub(crate) channel: Channel,
    /// E.164.
    pub(crate) phone: String,
    /// The number parsed, once for every policy.
    pub(crate) destination: Destination,
}

/// `otps` arrivals spread over the scenario's duration, the same for every policy.
pub(crate) fn arrivals(scenario: &Scenario, otps: u64, seed: u64) -> Vec<Arrival> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x7261_6666_6963);
    let rate = otps as f64 / scenario.duration.as_secs_f64();
    let mut per_country: Vec<(Country, u64)> = Vec::new();
    let mut at = 0.0_f64;
    (0..otps)
        .map(|_| {
            // Exponential gaps: an open-loop Poisson stream.
            let u: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
            at += -u.ln() / rate;
            let (country, channel) = scenario.draw_destination(&mut rng);
            let n = match per_country.iter_mut().find(|(c, _)| *c == country) {
                Some((_, count)) => {
                    *count += 1;
                    *count
                }
                None => {
                    per_country.push((country, 0));
                    0
                }
            };
            let phone = phone_number(country, n);
            let destination = Destination::parse(&phone, None)
                .expect("generated numbers are valid (tested below)");
            Arrival { at: Duration::from_secs_f64(at), country, channel, phone, destination }
        })
        .collect()
}
