//! The config field groups every provider repeats under the same keys.
//!
//! serde's `flatten` does not combine with `deny_unknown_fields`, so a shared struct cannot
//! hold them; [`provider_config!`] stamps them onto each provider's struct instead, keeping the
//! keys (`timeout_ms`, `connect_timeout_ms`, `max_per_second`) and their checks in one place.

/// Declares a provider's config struct with the shared `timeout_ms`, `connect_timeout_ms` and
/// `max_per_second` fields appended (default `connect_timeout_ms` 300; the `timeout_ms` default
/// is given; no throughput cap by default), and their accessors `timeout()`,
/// `connect_timeout()`, `max_per_second()` and `check_shared_fields(key_prefix)`.
///
/// With `senders;` it also stamps `senders(key_prefix)`, the validated senders built from the
/// provider's own `from`, `voice_from` and `senders` fields (declared by the provider, since
/// what a sender may be differs per provider and the docs say so), and `sender_caps()`, the
/// throughput caps of per-country senders (empty without `senders;`).
macro_rules! provider_config {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $($fields:tt)*
        }
        default_timeout_ms = $timeout:literal;
        senders;
    ) => {
        crate::fields::provider_config! {
            @shared
            $(#[$meta])*
            pub struct $name {
                $($fields)*
            }
            default_timeout_ms = $timeout;
        }

        impl $name {
            /// The validated senders (`from`, `voice_from`, `senders`).
            pub(crate) fn senders(
                &self,
                key_prefix: &str,
            ) -> Result<crate::senders::Senders, switchboard_core::ConfigError> {
                crate::senders::Senders::try_new(
                    key_prefix,
                    self.from.as_deref(),
                    self.voice_from.as_deref(),
                    &self.senders,
                )
            }

            /// The throughput caps of per-country senders (`senders.<CC>.max_per_second`),
            /// by destination country. Validated by [`Self::senders`].
            #[must_use]
            pub fn sender_caps(
                &self,
            ) -> std::collections::BTreeMap<switchboard_core::Country, std::num::NonZeroU32> {
                crate::senders::caps(&self.senders)
            }
        }
    };
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $($fields:tt)*
        }
        default_timeout_ms = $timeout:literal;
    ) => {
        crate::fields::provider_config! {
            @shared
            $(#[$meta])*
            pub struct $name {
                $($fields)*
            }
            default_timeout_ms = $timeout;
        }

        impl $name {
            /// No per-country senders, so no caps of theirs.
            #[must_use]
            pub fn sender_caps(
                &self,
            ) -> std::collections::BTreeMap<switchboard_core::Country, std::num::NonZeroU32> {
                std::collections::BTreeMap::new()
            }
        }
    };
    (
        @shared
        $(#[$meta:meta])*
        pub struct $name:ident {
            $($fields:tt)*
        }
        default_timeout_ms = $timeout:literal;
    ) => {
        $(#[$meta])*
        pub struct $name {
            $($fields)*
            /// Time allowed for one request, from connecting to the last byte of the answer, in ms.
            #[serde(default = "default_timeout_ms")]
            pub timeout_ms: u64,
            /// Time allowed to open a connection, in ms (a connect failure is certainly not a
            /// send).
            #[serde(default = "default_connect_timeout_ms")]
            pub connect_timeout_ms: u64,
            /// The most messages and calls per second this account may be given: the
            /// throughput the provider grants it (a US 10DLC campaign's MPS, an AWS origination
            /// identity's MPS, a long code's 1 MPS). Beyond it routing skips the provider for the
            /// next one rather than feeding its queue or a storm of 429s. Unset: no cap.
            #[serde(default)]
            pub max_per_second: Option<u32>,
        }

        fn default_timeout_ms() -> u64 {
            $timeout
        }

        fn default_connect_timeout_ms() -> u64 {
            300
        }

        impl $name {
            /// Checks `timeout_ms`, `connect_timeout_ms` and `max_per_second` under
            /// `key_prefix`.
            pub(crate) fn check_shared_fields(
                &self,
                key_prefix: &str,
            ) -> Result<(), switchboard_core::ConfigError> {
                crate::http::check_timeouts(key_prefix, self.timeout_ms, self.connect_timeout_ms)?;
                crate::throughput::check_max_per_second(key_prefix, self.max_per_second)
            }

            /// The throughput cap, when one is set.
            #[must_use]
            pub fn max_per_second(&self) -> Option<std::num::NonZeroU32> {
                self.max_per_second.and_then(std::num::NonZeroU32::new)
            }

            pub(crate) fn timeout(&self) -> std::time::Duration {
                std::time::Duration::from_millis(self.timeout_ms)
            }

            pub(crate) fn connect_timeout(&self) -> std::time::Duration {
                std::time::Duration::from_millis(self.connect_timeout_ms)
            }
        }
    };
}

pub(crate) use provider_config;
