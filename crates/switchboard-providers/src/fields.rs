//! The config field groups every provider repeats under the same keys.
//!
//! serde's `flatten` does not combine with `deny_unknown_fields`, so a shared struct cannot
//! hold them; [`provider_config!`] stamps them onto each provider's struct instead, keeping the
//! keys (`timeout_ms`, `connect_timeout_ms`) and their checks in one place.

/// Declares a provider's config struct with the shared `timeout_ms` and `connect_timeout_ms`
/// fields appended (default `connect_timeout_ms` 300; the `timeout_ms` default is given), and
/// their accessors `timeout()`, `connect_timeout()` and `check_timeouts(key_prefix)`.
///
/// With `senders;` it also stamps `senders(key_prefix)`, the validated senders built from the
/// provider's own `from`, `voice_from` and `senders` fields (declared by the provider, since
/// what a sender may be differs per provider and the docs say so).
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
        }
    };
    (
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
        }

        fn default_timeout_ms() -> u64 {
            $timeout
        }

        fn default_connect_timeout_ms() -> u64 {
            300
        }

        impl $name {
            /// Checks `timeout_ms` and `connect_timeout_ms` under `key_prefix`.
            pub(crate) fn check_timeouts(
                &self,
                key_prefix: &str,
            ) -> Result<(), switchboard_core::ConfigError> {
                crate::http::check_timeouts(key_prefix, self.timeout_ms, self.connect_timeout_ms)
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
