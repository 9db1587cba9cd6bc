//! Errors from validating routing configuration.

/// A configuration value the core refuses. Every variant names the offending key, in the dotted
/// form the operator wrote it in (`routes[1].providers[0]`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The value is not valid for this key.
    #[error("{key}: {reason}")]
    Invalid {
        /// Dotted key path.
        key: String,
        /// What is wrong, lower case, no trailing period.
        reason: String,
    },
    /// A route names a provider that is not configured.
    #[error("{key}: unknown provider `{provider}` (not under [providers])")]
    UnknownProvider {
        /// Dotted key path.
        key: String,
        /// The name as written.
        provider: String,
    },
}

impl ConfigError {
    /// Shorthand for [`ConfigError::Invalid`].
    pub fn invalid(key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
        ConfigError::Invalid { key: key.into(), reason: reason.into() }
    }
}
