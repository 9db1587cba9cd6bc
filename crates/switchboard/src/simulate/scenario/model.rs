//! What the scenario's providers do: each emulated provider's latency, errors and prices, and
//! the faults and price changes on the run's clock, and what one send meets
//! ([`EmulatedProvider::reply`]). It knows nothing of the scenario as a whole.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, ensure};
use rand::Rng;
use switchboard_core::{Channel, Country, ErrorClass};

pub(crate) use super::file::OverCapacity;
use super::file::{
    DownFailure, Effect, EmulatedProviderConfig, FaultConfig, PriceEntry, PricesConfig,
};
use super::handsets::Handsets;
use super::lognormal::LogNormal;

/// Connection refused comes back at once.
const REFUSED_AFTER: Duration = Duration::from_millis(3);

/// One emulated provider.
#[derive(Debug)]
pub(crate) struct EmulatedProvider {
    pub(crate) id: String,
    /// Accept latency, in milliseconds.
    latency: LogNormal,
    error_share: f64,
    pub(crate) prices: Prices,
    /// The account's throughput and what it does beyond it; `None` is unlimited.
    pub(crate) capacity: Option<Capacity>,
    /// What becomes of its accepted messages outside handset phases.
    pub(crate) handsets: Handsets,
}

/// An emulated account's throughput: `per_second` messages a second with a burst of one
/// second's worth (the same GCRA shape as the server's own cap), and what happens beyond.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Capacity {
    pub(crate) per_second: u32,
    pub(crate) over: OverCapacity,
}

/// Validated prices of one provider.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Prices {
    /// As the scenario wrote them, for switchboard's `[prices]`.
    pub(super) written: PricesConfig,
    default: PriceEntry,
    countries: BTreeMap<Country, PriceEntry>,
}

/// `[[faults]]`, validated: one provider misbehaving for a while.
#[derive(Debug)]
pub(crate) struct Fault {
    pub(super) provider: usize,
    pub(super) from: Duration,
    until: Duration,
    pub(super) countries: Option<Vec<Country>>,
    effect: Effect,
}

/// `[[price_changes]]`, validated.
#[derive(Debug)]
pub(crate) struct PriceChange {
    pub(crate) provider: usize,
    pub(crate) at: Duration,
    pub(crate) prices: Prices,
}

/// What an emulated provider does with one send.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Reply {
    /// Accepts the message this long after the request.
    Accept { after: Duration },
    /// Refuses this long after the request.
    Refuse { after: Duration, class: ErrorClass, retry_after: Option<Duration> },
    /// Never answers, and does not send.
    Hang,
}

impl EmulatedProvider {
    /// What this provider, at index `provider`, does with a send made `at` into the run to
    /// `country`, under `faults` (every provider's).
    ///
    /// Always draws the same random numbers in the same order, whatever the state, so a fault
    /// changes only the sends it touches.
    pub(super) fn reply(
        &self,
        provider: usize,
        faults: &[Fault],
        at: Duration,
        country: Country,
        rng: &mut impl Rng,
    ) -> Reply {
        let latency = self.sample_latency(rng);
        let u: f64 = rng.random();
        let healthy = || {
            if u < self.error_share {
                Reply::Refuse {
                    after: latency / 2,
                    class: ErrorClass::Transient,
                    retry_after: None,
                }
            } else {
                Reply::Accept { after: latency }
            }
        };
        let fault = faults.iter().find(|fault| {
            fault.provider == provider
                && (fault.from..fault.until).contains(&at)
                && fault.countries.as_ref().is_none_or(|list| list.contains(&country))
        });
        let Some(fault) = fault else { return healthy() };
        let refused =
            Reply::Refuse { after: REFUSED_AFTER, class: ErrorClass::Transient, retry_after: None };
        match fault.effect {
            Effect::Refused => refused,
            Effect::Blackhole => Reply::Hang,
            Effect::ServerError { share } if u < share => Reply::Refuse {
                after: latency / 2,
                class: ErrorClass::Transient,
                retry_after: None,
            },
            Effect::ServerError { .. } => Reply::Accept { after: latency },
            Effect::Brownout { hang_share, .. } if u < hang_share => Reply::Hang,
            Effect::Brownout { latency_factor, .. } => {
                Reply::Accept { after: latency.mul_f64(latency_factor) }
            }
            Effect::RateLimit { share, retry_after_s } if u < share => Reply::Refuse {
                after: latency / 3,
                class: ErrorClass::RateLimited,
                retry_after: Some(Duration::from_secs(retry_after_s)),
            },
            Effect::RateLimit { .. } => Reply::Accept { after: latency },
            Effect::Flapping { period_s, down_s, failure } => {
                let into_cycle = (at - fault.from).as_secs_f64() % period_s;
                match failure {
                    _ if into_cycle >= down_s => healthy(),
                    DownFailure::Refused => refused,
                    DownFailure::Blackhole => Reply::Hang,
                }
            }
        }
    }
}

