//! The retry budget: how many speculative sends (hedges, race extras) may run.
//!
//! # Why a budget and not a maximum number of attempts?
//!
//! A per-request limit ("hedge every request") bounds one request, not the fleet: when a provider
//! slows down, every request hedges at once, doubling the load on the other providers and the
//! bill, exactly when both hurt most (Twilio's 2021-02-26 incident was prolonged by client
//! retries). A budget bounds speculative sends to a share of live traffic, as Envoy's retry
//! budget (`budget_percent` 20 %, at least `min_retry_concurrency` 3) and tower's
//! `retry::budget` do: every hook request deposits `percent`/100 of a token, every speculative
//! send withdraws a whole one, and a floor of `min_per_second` tokens keeps hedging possible when
//! traffic is light. The balance is capped at `burst`, so quiet hours cannot save up a storm.
//!
//! # Why failover is not paid from it
//!
//! A failover follows an attempt that has *ended* without an acceptance: it replaces a send, it
//! does not add one. Refusing it cannot protect anybody, it can only lose the user's code, and a
//! budget that refills with traffic refills slowest exactly when a burst of codes all need their
//! failover (100 codes at once against a dead primary once lost a quarter of them). Failover
//! cannot turn into a storm without the budget either: a code has at most one attempt in flight
//! while it cascades, each pass offers each provider once, a failing provider is ejected after a
//! few failures and then sees one probation trial per ejection (background deliveries wait for
//! a provider to come back rather than sending to the fail-open one), and the sends that may
//! have been accepted are capped per code by `delivery.max_attempts`.
//!
//! Speculative sends cost money as well as load, and a pumping attack that makes the first
//! provider slow would otherwise pay for a second send per fraudulent request. So a country may
//! also have a spend cap for them, per hour (`extra_spend_per_hour`, in the units of
//! `[prices]`), as a second bucket that refills continuously. An unpriced speculative send is not
//! bounded by it: it cannot be counted.
//!
//! Everything here is a token bucket read at an injected `now`: withdrawals only succeed when a
//! whole token (or the whole price) is there, so no balance ever goes below zero. The spend caps'
//! buckets live in the one spend meter ([`SpendBook`], which the fraud guard's daily caps read
//! too); this budget owns the caps and the retry tokens.

use std::collections::BTreeMap;
use std::time::Instant;

use serde::Deserialize;

use crate::config::ConfigError;
use crate::destination::has_numbering_plan;
use crate::domain::Country;
use crate::spend::{Bucket, SpendBook};

/// `[health.budget]` as written.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetConfig {
    /// Speculative sends (hedges, race extras) allowed per 100 hook requests (Envoy's default: 20).
    #[serde(default = "default_percent")]
    pub percent: u32,
    /// Speculative sends allowed per second whatever the traffic, so hedging works when it is light.
    #[serde(default = "default_min_per_second")]
    pub min_per_second: f64,
    /// Most extra sends that can be saved up.
    #[serde(default = "default_burst")]
    pub burst: u32,
    /// Spend cap on speculative sends per country per hour, in `[prices]` units; `"*"` for every
    /// country without its own entry. Default: no cap.
    #[serde(default)]
    pub extra_spend_per_hour: BTreeMap<String, f64>,
}

fn default_percent() -> u32 {
    20
}

fn default_min_per_second() -> f64 {
    1.0
}

fn default_burst() -> u32 {
    20
}

impl BudgetConfig {
    /// The values a missing `[health.budget]` section stands for.
    #[must_use]
    pub fn defaults() -> BudgetConfig {
        BudgetConfig {
            percent: default_percent(),
            min_per_second: default_min_per_second(),
            burst: default_burst(),
            extra_spend_per_hour: BTreeMap::new(),
        }
    }
}

/// Validated budget settings.
#[derive(Clone, Debug, PartialEq)]
pub struct BudgetPolicy {
    deposit: f64,
    min_per_second: f64,
    burst: f64,
    spend_default: Option<f64>,
    spend: BTreeMap<Country, f64>,
}

