//! The operator's switch store: enable, drain or disable each provider by hand (admin API),
//! one [`OperatorSwitches`] for the server, kept for the providers still configured on reload.
//!
//! The switch is the operator's, not traffic's: health never changes it and it never changes
//! health. Planning and admitting an attempt read it with health in one step (see
//! `Shared::plan` and `Shared::begin_attempt`), locked after health, budget and spend.
//!
//! In Redis mode this store is the replica's cache of the fleet's switches (a hash in Redis,
//! see `fleet/switches.rs`): the admin API changes it only once Redis has the change, and the
//! sync loop refreshes it.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use switchboard_core::ProviderId;
use switchboard_core::switch::{OperatorState, OperatorSwitches};

/// The operator's switch per provider.
#[derive(Debug, Default)]
pub(crate) struct SwitchStore {
    switches: Mutex<OperatorSwitches>,
    /// When a switch was last set here, so that a read of the fleet's switches begun before
    /// does not undo it (Redis mode).
    changed_at: Mutex<Option<Instant>>,
}

impl SwitchStore {
    /// Sets `provider`'s switch at `now`.
    pub(crate) fn set(&self, provider: &ProviderId, state: OperatorState, now: Instant) {
        self.lock().set(provider, state);
        *self.changed_at.lock().unwrap_or_else(PoisonError::into_inner) = Some(now);
    }

    /// When a switch was last set, if ever.
    pub(crate) fn changed_at(&self) -> Option<Instant> {
        *self.changed_at.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `provider`'s switch.
    pub(crate) fn state(&self, provider: &ProviderId) -> OperatorState {
        self.lock().state(provider)
    }

    /// Reads every switch for a step that needs them with other state (planning, explain).
    pub(crate) fn read<R>(&self, f: impl FnOnce(&OperatorSwitches) -> R) -> R {
        f(&self.lock())
    }

    /// A reload: the switches of the providers still configured.
    pub(crate) fn carry_over<'p>(&self, providers: impl IntoIterator<Item = &'p ProviderId>) {
        let mut switches = self.lock();
        *switches = switches.carry_over(providers);
    }

    /// Poisoning is ignored: a switch is one map entry, never half written.
    fn lock(&self) -> MutexGuard<'_, OperatorSwitches> {
        self.switches.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
