use proptest::prelude::*;

use super::*;

fn country(code: &str) -> Country {
    Country::parse(code).unwrap()
}

fn parsed(
    text: &str,
    region: Option<&str>,
) -> Result<(String, String, NumberKind), DestinationError> {
    Destination::parse(text, region.map(country)).map(|destination| {
        (destination.e164().to_owned(), destination.country().to_string(), destination.kind())
    })
}

#[test]
fn accepts_e164_and_formatted_numbers() {
    let expected = Ok(("+16502530000".to_owned(), "US".to_owned(), NumberKind::FixedLineOrMobile));
    for text in ["+16502530000", "+1 650-253-0000", "+1 (650) 253-0000", " +1.650.253.0000 "] {
        assert_eq!(parsed(text, None), expected, "{text}");
    }
    // A default region does not override an explicit calling code.
    assert_eq!(parsed("+16502530000", Some("GB")), expected);
}

#[test]
fn reads_numbers_without_plus_in_the_default_region() {
    // Okta's preview sends a bare national number.
    assert_eq!(
        parsed("9876543210", Some("IN")),
        Ok(("+919876543210".to_owned(), "IN".to_owned(), NumberKind::Mobile))
    );
    assert_eq!(parsed("(650) 253-0000", Some("US")).unwrap().0, "+16502530000");
    // International dialling prefixes are read in the default region.
    assert_eq!(parsed("0044 20 7946 0958", Some("FR")).unwrap().0, "+442079460958");
    assert_eq!(parsed("011 44 20 7946 0958", Some("US")).unwrap().0, "+442079460958");
    // The national trunk prefix is dropped, also the bracketed British habit.
    assert_eq!(parsed("+44 (0)20 7946 0958", None).unwrap().0, "+442079460958");
    assert_eq!(
        parsed("020 7946 0958", Some("GB")),
        Ok(("+442079460958".to_owned(), "GB".to_owned(), NumberKind::FixedLine))
    );
}

#[test]
fn finds_the_country_inside_a_shared_calling_code() {
    assert_eq!(parsed("+1 506 234 5678", None).unwrap().1, "CA");
    assert_eq!(parsed("+1 650 253 0000", None).unwrap().1, "US");
    assert_eq!(parsed("+44 7400 123456", None).unwrap().1, "GB");
}

#[test]
fn records_the_line_type() {
    assert_eq!(parsed("+44 7400 123456", None).unwrap().2, NumberKind::Mobile);
    assert_eq!(parsed("+1 800 253 0000", None).unwrap().2, NumberKind::TollFree);
    assert_eq!(parsed("+1 900 253 0000", None).unwrap().2, NumberKind::PremiumRate);
}

#[test]
fn refuses_with_a_specific_error() {
    let cases: &[(&str, Option<&str>, DestinationError)] = &[
        ("", None, DestinationError::NotANumber),
        ("hello", Some("US"), DestinationError::NotANumber),
        ("+1 650 253 0000 ext 12", None, DestinationError::NotANumber),
        ("+1-800-FLOWERS", None, DestinationError::NotANumber),
        ("++16502530000", None, DestinationError::NotANumber),
        ("+1234567890123456789", None, DestinationError::TooLong),
        (&"1".repeat(80), None, DestinationError::TooLong),
        ("6502530000", None, DestinationError::NoCountry),
        ("+1 415 555 01", None, DestinationError::Invalid { calling_code: 1 }),
        ("+800 1234 5678", None, DestinationError::NonGeographic { calling_code: 800 }),
        ("6502530000", Some("ZZ"), DestinationError::UnsupportedRegion { region: country("ZZ") }),
    ];
    for (text, region, expected) in cases {
        assert_eq!(parsed(text, *region), Err(*expected), "{text:?} in {region:?}");
    }
    assert!(matches!(
        parsed("12", Some("US")),
        Err(DestinationError::NotANumber
            | DestinationError::TooShort
            | DestinationError::Invalid { .. })
    ));
}

