//! The operator's switch per provider: [`OperatorState`] (enabled, draining, disabled), kept in
//! [`OperatorSwitches`] and set through the admin API.
//!
//! The switch is its own state, apart from observed health (pingora's `enabled` flag beside its
//! health check): draining or disabling a provider does not touch its failure history, and
//! enabling it again does not pretend it is healthy. The planner never plans a provider that is
//! not enabled, whatever its health, and [`crate::attempt::begin_attempt`] refuses a disabled
//! one. Health never decides to use a provider: "never eject the last candidate" is the
//! planner's rule (see `plan.rs`). The switch sits below health only because health's snapshots
//! report it beside each key's health.

use std::collections::BTreeMap;

use crate::domain::ProviderId;

/// The operator's switch for one provider, independent of observed health.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum OperatorState {
    /// Planned when healthy (the default).
    #[default]
    Enabled,
    /// Not planned any more; attempts from plans made earlier may still start.
    Draining,
    /// Never planned, and [`crate::attempt::begin_attempt`] refuses it.
    Disabled,
}

impl OperatorState {
    /// Whether new plans may include the provider.
    #[must_use]
    pub fn is_enabled(self) -> bool {
        self == OperatorState::Enabled
    }

    /// Lower-case label for the admin API and metrics.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            OperatorState::Enabled => "enabled",
            OperatorState::Draining => "draining",
            OperatorState::Disabled => "disabled",
        }
    }
}

/// The operator's switch of every provider; a provider never set is enabled. One per server,
/// beside the [`HealthBook`](crate::health::HealthBook), and carried over a reload by provider
/// id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OperatorSwitches {
    states: BTreeMap<ProviderId, OperatorState>,
}

impl OperatorSwitches {
    /// Every provider enabled.
    #[must_use]
    pub fn new() -> OperatorSwitches {
        OperatorSwitches::default()
    }

    /// Sets the operator's switch for a provider.
    pub fn set(&mut self, provider: &ProviderId, state: OperatorState) {
        self.states.insert(provider.clone(), state);
    }

    /// The operator's switch for a provider (enabled unless set otherwise).
    #[must_use]
    pub fn state(&self, provider: &ProviderId) -> OperatorState {
        self.states.get(provider).copied().unwrap_or_default()
    }

    /// Every provider whose switch was set (to any state), in id order.
    pub fn iter(&self) -> impl Iterator<Item = (&ProviderId, OperatorState)> {
        self.states.iter().map(|(provider, state)| (provider, *state))
    }

    /// The switches for a reloaded config: those of the providers still configured (matched by
    /// id). A provider removed and later added back starts enabled.
    #[must_use]
    pub fn carry_over<'p>(
        &self,
        providers: impl IntoIterator<Item = &'p ProviderId>,
    ) -> OperatorSwitches {
        let states = providers
            .into_iter()
            .filter_map(|provider| Some((provider.clone(), *self.states.get(provider)?)))
            .collect();
        OperatorSwitches { states }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(name: &str) -> ProviderId {
        ProviderId::parse(name).unwrap()
    }

    #[test]
    fn a_provider_is_enabled_until_set() {
        let mut switches = OperatorSwitches::new();
        assert_eq!(switches.state(&provider("twilio")), OperatorState::Enabled);
        switches.set(&provider("twilio"), OperatorState::Draining);
        assert_eq!(switches.state(&provider("twilio")), OperatorState::Draining);
        assert!(!switches.state(&provider("twilio")).is_enabled());
        switches.set(&provider("twilio"), OperatorState::Enabled);
        let set: Vec<(&str, &str)> =
            switches.iter().map(|(id, state)| (id.as_str(), state.as_str())).collect();
        assert_eq!(set, [("twilio", "enabled")]);
    }

    #[test]
    fn carry_over_keeps_only_providers_still_configured() {
        let mut switches = OperatorSwitches::new();
        switches.set(&provider("backup"), OperatorState::Disabled);
        switches.set(&provider("vonage"), OperatorState::Disabled);
        let reloaded = switches.carry_over(&[provider("twilio"), provider("backup")]);
        assert_eq!(reloaded.state(&provider("backup")), OperatorState::Disabled);
        assert_eq!(reloaded.state(&provider("vonage")), OperatorState::Enabled);
        assert_eq!(reloaded.iter().count(), 1);
    }
}
