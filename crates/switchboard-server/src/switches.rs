//! The operator's switch store: enable, drain or disable each provider by hand (admin API),
//! one [`OperatorSwitches`] for the server, kept for the providers still configured on reload.
//!
//! The switch is the operator's, not traffic's: health never changes it and it never changes
//! health. Planning and admitting an attempt read it with health in one step (see
//! `Shared::plan` and `Shared::begin_attempt`), locked after health, budget and spend.

use std::sync::{Mutex, MutexGuard, PoisonError};

use switchboard_core::ProviderId;
use switchboard_core::switch::{OperatorState, OperatorSwitches};

/// The operator's switch per provider.
#[derive(Debug, Default)]
pub(crate) struct SwitchStore {
    switches: Mutex<OperatorSwitches>,
}

impl SwitchStore {
    /// Sets `provider`'s switch.
    pub(crate) fn set(&self, provider: &ProviderId, state: OperatorState) {
        self.lock().set(provider, state);
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
