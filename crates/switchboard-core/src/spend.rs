//! The spend meter: what sends cost, per country, for both money caps.
//!
//! Two caps read it. The fraud guard's daily caps (`[guard.spend]`) refuse new requests once the
//! messages accepted on a UTC day have cost a set amount, in total or for one country. The retry
//! budget's hourly caps (`[health.budget] extra_spend_per_hour`) stop speculative sends (hedges,
//! race extras) to a country once they have spent theirs; that cap refills continuously, as a
//! token bucket, and is charged when the send is launched, so hedges running at once cannot
//! overrun it together. Each event is recorded once, here: an accepted message's price on its
//! day ([`SpendBook::record`]), a speculative send's price when the budget lets it go
//! ([`SpendBook::try_spend_extra`]).
//!
//! Everything is read at an injected time (a UTC day number, an `Instant`), and caps are passed
//! in by whoever owns them, so the book holds amounts only and its owner can live anywhere.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use crate::domain::Country;

/// Days since the Unix epoch, UTC: the daily caps reset at midnight UTC.
#[must_use]
pub fn utc_day(unix_seconds: i64) -> i64 {
    unix_seconds.div_euclid(86_400)
}

/// A token bucket refilled at a rate and capped.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Bucket {
    pub(crate) balance: f64,
    updated: Option<Instant>,
}

impl Bucket {
    pub(crate) fn full(capacity: f64) -> Bucket {
        Bucket { balance: capacity, updated: None }
    }

    /// The balance at `now`; time only moves forward (an earlier `now` refills nothing).
    pub(crate) fn balance_at(&self, per_second: f64, capacity: f64, now: Instant) -> f64 {
        let elapsed = self
            .updated
            .map_or(0.0, |updated| now.saturating_duration_since(updated).as_secs_f64());
        (self.balance + per_second * elapsed).min(capacity)
    }

    pub(crate) fn refill(&mut self, per_second: f64, capacity: f64, now: Instant) {
        self.balance = self.balance_at(per_second, capacity, now);
        self.updated = Some(self.updated.map_or(now, |updated| updated.max(now)));
    }
}

/// One UTC day's accepted spending.
#[derive(Clone, Debug, Default, PartialEq)]
struct SpendDay {
    day: i64,
    total: f64,
    by_country: HashMap<Country, f64>,
}

impl SpendDay {
    fn roll(&mut self, day: i64) {
        if self.day != day {
            *self = SpendDay { day, ..SpendDay::default() };
        }
    }
}

/// The meter's amounts. Pure: callers pass the day, the instant and the caps.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SpendBook {
    day: SpendDay,
    /// What speculative sends to each capped country may still spend (a bucket per country,
    /// created full on first use).
    extra: BTreeMap<Country, Bucket>,
}

impl SpendBook {
    /// Adds the price of a message accepted on `day` (see [`utc_day`]).
    pub fn record(&mut self, day: i64, country: Country, amount: f64) {
        self.day.roll(day);
        self.day.total += amount;
        *self.day.by_country.entry(country).or_default() += amount;
    }

    /// (total, this country) accepted on `day`.
    pub fn spent_on(&mut self, day: i64, country: Country) -> (f64, f64) {
        self.day.roll(day);
        (self.day.total, self.day.by_country.get(&country).copied().unwrap_or(0.0))
    }

    /// What messages accepted on `day` cost, per country (empty for any other day than the
    /// book's current one).
    #[must_use]
    pub fn by_country_on(&self, day: i64) -> Vec<(Country, f64)> {
        if self.day.day != day {
            return Vec::new();
        }
        self.day.by_country.iter().map(|(country, amount)| (*country, *amount)).collect()
    }

    /// Charges a speculative send's `price` to `country`'s hourly `cap` (refilling at
    /// `cap` per hour). Returns `false`, and takes nothing, when the balance is short.
    pub fn try_spend_extra(
        &mut self,
        country: Country,
        price: f64,
        cap_per_hour: f64,
        now: Instant,
    ) -> bool {
        let bucket = self.extra.entry(country).or_insert_with(|| Bucket::full(cap_per_hour));
        bucket.refill(cap_per_hour / 3_600.0, cap_per_hour, now);
        if bucket.balance < price {
            return false;
        }
        bucket.balance -= price;
        true
    }

    /// What speculative sends to `country` may still spend at `now` under `cap_per_hour`.
    #[must_use]
    pub fn extra_balance(&self, country: Country, cap_per_hour: f64, now: Instant) -> f64 {
        self.extra.get(&country).map_or(cap_per_hour, |bucket| {
            bucket.balance_at(cap_per_hour / 3_600.0, cap_per_hour, now)
        })
    }

    /// Applies new hourly caps (a reload): countries without one are forgotten, the others
    /// keep their balance, clamped to the new cap.
    pub fn recap_extra(&mut self, cap_of: impl Fn(Country) -> Option<f64>) {
        self.extra.retain(|country, _| cap_of(*country).is_some());
        for (country, bucket) in &mut self.extra {
            if let Some(cap) = cap_of(*country) {
                bucket.balance = bucket.balance.min(cap);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_roll_at_midnight_utc() {
        let gb = Country::parse("GB").unwrap();
        let mut book = SpendBook::default();
        let day = utc_day(86_400 * 10 + 5);
        book.record(day, gb, 1.5);
        assert_eq!(book.spent_on(day, gb), (1.5, 1.5));
        assert_eq!(book.spent_on(day, Country::parse("US").unwrap()), (1.5, 0.0));
        assert_eq!(book.spent_on(day + 1, gb), (0.0, 0.0));
        assert_eq!(utc_day(-1), -1);
    }
}
