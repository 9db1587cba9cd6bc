//! The configured providers and the channels each can carry: what route rules and prices are
//! validated against. The server builds it from `[providers]`; the core never sees a provider's
//! settings, only its id and channels.

use std::collections::BTreeMap;

use crate::domain::{Channel, ProviderId};

/// The configured providers and the channels each can carry; what routes are checked against.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProviderCatalog {
    channels: BTreeMap<ProviderId, Vec<Channel>>,
}

impl ProviderCatalog {
    /// Builds a catalog; a provider listed twice keeps its last entry.
    #[must_use]
    pub fn new(providers: impl IntoIterator<Item = (ProviderId, Vec<Channel>)>) -> ProviderCatalog {
        let channels = providers
            .into_iter()
            .map(|(provider, mut channels)| {
                channels.sort_unstable();
                channels.dedup();
                (provider, channels)
            })
            .collect();
        ProviderCatalog { channels }
    }

    /// Whether the provider is configured.
    #[must_use]
    pub fn contains(&self, provider: &ProviderId) -> bool {
        self.channels.contains_key(provider)
    }

    /// Whether the provider is configured and can carry `channel`.
    #[must_use]
    pub fn supports(&self, provider: &ProviderId, channel: Channel) -> bool {
        self.channels.get(provider).is_some_and(|channels| channels.contains(&channel))
    }

    /// The channels a configured provider can carry.
    #[must_use]
    pub fn channels(&self, provider: &ProviderId) -> Option<&[Channel]> {
        self.channels.get(provider).map(Vec::as_slice)
    }

    /// Every configured provider, in id order.
    pub fn providers(&self) -> impl Iterator<Item = &ProviderId> {
        self.channels.keys()
    }
}
