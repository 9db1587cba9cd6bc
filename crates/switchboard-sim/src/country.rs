//! The country of a destination number, for the per-country delivery rules of
//! [`crate::callbacks`]: libphonenumber's metadata through the core's parser, the same answer
//! the server routes by. Numbers come as each provider takes them: `+447400123456`,
//! `447400123456` (Vonage and Plivo drop the plus) or `00447400123456`.

use switchboard_core::Destination;

/// The ISO 3166 alpha-2 code of the country `number` is in, when the metadata can place it;
/// `None` for a name (a SIP user, an app endpoint) or a number no country claims.
pub(crate) fn of_number(number: &str) -> Option<String> {
    let number = number.trim();
    let digits = number.strip_prefix('+').or_else(|| number.strip_prefix("00")).unwrap_or(number);
    let destination = Destination::parse(&format!("+{digits}"), None).ok()?;
    let country = destination.country();
    (!country.is_unknown()).then(|| country.as_str().to_owned())
}

#[cfg(test)]
mod tests {
    use super::of_number;

    #[test]
    fn tells_the_country_as_the_server_does() {
        let of = |number| of_number(number);
        assert_eq!(of("+447400123456").as_deref(), Some("GB"));
        assert_eq!(of("447400123456").as_deref(), Some("GB"), "Vonage and Plivo drop the plus");
        assert_eq!(of("0049301234567").as_deref(), Some("DE"));
        assert_eq!(of("+14155550100").as_deref(), Some("US"));
        assert_eq!(of("+14165550100").as_deref(), Some("CA"), "a Canadian area code");
        assert_eq!(of("+18765550100").as_deref(), Some("JM"), "NANP beyond the US and Canada");
        assert_eq!(of("+77011234567").as_deref(), Some("KZ"));
        assert_eq!(of("+79161234567").as_deref(), Some("RU"));
        assert_eq!(of("+353861234567").as_deref(), Some("IE"));
        assert_eq!(of("alice"), None);
        assert_eq!(of("+1"), None);
        assert_eq!(of(""), None);
    }
}
