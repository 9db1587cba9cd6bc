//! Throughput caps (`max_per_second`): the one limit and check, for an account's cap
//! (`fields.rs`) and a per-country sender's (`senders.rs`).

/// The highest throughput cap accepted, in messages per second: above what any provider grants
/// one account, so a larger number is a typo.
pub(crate) const MAX_PER_SECOND: u32 = 10_000;

/// Checks `{key_prefix}.max_per_second`.
pub(crate) fn check_max_per_second(
    key_prefix: &str,
    max_per_second: Option<u32>,
) -> Result<(), switchboard_core::ConfigError> {
    match max_per_second {
        Some(cap) if !(1..=MAX_PER_SECOND).contains(&cap) => {
            Err(switchboard_core::ConfigError::invalid(
                format!("{key_prefix}.max_per_second"),
                format!("must be between 1 and {MAX_PER_SECOND} messages per second"),
            ))
        }
        _ => Ok(()),
    }
}
