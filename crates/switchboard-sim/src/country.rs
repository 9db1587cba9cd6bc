//! The country of a destination number, from its calling code, for the per-country delivery
//! rules of [`crate::callbacks`].
//!
//! A table and not libphonenumber: the emulators only need the country a rule names, and a
//! number's calling code tells it, except within the North American plan (+1), where Canada
//! is told apart by its area codes and every other +1 number counts as the US. Numbers come as
//! each provider takes them: `+447700900123`, `447700900123` or `00447700900123`.

/// ITU calling codes and the country each names (codes of several countries are left out).
#[rustfmt::skip]
const CODES: &[(&str, &str)] = &[
    ("20", "EG"), ("27", "ZA"), ("30", "GR"), ("31", "NL"), ("32", "BE"), ("33", "FR"),
    ("34", "ES"), ("36", "HU"), ("39", "IT"), ("40", "RO"), ("41", "CH"), ("43", "AT"),
    ("44", "GB"), ("45", "DK"), ("46", "SE"), ("47", "NO"), ("48", "PL"), ("49", "DE"),
    ("51", "PE"), ("52", "MX"), ("53", "CU"), ("54", "AR"), ("55", "BR"), ("56", "CL"),
    ("57", "CO"), ("58", "VE"), ("60", "MY"), ("61", "AU"), ("62", "ID"), ("63", "PH"),
    ("64", "NZ"), ("65", "SG"), ("66", "TH"), ("81", "JP"), ("82", "KR"), ("84", "VN"),
    ("86", "CN"), ("90", "TR"), ("91", "IN"), ("92", "PK"), ("93", "AF"), ("94", "LK"),
    ("95", "MM"), ("98", "IR"), ("212", "MA"), ("213", "DZ"), ("216", "TN"), ("218", "LY"),
    ("220", "GM"), ("221", "SN"), ("225", "CI"), ("233", "GH"), ("234", "NG"), ("237", "CM"),
    ("243", "CD"), ("244", "AO"), ("251", "ET"), ("254", "KE"), ("255", "TZ"), ("256", "UG"),
    ("260", "ZM"), ("263", "ZW"), ("351", "PT"), ("352", "LU"), ("353", "IE"), ("354", "IS"),
    ("355", "AL"), ("356", "MT"), ("357", "CY"), ("358", "FI"), ("359", "BG"), ("370", "LT"),
    ("371", "LV"), ("372", "EE"), ("373", "MD"), ("374", "AM"), ("375", "BY"), ("380", "UA"),
    ("381", "RS"), ("382", "ME"), ("385", "HR"), ("386", "SI"), ("387", "BA"), ("389", "MK"),
    ("420", "CZ"), ("421", "SK"), ("423", "LI"), ("852", "HK"), ("853", "MO"), ("855", "KH"),
    ("856", "LA"), ("880", "BD"), ("886", "TW"), ("960", "MV"), ("961", "LB"), ("962", "JO"),
    ("963", "SY"), ("964", "IQ"), ("965", "KW"), ("966", "SA"), ("967", "YE"), ("968", "OM"),
    ("970", "PS"), ("971", "AE"), ("972", "IL"), ("973", "BH"), ("974", "QA"), ("975", "BT"),
    ("976", "MN"), ("977", "NP"), ("992", "TJ"), ("993", "TM"), ("994", "AZ"), ("995", "GE"),
    ("996", "KG"), ("998", "UZ"),
];

/// Canadian area codes within +1.
const CANADA: &[&str] = &[
    "204", "226", "236", "249", "250", "257", "263", "289", "306", "343", "354", "365", "367",
    "368", "382", "387", "403", "416", "418", "428", "431", "437", "438", "450", "460", "468",
    "474", "506", "514", "519", "548", "579", "581", "584", "587", "604", "613", "639", "647",
    "672", "683", "705", "709", "742", "753", "778", "780", "782", "807", "819", "825", "867",
    "873", "879", "902", "905",
];

/// The ISO 3166 alpha-2 code of the country `number` is in, when its calling code tells;
/// `None` for a name (a SIP user, an app endpoint) or a calling code not in the table.
pub(crate) fn of_number(number: &str) -> Option<&'static str> {
    let number = number.trim();
    let international = number.strip_prefix('+').or_else(|| number.strip_prefix("00"));
    let digits: String = international
        .unwrap_or(number)
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '(' | ')' | '.'))
        .collect();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if let Some(national) = digits.strip_prefix('1') {
        let area = national.get(..3)?;
        return Some(if CANADA.contains(&area) { "CA" } else { "US" });
    }
    if let Some(national) = digits.strip_prefix('7') {
        return Some(if national.starts_with(['6', '7']) { "KZ" } else { "RU" });
    }
    (2..=3).find_map(|len| {
        let prefix = digits.get(..len)?;
        CODES.iter().find(|(code, _)| *code == prefix).map(|(_, country)| *country)
    })
}

#[cfg(test)]
mod tests {
    use super::of_number;

    #[test]
    fn tells_the_country_from_the_calling_code() {
        assert_eq!(of_number("+447700900123"), Some("GB"));
        assert_eq!(of_number("447700900123"), Some("GB"), "Vonage and Plivo drop the plus");
        assert_eq!(of_number("00 49 30 1234567"), Some("DE"));
        assert_eq!(of_number("+14155550100"), Some("US"));
        assert_eq!(of_number("+14165550100"), Some("CA"));
        assert_eq!(of_number("+77011234567"), Some("KZ"));
        assert_eq!(of_number("+79161234567"), Some("RU"));
        assert_eq!(of_number("+353861234567"), Some("IE"));
        assert_eq!(of_number("+2901234"), None, "a code not in the table");
        assert_eq!(of_number("alice"), None);
        assert_eq!(of_number("+1"), None);
        assert_eq!(of_number(""), None);
    }
}