#[test]
fn accepts_numbers_the_metadata_does_not_know_when_their_length_is_possible() {
    // New ranges the bundled metadata does not have yet are not "valid", but refusing them would
    // lock out real users; the provider has the last word. +55 is Brazil's alone, so an unknown
    // range of it is still Brazilian.
    let destination = Destination::parse("+55 11 1234 5678", None).unwrap();
    assert_eq!(destination.country(), country("BR"));
    assert_eq!(destination.kind(), NumberKind::Unknown);
    assert_eq!(destination.placement(), Placement::CallingCode);
}

#[test]
fn an_unknown_range_of_a_shared_calling_code_has_no_country() {
    // Before, these were filed under the main country of the calling code (US, GB). Area codes
    // 999 and 123 are in no NANP region's metadata; 7700 900xxx is Ofcom's drama range, in none
    // of GB, GG, IM or JE.
    for (text, calling_code) in
        [("+1 999 555 0123", 1), ("+1 123 456 7890", 1), ("+44 7700 900123", 44)]
    {
        let destination = Destination::parse(text, None).unwrap();
        assert_eq!(destination.country(), Country::UNKNOWN, "{text}");
        assert_eq!(destination.country().to_string(), "unknown");
        assert_eq!(destination.placement(), Placement::Unknown, "{text}");
        assert_eq!(destination.calling_code(), calling_code, "{text}");
        assert_eq!(destination.kind(), NumberKind::Unknown, "{text}");
    }
    assert_eq!(
        Destination::parse("+1 999 555 0123", None).unwrap().country_reason().as_deref(),
        Some("country unknown: +1 area code 999 is not in the metadata of any NANP country")
    );
    assert_eq!(
        Destination::parse("+44 7700 900123", None).unwrap().country_reason().as_deref(),
        Some(
            "country unknown: +44 is shared by GB, GG, IM, JE and the number is in none of their ranges"
        )
    );
}

#[test]
fn an_unknown_nanp_range_is_placed_by_its_area_code_only() {
    // 876 is Jamaica's (its leadingDigits), 650 the US's and 204 Canada's (their number
    // patterns); exchanges starting with 0 are in no range of any of them.
    for (text, expected) in
        [("+1 876 000 1234", "JM"), ("+1 650 011 1234", "US"), ("+1 204 011 1234", "CA")]
    {
        let destination = Destination::parse(text, None).unwrap();
        assert_eq!(destination.country(), country(expected), "{text}");
        assert_eq!(destination.placement(), Placement::LeadingDigits, "{text}");
        assert_eq!(destination.kind(), NumberKind::Unknown, "{text}");
    }
    assert_eq!(
        Destination::parse("+1 876 000 1234", None).unwrap().country_reason().as_deref(),
        Some("JM by area code 876: the number is in no range of the metadata")
    );
    // A valid Jamaican number (the metadata's example mobile) is Jamaican, not American.
    let jamaican = Destination::parse("+1 876 210 1234", None).unwrap();
    assert_eq!((jamaican.country(), jamaican.kind()), (country("JM"), NumberKind::Mobile));
    assert_eq!((jamaican.placement(), jamaican.country_reason()), (Placement::Valid, None));
}

#[test]
fn real_numbers_the_old_parser_refused_are_read() {
    // The `phonenumber` crate stripped a leading 0 or a national prefix from international
    // numbers: Italian landlines came out non-geographic, Russian toll-free numbers invalid.
    for (text, expected, kind) in [
        ("+39 06 1234 5678", "IT", NumberKind::FixedLine),
        ("+7 800 123 4567", "RU", NumberKind::TollFree),
        ("+370 800 12345", "LT", NumberKind::TollFree),
        ("+55 11 91234-5678", "BR", NumberKind::Mobile),
        ("+82 10 1234 5678", "KR", NumberKind::Mobile),
        ("+20 10 1234 5678", "EG", NumberKind::Mobile),
        ("+60 12 345 6789", "MY", NumberKind::Mobile),
    ] {
        let destination = Destination::parse(text, None).unwrap();
        assert_eq!(
            (destination.country(), destination.kind()),
            (country(expected), kind),
            "{text}"
        );
    }
}

