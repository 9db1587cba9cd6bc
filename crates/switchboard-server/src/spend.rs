//! The spend meter: what sends cost, per country, for both money caps — the guard's daily caps
//! (`[guard.spend]`) and the retry budget's hourly caps on speculative sends
//! (`[health.budget] extra_spend_per_hour`). One [`SpendBook`] for the server, so a reload
//! cannot reset a day's spending; see `switchboard_core::spend` for what is recorded when.
//!
//! Methods take the UTC day (from the server's [`WallClock`](crate::clock::WallClock)) or the
//! instant, and values; caps come from their owners' configuration. A std mutex: sections are
//! a few arithmetic operations, never across an `.await`.
//!
//! **In a fleet** (Redis mode) the daily caps count every replica's spending: each replica
//! writes its own day totals per country to one hash per UTC day and reads the others' back,
//! once per sync interval (`fleet/spend.rs`), and [`SpendMeter::spent_on`] adds the others'
//! last-read totals ([`SpendMeter::set_others`]) to this replica's own, which are exact. No
//! Redis call sits on the hook's path, and an acceptance is never lost or counted twice (each
//! replica writes absolute totals, not increments). The price: the fleet may overshoot a cap by
//! what the other replicas accepted in one sync interval (plus one round trip), as a request
//! passes the guard before its send is priced anyway. While Redis is unavailable the others'
//! totals stay as last read for the day and this replica's own keep counting (the local meter,
//! counted as `switchboard_state_fallbacks_total{store="spend"}`, worth an alert: the caps then
//! hold per replica only against what the others had spent by the outage).
//!
//! The retry budget's hourly caps on speculative spend stay per replica: they bound how much a
//! replica's own hedges and races may add on top of its traffic, alongside the retry budget
//! that is per replica too, and refilling buckets shared through Redis would put a round trip
//! on the send path for a soft cost cap that scales with each replica's share anyway.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use switchboard_core::Country;
use switchboard_core::budget::BudgetPolicy;
use switchboard_core::spend::SpendBook;

/// What a day's accepted messages have cost so far.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct SpentToday {
    /// Every country.
    pub(crate) total: f64,
    /// The country asked about.
    pub(crate) country: f64,
}

/// The server's one spend meter.
#[derive(Debug, Default)]
pub(crate) struct SpendMeter {
    book: Mutex<SpendBook>,
    /// The other replicas' day totals as last read (Redis mode; empty otherwise).
    others: Mutex<OthersSpent>,
}

/// What the other replicas of a fleet had spent on one day, when last read.
#[derive(Debug, Default)]
struct OthersSpent {
    day: i64,
    total: f64,
    by_country: HashMap<String, f64>,
}

impl SpendMeter {
    /// Adds the price of a message accepted on `day`.
    pub(crate) fn record(&self, day: i64, country: Country, amount: f64) {
        self.lock().record(day, country, amount);
    }

    /// What messages accepted on `day` cost, in total and for `country`: this replica's, and
    /// in a fleet the other replicas' as last read.
    pub(crate) fn spent_on(&self, day: i64, country: Country) -> SpentToday {
        let (total, own) = self.lock().spent_on(day, country);
        let others = self.others.lock().unwrap_or_else(PoisonError::into_inner);
        if others.day != day {
            return SpentToday { total, country: own };
        }
        let other_country = others.by_country.get(country.as_str()).copied().unwrap_or(0.0);
        SpentToday { total: total + others.total, country: own + other_country }
    }

    /// This replica's own spending on `day`, per country, for the fleet's shared totals.
    pub(crate) fn own_on(&self, day: i64) -> Vec<(Country, f64)> {
        self.lock().by_country_on(day)
    }

    /// The other replicas' spending on `day`, per country code, as just read from the fleet.
    pub(crate) fn set_others(&self, day: i64, by_country: HashMap<String, f64>) {
        let total = by_country.values().sum();
        *self.others.lock().unwrap_or_else(PoisonError::into_inner) =
            OthersSpent { day, total, by_country };
    }

    /// Reads the book with other state (explain shows what speculative sends may still spend).
    pub(crate) fn read<R>(&self, f: impl FnOnce(&SpendBook) -> R) -> R {
        f(&self.lock())
    }

    /// Changes the book with other state (admitting a speculative send charges its price).
    pub(crate) fn update<R>(&self, f: impl FnOnce(&mut SpendBook) -> R) -> R {
        f(&mut self.lock())
    }

    /// A reload of the retry budget's hourly caps: their balances are clamped to the new caps.
    pub(crate) fn recap(&self, policy: &BudgetPolicy) {
        self.lock().recap_extra(|country| policy.extra_spend_cap(country));
    }

    fn lock(&self) -> MutexGuard<'_, SpendBook> {
        self.book.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_other_replicas_spending_counts_on_its_day_only() {
        let meter = SpendMeter::default();
        let (gb, us) = (Country::parse("GB").unwrap(), Country::parse("US").unwrap());
        meter.record(10, gb, 1.0);
        assert_eq!(meter.spent_on(10, gb), SpentToday { total: 1.0, country: 1.0 });
        meter.set_others(10, [("GB".to_owned(), 2.0), ("US".to_owned(), 0.5)].into());
        assert_eq!(meter.spent_on(10, gb), SpentToday { total: 3.5, country: 3.0 });
        assert_eq!(meter.spent_on(10, us), SpentToday { total: 3.5, country: 0.5 });
        assert_eq!(meter.own_on(10), vec![(gb, 1.0)], "only this replica's own");
        assert_eq!(meter.spent_on(11, gb), SpentToday::default(), "a new day starts at zero");
        assert!(meter.own_on(10).is_empty(), "the book moved on to the new day");
    }
}