impl EmulatedProvider {
    /// `[providers.ID]`, validated.
    pub(super) fn try_new(id: &str, config: &EmulatedProviderConfig) -> anyhow::Result<Self> {
        let key = format!("providers.{id}");
        let latency = LogNormal::try_new(&format!("{key}.latency_ms"), config.latency_ms)?;
        ensure!(
            (0.0..=1.0).contains(&config.error_share),
            "{key}.error_share: must be between 0 and 1"
        );
        let capacity = match (config.max_per_second, config.over_capacity) {
            (None, None) => None,
            (None, Some(_)) => {
                anyhow::bail!("{key}.over_capacity: only with max_per_second")
            }
            (Some(0), _) => anyhow::bail!("{key}.max_per_second: must be at least 1"),
            (Some(per_second), over) => {
                Some(Capacity { per_second, over: over.unwrap_or(OverCapacity::Queue) })
            }
        };
        Ok(EmulatedProvider {
            id: id.to_owned(),
            latency,
            error_share: config.error_share,
            prices: Prices::try_new(&format!("{key}.prices"), &config.prices)?,
            capacity,
            handsets: Handsets::try_new(&format!("{key}.handsets"), config.handsets.as_ref())?,
        })
    }

    fn sample_latency(&self, rng: &mut impl Rng) -> Duration {
        // Capped at ten minutes: a slower answer is no answer, and Duration must not overflow.
        Duration::from_secs_f64((self.latency.sample(rng) / 1000.0).min(600.0))
    }
}

impl Prices {
    pub(super) fn try_new(key: &str, config: &PricesConfig) -> anyhow::Result<Prices> {
        let check = |key: &str, entry: &PriceEntry| -> anyhow::Result<()> {
            for (field, value) in [("sms", entry.sms), ("voice_minute", entry.voice_minute)] {
                if let Some(value) = value {
                    ensure!(
                        value.is_finite() && (0.0..=1000.0).contains(&value),
                        "{key}.{field}: must be between 0 and 1000"
                    );
                }
            }
            Ok(())
        };
        check(&format!("{key}.default"), &config.default)?;
        ensure!(
            config.default.sms.is_some() && config.default.voice_minute.is_some(),
            "{key}.default: give both sms and voice_minute"
        );
        let mut countries = BTreeMap::new();
        for (code, entry) in &config.countries {
            let entry_key = format!("{key}.countries.{code}");
            let country = Country::parse(code)
                .with_context(|| format!("{entry_key}: not an ISO alpha-2 code"))?;
            check(&entry_key, entry)?;
            countries.insert(country, *entry);
        }
        Ok(Prices { written: config.clone(), default: config.default, countries })
    }

    /// What one accepted message costs.
    pub(crate) fn price(&self, country: Country, channel: Channel) -> f64 {
        let entry = self.countries.get(&country);
        let pick = |entry: &PriceEntry| match channel {
            Channel::Sms => entry.sms,
            Channel::Voice => entry.voice_minute,
        };
        entry.and_then(pick).or_else(|| pick(&self.default)).unwrap_or_default()
    }
}

impl Fault {
    /// `faults[position]`, validated; `provider` is the index of the provider it names, and a
    /// fault without `until_s` lasts until `default_until_s`.
    pub(super) fn try_new(
        key: &str,
        fault: &FaultConfig,
        provider: usize,
        default_until_s: f64,
    ) -> anyhow::Result<Fault> {
        let until_s = fault.until_s.unwrap_or(default_until_s);
        ensure!(
            fault.from_s >= 0.0 && until_s > fault.from_s,
            "{key}: from_s must be at least 0 and before until_s"
        );
        let countries = match &fault.countries {
            None => None,
            Some(list) => Some(
                list.iter()
                    .map(|text| {
                        Country::parse(text).with_context(|| {
                            format!("{key}.countries: {text:?} is not an ISO alpha-2 code")
                        })
                    })
                    .collect::<anyhow::Result<Vec<_>>>()?,
            ),
        };
        validate_effect(key, &fault.effect)?;
        Ok(Fault {
            provider,
            from: Duration::from_secs_f64(fault.from_s),
            until: Duration::from_secs_f64(until_s),
            countries,
            effect: fault.effect,
        })
    }
}

fn validate_effect(key: &str, effect: &Effect) -> anyhow::Result<()> {
    let share_ok = |share: f64| (0.0..=1.0).contains(&share);
    match *effect {
        Effect::Refused | Effect::Blackhole => {}
        Effect::ServerError { share } => {
            ensure!(share_ok(share), "{key}.effect.share: must be between 0 and 1");
        }
        Effect::Brownout { latency_factor, hang_share } => {
            ensure!(
                latency_factor.is_finite() && latency_factor >= 1.0,
                "{key}.effect.latency_factor: must be at least 1"
            );
            ensure!(share_ok(hang_share), "{key}.effect.hang_share: must be between 0 and 1");
        }
        Effect::RateLimit { share, retry_after_s } => {
            ensure!(share_ok(share), "{key}.effect.share: must be between 0 and 1");
            ensure!(retry_after_s >= 1, "{key}.effect.retry_after_s: must be at least 1");
        }
        Effect::Flapping { period_s, down_s, .. } => {
            ensure!(
                period_s > 0.0 && down_s > 0.0 && down_s < period_s,
                "{key}.effect: need 0 < down_s < period_s"
            );
        }
    }
    Ok(())
}