#[test]
fn errors_never_contain_the_number() {
    for text in ["+1 415 555 01", "+800 1234 5678", "+99912345678", "4155550100"] {
        let error = Destination::parse(text, None).unwrap_err();
        let message = error.to_string();
        assert!(!message.contains("456") && !message.contains("5678"), "{message}");
        assert_eq!(message, message.to_lowercase());
    }
}

#[test]
fn new_keeps_working_with_an_unknown_kind() {
    let destination = Destination::new("+16502530000".into(), country("US"));
    assert_eq!(destination.kind(), NumberKind::Unknown);
    assert_eq!(format!("{destination:?}"), "Destination(US, unknown, ***)");
}

#[test]
fn route_countries_need_a_numbering_plan() {
    assert!(has_numbering_plan(country("US")));
    assert!(has_numbering_plan(country("gb")));
    assert!(!has_numbering_plan(country("ZZ")));
}

/// Regions the round-trip property draws from: every continent, shared calling codes (+1, +7),
/// and plans with a national trunk prefix or a kept leading zero (IT).
const REGIONS: &[&str] = &[
    "US", "CA", "GB", "DE", "FR", "IN", "BR", "JP", "AU", "IT", "MX", "NG", "ZA", "SG", "AE", "ES",
    "NL", "SE", "PL", "CN", "KR", "AR", "EG", "KE", "PH", "ID", "RU", "TR", "NZ", "IE", "CH", "JM",
    "PR",
];

const KINDS: &[NumberKind] = &[
    NumberKind::Mobile,
    NumberKind::FixedLine,
    NumberKind::TollFree,
    NumberKind::PremiumRate,
    NumberKind::SharedCost,
    NumberKind::Voip,
    NumberKind::PersonalNumber,
    NumberKind::Pager,
    NumberKind::Uan,
    NumberKind::Voicemail,
];

/// libphonenumber's example number of `kind` in `region`, national digits.
fn example(region: &str, kind: NumberKind) -> Option<&'static str> {
    examples()
        .into_iter()
        .find(|example| example.region == region && example.kind == kind.as_str())
        .map(|example| example.national)
}

#[test]
fn every_example_mobile_number_parses() {
    for region in REGIONS {
        let national = example(region, NumberKind::Mobile).unwrap();
        let destination = Destination::parse(national, Some(country(region)))
            .unwrap_or_else(|error| panic!("{region}: {error}"));
        assert_eq!(destination.country(), country(region));
        assert!(
            matches!(destination.kind(), NumberKind::Mobile | NumberKind::FixedLineOrMobile),
            "{region}: {:?}",
            destination.kind()
        );
    }
}

proptest! {
    /// Parsing a destination's own E.164 form, bare or decorated, gives the same destination.
    #[test]
    fn parsing_round_trips(
        region in prop::sample::select(REGIONS),
        kind in prop::sample::select(KINDS),
        last_digit in 0u8..10,
        separator in prop::sample::select(&[" ", "-", ".", ""][..]),
    ) {
        let Some(national) = example(region, kind) else { return Ok(()) };
        // Vary the last digit so the property sees more than one number per descriptor.
        let mut national = national.to_owned();
        national.pop();
        national.push(char::from(b'0' + last_digit));
        let Ok(destination) = Destination::parse(&national, Some(country(region))) else {
            return Ok(());
        };
        prop_assert_eq!(Destination::parse(destination.e164(), None), Ok(destination.clone()));
        let digits = destination.digits();
        // Separators go after the calling code (at most three digits), as a person would write them.
        let decorated = format!("+{}{separator}{}", &digits[..4], &digits[4..]);
        prop_assert_eq!(Destination::parse(&decorated, None), Ok(destination.clone()));
        // Any region is ignored once the number carries its calling code.
        prop_assert_eq!(Destination::parse(destination.e164(), Some(country("FR"))), Ok(destination));
    }
}

