//! The retry budget store: how many speculative sends (hedges, race extras) may run, one
//! [`RetryBudget`] for the server, its balance carried over a reload.
//!
//! Deposits and reads take `now` and values. Admitting an attempt needs the budget, health and
//! the spend meter to agree at once (see `switchboard_core::attempt`), so that step borrows the
//! budget through [`BudgetStore::update`], in the order health, budget, spend.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use switchboard_core::budget::{BudgetPolicy, RetryBudget};

/// The retry budget for speculative sends.
#[derive(Debug)]
pub(crate) struct BudgetStore {
    budget: Mutex<RetryBudget>,
}

impl BudgetStore {
    pub(crate) fn new(policy: BudgetPolicy) -> BudgetStore {
        BudgetStore { budget: Mutex::new(RetryBudget::new(policy)) }
    }

    /// One hook request arrived: it earns its share of an extra send.
    pub(crate) fn deposit(&self, now: Instant) {
        self.lock().deposit(now);
    }

    /// Reads the budget for a step that needs it with other state (explain).
    pub(crate) fn read<R>(&self, f: impl FnOnce(&RetryBudget) -> R) -> R {
        f(&self.lock())
    }

    /// Changes the budget in a step that needs it with other state (admitting an attempt).
    pub(crate) fn update<R>(&self, f: impl FnOnce(&mut RetryBudget) -> R) -> R {
        f(&mut self.lock())
    }

    /// A reload: the same balance under the new policy.
    pub(crate) fn carry_over(&self, policy: BudgetPolicy) {
        let mut budget = self.lock();
        *budget = budget.carry_over(policy);
    }

    /// Poisoning is ignored, as for health: a lost withdrawal matters less than a dead server.
    fn lock(&self) -> MutexGuard<'_, RetryBudget> {
        self.budget.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