impl BudgetPolicy {
    /// Validates `[health.budget]`, naming the offending key.
    pub fn try_new(config: &BudgetConfig) -> Result<BudgetPolicy, ConfigError> {
        let key = |field: &str| format!("health.budget.{field}");
        if config.percent > 100 {
            return Err(ConfigError::invalid(key("percent"), "must be between 0 and 100"));
        }
        if !(config.min_per_second.is_finite() && (0.0..=10_000.0).contains(&config.min_per_second))
        {
            return Err(ConfigError::invalid(key("min_per_second"), "must be between 0 and 10000"));
        }
        if config.burst == 0 {
            return Err(ConfigError::invalid(key("burst"), "must be at least 1"));
        }
        let mut spend_default = None;
        let mut spend = BTreeMap::new();
        for (code, cap) in &config.extra_spend_per_hour {
            let item_key = key(&format!("extra_spend_per_hour.{code}"));
            if !(cap.is_finite() && *cap >= 0.0) {
                return Err(ConfigError::invalid(item_key, "must be a number, at least 0"));
            }
            if code == "*" {
                spend_default = Some(*cap);
                continue;
            }
            let country = Country::parse(code).filter(|country| has_numbering_plan(*country));
            let Some(country) = country else {
                return Err(ConfigError::invalid(
                    item_key,
                    format!("{code:?} is not an ISO 3166-1 alpha-2 code or \"*\""),
                ));
            };
            if spend.insert(country, *cap).is_some() {
                return Err(ConfigError::invalid(item_key, format!("{country} is listed twice")));
            }
        }
        Ok(BudgetPolicy {
            deposit: f64::from(config.percent) / 100.0,
            min_per_second: config.min_per_second,
            burst: f64::from(config.burst),
            spend_default,
            spend,
        })
    }

    /// The hourly spend cap on speculative sends to `country`, if it has one.
    #[must_use]
    pub fn extra_spend_cap(&self, country: Country) -> Option<f64> {
        self.spend.get(&country).copied().or(self.spend_default)
    }
}

/// Why the budget refused an extra send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BudgetRefusal {
    /// Extra sends are over their share of traffic.
    Retries,
    /// Extra sends to this country have spent their hourly cap.
    Spend,
}

/// The live budget: one per server, beside the [`HealthBook`](crate::HealthBook).
#[derive(Clone, Debug, PartialEq)]
pub struct RetryBudget {
    policy: BudgetPolicy,
    retries: Bucket,
}

/// The budget's state, for explain and metrics.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BudgetSnapshot {
    /// Extra sends available now.
    pub balance: f64,
    /// The cap on `balance`.
    pub burst: f64,
}

impl RetryBudget {
    /// A full budget: a process that just started may fail over at once.
    #[must_use]
    pub fn new(policy: BudgetPolicy) -> RetryBudget {
        let retries = Bucket::full(policy.burst);
        RetryBudget { policy, retries }
    }

    /// The same balance under a new policy (clamped to its cap). The spend meter's buckets
    /// follow with [`SpendBook::recap_extra`] and [`BudgetPolicy::extra_spend_cap`].
    #[must_use]
    pub fn carry_over(&self, policy: BudgetPolicy) -> RetryBudget {
        let mut budget = self.clone();
        budget.retries.balance = budget.retries.balance.min(policy.burst);
        budget.policy = policy;
        budget
    }

    /// The policy in force.
    #[must_use]
    pub fn policy(&self) -> &BudgetPolicy {
        &self.policy
    }

    /// One hook request arrived: it earns `percent`/100 of an extra send.
    pub fn deposit(&mut self, now: Instant) {
        let policy = &self.policy;
        self.retries.refill(policy.min_per_second, policy.burst, now);
        self.retries.balance = (self.retries.balance + policy.deposit).min(policy.burst);
    }

    /// Takes one extra send (and its price from the country's spend cap, in `spend`), or says
    /// why not. Nothing is taken from either when it refuses.
    pub fn try_withdraw(
        &mut self,
        spend: &mut SpendBook,
        country: Country,
        price: Option<f64>,
        now: Instant,
    ) -> Result<(), BudgetRefusal> {
        let policy = &self.policy;
        self.retries.refill(policy.min_per_second, policy.burst, now);
        if self.retries.balance < 1.0 {
            return Err(BudgetRefusal::Retries);
        }
        if let (Some(cap), Some(price)) = (policy.extra_spend_cap(country), price)
            && !spend.try_spend_extra(country, price, cap, now)
        {
            return Err(BudgetRefusal::Spend);
        }
        self.retries.balance -= 1.0;
        Ok(())
    }

    /// Extra sends available at `now`.
    #[must_use]
    pub fn balance(&self, now: Instant) -> f64 {
        self.retries.balance_at(self.policy.min_per_second, self.policy.burst, now)
    }

    /// What extra sends to `country` may still spend at `now` (read from `spend`); `None` when
    /// it has no cap.
    #[must_use]
    pub fn spend_balance(&self, spend: &SpendBook, country: Country, now: Instant) -> Option<f64> {
        let cap = self.policy.extra_spend_cap(country)?;
        Some(spend.extra_balance(country, cap, now))
    }