#[test]
fn premium_and_special_lines_never_take_an_otp() {
    for kind in [
        NumberKind::PremiumRate,
        NumberKind::SharedCost,
        NumberKind::Uan,
        NumberKind::Voicemail,
        NumberKind::Pager,
    ] {
        assert!(!kind.takes_otp(Channel::Sms) && !kind.takes_otp(Channel::Voice), "{kind}");
    }
    assert!(!NumberKind::TollFree.takes_otp(Channel::Sms));
    assert!(NumberKind::TollFree.takes_otp(Channel::Voice));
    for kind in [NumberKind::Mobile, NumberKind::FixedLineOrMobile, NumberKind::Unknown] {
        assert!(kind.takes_otp(Channel::Sms), "{kind}");
    }
}

/// libphonenumber's example numbers, one line per (region, type), with the region and type the
/// metadata itself gives them; `tests/fixtures/extract_example_numbers.py` writes it.
const EXAMPLE_NUMBERS: &str = include_str!("../../tests/fixtures/example_numbers.tsv");

struct Example<'a> {
    region: &'a str,
    calling_code: u16,
    kind: &'a str,
    national: &'a str,
    national_prefix: Option<&'a str>,
    expected_region: &'a str,
    expected_kind: &'a str,
}

fn examples() -> Vec<Example<'static>> {
    EXAMPLE_NUMBERS
        .lines()
        .filter(|line| !line.starts_with('#') && !line.starts_with("region\t"))
        .map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            assert_eq!(fields.len(), 7, "{line}");
            Example {
                region: fields[0],
                calling_code: fields[1].parse().unwrap(),
                kind: fields[2],
                national: fields[3],
                national_prefix: Some(fields[4]).filter(|prefix| *prefix != "-"),
                expected_region: fields[5],
                expected_kind: fields[6],
            }
        })
        .collect()
}

/// What `Destination::parse` should give for an example: its country and kind, or
/// `NonGeographic` for the global services of region 001.
fn expectation(example: &Example<'_>) -> Result<(String, String), DestinationError> {
    if example.expected_region == "001" {
        return Err(DestinationError::NonGeographic { calling_code: example.calling_code });
    }
    Ok((example.expected_region.to_owned(), example.expected_kind.to_owned()))
}

fn outcome(
    destination: Result<Destination, DestinationError>,
) -> Result<(String, String), DestinationError> {
    destination.map(|d| (d.country().to_string(), d.kind().as_str().to_owned()))
}

#[test]
fn every_example_number_of_the_metadata_parses_to_its_region_and_type() {
    let examples = examples();
    assert!(examples.len() > 1000, "the fixture lost its lines: {}", examples.len());
    let mut failures = Vec::new();
    for example in &examples {
        let e164 = format!("+{}{}", example.calling_code, example.national);
        let got = outcome(Destination::parse(&e164, None));
        if got != expectation(example) {
            failures.push(format!("{} {} {e164}: {got:?}", example.region, example.kind));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} example numbers misread:\n{}",
        failures.len(),
        examples.len(),
        failures.join("\n")
    );
}

#[test]
fn every_example_number_written_nationally_parses_in_its_region() {
    // As a user of the region writes it: with the national prefix where the region has one.
    let mut failures = Vec::new();
    let mut n_checked = 0;
    for example in examples()
        .iter()
        .filter(|example| example.region == example.expected_region && example.region != "001")
    {
        let text = format!("{}{}", example.national_prefix.unwrap_or(""), example.national);
        let got = outcome(Destination::parse(&text, Some(country(example.region))));
        n_checked += 1;
        if got != expectation(example) {
            failures.push(format!("{} {} {text}: {got:?}", example.region, example.kind));
        }
    }
    assert!(n_checked > 900, "{n_checked}");
    assert!(
        failures.is_empty(),
        "{} of {n_checked} national example numbers misread:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
