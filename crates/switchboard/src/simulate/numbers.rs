//! The phone numbers the simulator can generate: a mobile range per country. The scenario checks
//! its countries against these, and the traffic draws its numbers from them.

use switchboard_core::Country;

/// Mobile number ranges the phone metadata accepts, as (country, E.164 prefix, digits after
/// it). Room for a million numbers or more each.
const NUMBER_PLANS: &[(&str, &str, u32)] = &[
    ("US", "+1", 10),
    // 7400: a mobile range of GB alone (7700 is partly unassigned, so of no provable country).
    ("GB", "+447400", 6),
    ("DE", "+49151", 8),
    ("FR", "+336", 8),
    ("IN", "+9198", 8),
    ("BR", "+55119", 8),
    ("AU", "+614", 8),
];

/// US area codes for generated numbers (real, geographic ones).
const US_AREA_CODES: &[u32] = &[212, 213, 303, 305, 312, 404, 415, 503, 617, 702];

/// Whether the simulator can generate numbers for `country`.
pub(crate) fn has_number_plan(country: Country) -> bool {
    NUMBER_PLANS.iter().any(|(code, _, _)| *code == country.as_str())
}

/// The `n`-th distinct number of `country`.
pub(crate) fn phone_number(country: Country, n: u64) -> String {
    let (_, prefix, digits) = NUMBER_PLANS
        .iter()
        .find(|(code, _, _)| *code == country.as_str())
        .copied()
        .expect("validated: every scenario country has a number plan");
    if country.as_str() == "US" {
        // NPA-NXX-XXXX with an exchange in 201..=999 that never ends in 11 (service codes).
        let area = US_AREA_CODES[(n % US_AREA_CODES.len() as u64) as usize];
        let rest = n / US_AREA_CODES.len() as u64;
        let line = rest % 10_000;
        let mut exchange = 201 + (rest / 10_000) % 799;
        if exchange % 100 == 11 {
            exchange += 1;
        }
        return format!("{prefix}{area}{exchange}{line:04}");
    }
    let modulus = 10u64.pow(digits);
    format!("{prefix}{:0width$}", n % modulus, width = digits as usize)
}

#[cfg(test)]
mod tests {
    use switchboard_core::{Channel, Destination};

    use super::*;

    #[test]
    fn generated_numbers_are_valid_distinct_and_take_both_channels() {
        for (code, _, _) in NUMBER_PLANS {
            let country = Country::parse(code).unwrap();
            let mut seen = std::collections::BTreeSet::new();
            for n in (0..400).chain(200_000..200_200) {
                let phone = phone_number(country, n);
                let destination = Destination::parse(&phone, None)
                    .unwrap_or_else(|e| panic!("{phone} ({code}): {e}"));
                assert_eq!(destination.country(), country, "{phone}");
                assert!(destination.kind().takes_otp(Channel::Sms), "{phone}");
                assert!(destination.kind().takes_otp(Channel::Voice), "{phone}");
                assert!(seen.insert(phone));
            }
        }
    }
}