    /// The balance and cap at `now`.
    #[must_use]
    pub fn snapshot(&self, now: Instant) -> BudgetSnapshot {
        BudgetSnapshot { balance: self.balance(now), burst: self.policy.burst }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use proptest::prelude::*;

    use super::*;

    fn policy(percent: u32, min_per_second: f64, burst: u32) -> BudgetPolicy {
        BudgetPolicy::try_new(&BudgetConfig {
            percent,
            min_per_second,
            burst,
            extra_spend_per_hour: BTreeMap::new(),
        })
        .unwrap()
    }

    fn us() -> Country {
        Country::parse("US").unwrap()
    }

    #[test]
    fn extra_sends_are_a_share_of_traffic_plus_a_floor() {
        let start = Instant::now();
        let mut spend = SpendBook::default();
        let mut budget = RetryBudget::new(policy(20, 0.0, 2));
        assert_eq!(budget.try_withdraw(&mut spend, us(), None, start), Ok(()));
        assert_eq!(budget.try_withdraw(&mut spend, us(), None, start), Ok(()));
        assert_eq!(budget.try_withdraw(&mut spend, us(), None, start), Err(BudgetRefusal::Retries));
        // Five requests earn one extra send.
        for _ in 0..4 {
            budget.deposit(start);
        }
        assert_eq!(budget.try_withdraw(&mut spend, us(), None, start), Err(BudgetRefusal::Retries));
        budget.deposit(start);
        assert_eq!(budget.try_withdraw(&mut spend, us(), None, start), Ok(()));
        // The floor refills with time alone.
        let mut budget = RetryBudget::new(policy(0, 2.0, 2));
        budget.try_withdraw(&mut spend, us(), None, start).unwrap();
        budget.try_withdraw(&mut spend, us(), None, start).unwrap();
        assert!(
            budget
                .try_withdraw(&mut spend, us(), None, start + Duration::from_millis(400))
                .is_err()
        );
        assert!(
            budget.try_withdraw(&mut spend, us(), None, start + Duration::from_millis(500)).is_ok()
        );
    }

    #[test]
    fn a_country_spend_cap_bounds_priced_extra_sends() {
        let start = Instant::now();
        let mut config = BudgetConfig::defaults();
        config.extra_spend_per_hour.insert("NG".into(), 0.10);
        let mut spend = SpendBook::default();
        let mut budget = RetryBudget::new(BudgetPolicy::try_new(&config).unwrap());
        let ng = Country::parse("NG").unwrap();
        assert_eq!(budget.try_withdraw(&mut spend, ng, Some(0.06), start), Ok(()));
        assert_eq!(
            budget.try_withdraw(&mut spend, ng, Some(0.06), start),
            Err(BudgetRefusal::Spend)
        );
        assert_eq!(
            budget.try_withdraw(&mut spend, ng, None, start),
            Ok(()),
            "unpriced sends are not capped"
        );
        assert_eq!(
            budget.try_withdraw(&mut spend, us(), Some(5.0), start),
            Ok(()),
            "only NG has a cap"
        );
        // 0.10 per hour refills 0.02 in 12 minutes.
        assert_eq!(
            budget.try_withdraw(&mut spend, ng, Some(0.06), start + Duration::from_secs(720)),
            Ok(())
        );
    }

    #[test]
    fn validation_names_the_key() {
        let mut config = BudgetConfig::defaults();
        config.percent = 101;
        assert_eq!(
            BudgetPolicy::try_new(&config).unwrap_err().to_string(),
            "health.budget.percent: must be between 0 and 100"
        );
        let mut config = BudgetConfig::defaults();
        config.extra_spend_per_hour.insert("XX".into(), 1.0);
        assert_eq!(
            BudgetPolicy::try_new(&config).unwrap_err().to_string(),
            "health.budget.extra_spend_per_hour.XX: \"XX\" is not an ISO 3166-1 alpha-2 code or \"*\""
        );
        let mut config = BudgetConfig::defaults();
        config.burst = 0;
        assert!(BudgetPolicy::try_new(&config).is_err());
    }

    proptest! {
        /// Whatever the order of deposits, withdrawals and time, no balance goes below zero and
        /// the retry balance never exceeds its cap.
        #[test]
        fn budgets_never_go_negative(
            percent in 0u32..=100,
            min_per_second in 0.0f64..5.0,
            burst in 1u32..10,
            cap in 0.0f64..1.0,
            ops in prop::collection::vec((0u8..3, 0u64..2_000, 0.0f64..0.5), 1..200),
        ) {
            let mut config = BudgetConfig { percent, min_per_second, burst, extra_spend_per_hour: BTreeMap::new() };
            config.extra_spend_per_hour.insert("*".into(), cap);
            let mut spend = SpendBook::default();
            let mut budget = RetryBudget::new(BudgetPolicy::try_new(&config).unwrap());
            let mut now = Instant::now();
            for (op, millis, price) in ops {
                match op {
                    0 => budget.deposit(now),
                    1 => { let _refused = budget.try_withdraw(&mut spend, us(), Some(price), now); }
                    _ => now += Duration::from_millis(millis),
                }
                let balance = budget.balance(now);
                prop_assert!(balance >= 0.0 && balance <= f64::from(burst), "{}", balance);
                let spend = budget.spend_balance(&spend, us(), now).unwrap();
                prop_assert!(spend >= 0.0 && spend <= cap, "{}", spend);
            }
        }
    }
}
