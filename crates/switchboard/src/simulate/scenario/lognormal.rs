//! A log-normal distribution fitted to a median and a 99th percentile: every delay in a
//! scenario (accept latency, receipt delay, a user's patience and typing) is one.

use std::time::Duration;

use anyhow::ensure;
use rand::Rng;

use super::file::LogNormalConfig;

/// A log-normal distribution fitted to a median and a 99th percentile, in the unit its key
/// names.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct LogNormal {
    mu: f64,
    sigma: f64,
}

impl LogNormal {
    /// `config` under `key`, validated.
    pub(super) fn try_new(key: &str, config: LogNormalConfig) -> anyhow::Result<LogNormal> {
        let LogNormalConfig { median, p99 } = config;
        ensure!(
            median.is_finite() && p99.is_finite() && median > 0.0 && p99 >= median,
            "{key}: median must be positive and p99 at least the median"
        );
        // ln(p99 / median) = 2.326 sigma for a log-normal.
        Ok(LogNormal { mu: median.ln(), sigma: (p99 / median).ln() / 2.326_348 })
    }

    /// One draw; always two uniforms (Box-Muller), so callers' later draws do not shift.
    pub(crate) fn sample(&self, rng: &mut impl Rng) -> f64 {
        let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
        let u2: f64 = rng.random();
        let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        (self.mu + self.sigma * z).exp()
    }

    /// One draw as a duration, for a distribution in seconds, capped at `cap`.
    pub(crate) fn sample_seconds(&self, rng: &mut impl Rng, cap: Duration) -> Duration {
        Duration::from_secs_f64(self.sample(rng).min(cap.as_secs_f64()))
    }
}
