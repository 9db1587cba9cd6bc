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
///
/// The base rate is `otps` over the scenario's duration stretched by its surges
/// ([`Scenario::base_rate_seconds`]), so a surge concentrates the same `otps` rather than adding
/// to them; gaps are drawn at the base rate and mapped through the surges
/// ([`Scenario::surge_time`]), which is the identity for a scenario without any.
pub(crate) fn arrivals(scenario: &Scenario, otps: u64, seed: u64) -> Vec<Arrival> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x7261_6666_6963);
    let rate = otps as f64 / scenario.base_rate_seconds();
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
            let at_s = scenario.surge_time(at);
            Arrival { at: Duration::from_secs_f64(at_s), country, channel, phone, destination }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(surges: &str) -> Scenario {
        let text = format!(
            r#"
            name = "t"
            description = "t"
            duration_s = 1000
            [traffic]
            countries = {{ US = 1 }}
            {surges}
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
        Scenario::parse(&text).unwrap()
    }

    #[test]
    fn a_surge_concentrates_the_same_otps_in_its_window() {
        let plain = scenario("");
        assert_eq!(plain.surge_time(123.456), 123.456, "no surge: the identity");
        let surged = scenario("surges = [{ from_s = 200, until_s = 300, rate_multiplier = 5 }]");
        // 1,000 s plus 4 x 100 s: the base rate is otps / 1,400 s.
        assert!((surged.base_rate_seconds() - 1400.0).abs() < 1e-9);
        assert_eq!(surged.surge_time(100.0), 100.0);
        assert!((surged.surge_time(450.0) - 250.0).abs() < 1e-9);
        assert!((surged.surge_time(900.0) - 500.0).abs() < 1e-9);

        let arrivals = arrivals(&surged, 14_000, 3);
        assert_eq!(arrivals.len(), 14_000);
        let in_window = |from: u64, until: u64| {
            let window = Duration::from_secs(from)..Duration::from_secs(until);
            arrivals.iter().filter(|a| window.contains(&a.at)).count() as f64
        };
        // Expected: 10/s outside (1,000 in 100 s) and 50/s inside (5,000 in 100 s).
        assert!((4_700.0..5_300.0).contains(&in_window(200, 300)), "{}", in_window(200, 300));
        assert!((850.0..1_150.0).contains(&in_window(100, 200)), "{}", in_window(100, 200));
        assert!(arrivals.windows(2).all(|pair| pair[0].at <= pair[1].at));
    }
}
