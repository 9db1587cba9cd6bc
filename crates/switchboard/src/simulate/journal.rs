//! The journal of a run: everything the emulated providers accepted, per request, and the seeds
//! every random draw comes from.

use std::time::Duration;

/// One message a provider accepted.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Acceptance {
    /// Which provider (its index in the scenario).
    pub(crate) provider: usize,
    /// When it accepted it, from the start of the run; a message that reaches the phone does
    /// so then.
    pub(crate) at: Duration,
    /// What it cost.
    pub(crate) price: f64,
    /// Whether it reached the phone (whatever its receipt says).
    pub(crate) is_on_phone: bool,
}

/// Everything accepted for one request (an OTP), and how many sends it took.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct OtpRecord {
    /// Sends made, accepted or not.
    pub(crate) sends: u32,
    /// Sends per provider index (to seed each send's RNG).
    pub(crate) sends_by_provider: Vec<u32>,
    /// Acceptances, in the order the sends were made.
    pub(crate) acceptances: Vec<Acceptance>,
    /// When a resend was asked for; `None` for a sign-in's first request (its arrival says
    /// when) and for a resend never asked for.
    pub(crate) requested_at: Option<Duration>,
}

/// SplitMix64 over the parts: a cheap, well-spread seed from several numbers.
pub(crate) fn mix(parts: &[u64]) -> u64 {
    parts.iter().fold(0x9e37_79b9_7f4a_7c15_u64, |state, part| {
        let mut z = state.wrapping_add(*part).wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    })
}

/// The Okta `eventId` of request `index`.
pub(crate) fn event_id(index: usize) -> String {
    format!("sim-{index:08}")
}

/// The request an `eventId` (a message's reference) names.
pub(crate) fn otp_index(reference: &str) -> Option<usize> {
    reference.strip_prefix("sim-")?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_round_trip() {
        assert_eq!(otp_index(&event_id(42)), Some(42));
        assert_eq!(otp_index("evt-1"), None);
    }

    #[test]
    fn mixing_separates_nearby_inputs() {
        assert_ne!(mix(&[1, 2, 3, 0]), mix(&[1, 2, 3, 1]));
        assert_ne!(mix(&[1, 2, 3, 0]), mix(&[1, 3, 2, 0]));
        assert_eq!(mix(&[7, 8]), mix(&[7, 8]));
    }
}
