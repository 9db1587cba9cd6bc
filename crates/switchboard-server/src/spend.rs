//! The spend meter: what sends cost, per country, for both money caps — the guard's daily caps
//! (`[guard.spend]`) and the retry budget's hourly caps on speculative sends
//! (`[health.budget] extra_spend_per_hour`). One [`SpendBook`] for the server, so a reload
//! cannot reset a day's spending; see `switchboard_core::spend` for what is recorded when.
//!
//! Methods take the UTC day (from the server's [`WallClock`](crate::clock::WallClock)) or the
//! instant, and values; caps come from their owners' configuration. A std mutex: sections are
//! a few arithmetic operations, never across an `.await`.

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
}

impl SpendMeter {
    /// Adds the price of a message accepted on `day`.
    pub(crate) fn record(&self, day: i64, country: Country, amount: f64) {
        self.lock().record(day, country, amount);
    }

    /// What messages accepted on `day` cost, in total and for `country`.
    pub(crate) fn spent_on(&self, day: i64, country: Country) -> SpentToday {
        let (total, country) = self.lock().spent_on(day, country);
        SpentToday { total, country }
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
