use phonenumber::Type;
use phonenumber::metadata::DATABASE;
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
    // Fictional ranges (and new ranges the bundled metadata does not have yet) are not "valid",
    // but refusing them would lock out real users of new ranges; the provider has the last word.
    for (text, country_code) in [("+44 7700 900123", "GB"), ("+1 123 456 7890", "US")] {
        let destination = Destination::parse(text, None).unwrap();
        assert_eq!(destination.country(), country(country_code), "{text}");
        assert_eq!(destination.kind(), NumberKind::Unknown, "{text}");
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

const KINDS: &[Type] = &[
    Type::Mobile,
    Type::FixedLine,
    Type::TollFree,
    Type::PremiumRate,
    Type::SharedCost,
    Type::Voip,
    Type::PersonalNumber,
    Type::Pager,
    Type::Uan,
    Type::Voicemail,
];

/// libphonenumber's example number of `kind` in `region`, national digits.
fn example(region: &str, kind: Type) -> Option<&'static str> {
    DATABASE.by_id(region)?.descriptors().get(kind)?.example()
}

#[test]
fn every_example_mobile_number_parses() {
    for region in REGIONS {
        let national = example(region, Type::Mobile).unwrap();
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
