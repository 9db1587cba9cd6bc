//! A destination phone number ([`Destination`]): the type, and the parsing of untrusted
//! phone-number text into it, with its line type ([`NumberKind`]) and the evidence for its
//! country ([`Placement`]).
//!
//! Okta sends whatever the user typed at enrolment, normalised to E.164 in production but not in
//! its preview (`9876543210`, no `+`). Routing needs the ISO country, and fraud and cost rules
//! later need the line type (premium rate, toll free), so both are decided once here, from
//! libphonenumber's metadata (the `rlibphonenumber` port, which follows the upstream C++ and Java
//! parser; the `phonenumber` crate used before stripped national prefixes and leading zeros from
//! international numbers, so Italian, Belgian, Lithuanian, Russian toll-free and other valid
//! numbers were refused or misfiled).
//!
//! A country is only given when the metadata proves it. A number in no known range is still sent
//! (the metadata lags new ranges) but its country is [`Country::UNKNOWN`] when its calling code is
//! shared by several countries and nothing places it: filing an unknown +1 range of Jamaica as US
//! would hand a toll-fraud destination the US allow-list, limits and prices.
//!
//! Errors never contain the number: they end up in logs, and phone numbers are personal data.

use std::fmt;

use rlibphonenumber::{
    NumberLengthType, PHONE_NUMBER_UTIL, ParseError, PhoneNumber, PhoneNumberFormat,
    PhoneNumberType, Region,
};

use crate::domain::{Channel, Country};

mod nanp_area_codes;

/// The longest text worth handing to the parser; a formatted international number is far
/// shorter, and the cap keeps hostile input away from the parser's regexes.
const MAX_TEXT_LEN: usize = 64;

/// E.164 allows at most 15 digits; two more leave room for an international prefix (`00`, `011`).
const MAX_DIGITS_IN_TEXT: usize = 17;

/// E.164's limit on the digits of a full international number.
const MAX_E164_DIGITS: usize = 15;

/// The kind of line a number belongs to, as the country's numbering plan says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NumberKind {
    /// A mobile number.
    Mobile,
    /// A fixed (landline) number.
    FixedLine,
    /// Either; the plan cannot tell them apart (the US and Canada).
    FixedLineOrMobile,
    /// A freephone number.
    TollFree,
    /// A premium-rate number, a favourite of SMS pumping.
    PremiumRate,
    /// A shared-cost number.
    SharedCost,
    /// A voice-over-IP number.
    Voip,
    /// A personal number routed on to another line.
    PersonalNumber,
    /// A pager.
    Pager,
    /// A universal access ("company") number.
    Uan,
    /// A voicemail access number.
    Voicemail,
    /// Anything else, or not looked up.
    Unknown,
}

impl NumberKind {
    /// Every kind, in a stable order (for metrics and tests).
    pub const ALL: [NumberKind; 12] = [
        NumberKind::Mobile,
        NumberKind::FixedLine,
        NumberKind::FixedLineOrMobile,
        NumberKind::TollFree,
        NumberKind::PremiumRate,
        NumberKind::SharedCost,
        NumberKind::Voip,
        NumberKind::PersonalNumber,
        NumberKind::Pager,
        NumberKind::Uan,
        NumberKind::Voicemail,
        NumberKind::Unknown,
    ];

    /// Lower-case label for config, logs and metrics.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            NumberKind::Mobile => "mobile",
            NumberKind::FixedLine => "fixed_line",
            NumberKind::FixedLineOrMobile => "fixed_line_or_mobile",
            NumberKind::TollFree => "toll_free",
            NumberKind::PremiumRate => "premium_rate",
            NumberKind::SharedCost => "shared_cost",
            NumberKind::Voip => "voip",
            NumberKind::PersonalNumber => "personal_number",
            NumberKind::Pager => "pager",
            NumberKind::Uan => "uan",
            NumberKind::Voicemail => "voicemail",
            NumberKind::Unknown => "unknown",
        }
    }

    fn from_library(kind: PhoneNumberType) -> NumberKind {
        match kind {
            PhoneNumberType::Mobile => NumberKind::Mobile,
            PhoneNumberType::FixedLine => NumberKind::FixedLine,
            PhoneNumberType::FixedLineOrMobile => NumberKind::FixedLineOrMobile,
            PhoneNumberType::TollFree => NumberKind::TollFree,
            PhoneNumberType::PremiumRate => NumberKind::PremiumRate,
            PhoneNumberType::SharedCost => NumberKind::SharedCost,
            PhoneNumberType::VoIP => NumberKind::Voip,
            PhoneNumberType::PersonalNumber => NumberKind::PersonalNumber,
            PhoneNumberType::Pager => NumberKind::Pager,
            PhoneNumberType::UAN => NumberKind::Uan,
            PhoneNumberType::VoiceMail => NumberKind::Voicemail,
            PhoneNumberType::Unknown => NumberKind::Unknown,
        }
    }
}

impl NumberKind {
    /// Whether an OTP may be sent to this kind of line on `channel`. Premium-rate, shared-cost,
    /// UAN, voicemail and pager numbers never take an OTP (they are how toll fraud pays out);
    /// toll-free numbers cannot receive SMS. Okta's own enrollment refuses the same kinds.
    /// Unknown kinds pass: the metadata may simply not know a new range.
    #[must_use]
    pub fn takes_otp(self, channel: Channel) -> bool {
        match self {
            NumberKind::PremiumRate
            | NumberKind::SharedCost
            | NumberKind::Uan
            | NumberKind::Voicemail
            | NumberKind::Pager => false,
            NumberKind::TollFree => channel == Channel::Voice,
            _ => true,
        }
    }
}

impl fmt::Display for NumberKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why text is not a usable destination. Messages never contain the number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DestinationError {
    /// Empty, letters, or characters a phone number does not have.
    #[error("not a phone number")]
    NotANumber,
    /// Fewer digits than any number could have.
    #[error("phone number is too short")]
    TooShort,
    /// More digits than E.164 allows.
    #[error("phone number is too long")]
    TooLong,
    /// No `+` and no default region to read a national number in.
    #[error("phone number has no country calling code and there is no default region")]
    NoCountry,
    /// The number starts with a calling code no country uses.
    #[error("unknown country calling code")]
    UnknownCallingCode,
    /// The number has a length no number of that calling code has.
    #[error("phone number has an impossible length for calling code +{calling_code}")]
    Invalid {
        /// The number's country calling code (not personal data).
        calling_code: u16,
    },
    /// A valid number of a non-geographic service (`+800`, `+882`), which no route can match.
    #[error("phone number belongs to no country (calling code +{calling_code})")]
    NonGeographic {
        /// The number's country calling code.
        calling_code: u16,
    },
    /// The default region is not a country with a numbering plan.
    #[error("default region {region} has no numbering plan")]
    UnsupportedRegion {
        /// The region as given.
        region: Country,
    },
}

/// How the parser placed a number in its country: the evidence behind
/// [`Destination::country`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Placement {
    /// The number is valid in the country's numbering plan.
    Valid,
    /// In no known range, but its calling code is this country's alone and its length is
    /// possible there (the metadata lags new ranges).
    CallingCode,
    /// In no known range of a calling code shared by several countries, but its leading digits
    /// (a NANP area code, the Isle of Man's `7624`, ...) belong to this country alone.
    LeadingDigits,
    /// In no known range of a calling code shared by several countries, and nothing in the
    /// metadata places it: the country is [`Country::UNKNOWN`].
    Unknown,
    /// Built with [`Destination::new`]: the caller said the country, nothing was looked up.
    Given,
}

/// A destination phone number, normalised to E.164, with the country it belongs to.
///
/// Build one from untrusted text with [`Destination::parse`].
/// `Debug` never prints the number: phone numbers are personal data and appear in logs only as
/// country plus a keyed hash (computed by the server, which holds the key).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Destination {
    e164: String,
    country: Country,
    kind: NumberKind,
    calling_code: u16,
    placement: Placement,
}

impl Destination {
    /// Builds a destination from an already-normalised E.164 string and its country; its kind is
    /// [`NumberKind::Unknown`] and its placement [`Placement::Given`] (nothing was looked up).
    #[must_use]
    pub fn new(e164: String, country: Country) -> Destination {
        let calling_code = calling_code_of(&e164);
        Destination {
            e164,
            country,
            kind: NumberKind::Unknown,
            calling_code,
            placement: Placement::Given,
        }
    }

    /// Builds a destination from parts the parser has already checked.
    fn from_parts(
        e164: String,
        country: Country,
        kind: NumberKind,
        calling_code: u16,
        placement: Placement,
    ) -> Destination {
        Destination { e164, country, kind, calling_code, placement }
    }

    /// `+` followed by the digits.
    #[must_use]
    pub fn e164(&self) -> &str {
        &self.e164
    }

    /// The digits without the leading `+` (the form several providers want).
    #[must_use]
    pub fn digits(&self) -> &str {
        self.e164.trim_start_matches('+')
    }

    /// The number's country; [`Country::UNKNOWN`] when the metadata cannot place it (see
    /// [`Destination::country_reason`]).
    #[must_use]
    pub fn country(&self) -> Country {
        self.country
    }

    /// The country calling code (`1`, `44`); not personal data.
    #[must_use]
    pub fn calling_code(&self) -> u16 {
        self.calling_code
    }

    /// The evidence for [`Destination::country`].
    #[must_use]
    pub fn placement(&self) -> Placement {
        self.placement
    }

    /// What kind of line the numbering plan says this is (mobile, fixed line, ...).
    #[must_use]
    pub fn kind(&self) -> NumberKind {
        self.kind
    }
}

impl fmt::Debug for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Destination({}, {}, ***)", self.country, self.kind)
    }
}

impl Destination {
    /// Parses E.164 (`+14155550100`), formatted (`+1 (415) 555-0100`) or national text
    /// (`9876543210`, read in `default_region`) into a normalised, validated destination.
    pub fn parse(
        text: &str,
        default_region: Option<Country>,
    ) -> Result<Destination, DestinationError> {
        let util = &*PHONE_NUMBER_UTIL;
        let text = text.trim();
        check_shape(text)?;
        // The parser only ever sees `+` and digits: `check_shape` allowed a few separators, which
        // carry nothing libphonenumber needs.
        let compact: String = text.chars().filter(|c| *c == '+' || c.is_ascii_digit()).collect();
        let region = match default_region {
            Some(region) => {
                Some(library_region(region).ok_or(DestinationError::UnsupportedRegion { region })?)
            }
            None => None,
        };
        // Without `+` the library would guess; a national number needs a region to mean anything.
        if !compact.starts_with('+') && region.is_none() {
            return Err(DestinationError::NoCountry);
        }
        let number = util.parse(&compact, region).map_err(from_library_error)?;
        let calling_code =
            u16::try_from(number.country_code).map_err(|_| DestinationError::UnknownCallingCode)?;
        let e164 = util.format(&number, PhoneNumberFormat::E164).into_owned();
        if e164.len() - 1 > MAX_E164_DIGITS {
            return Err(DestinationError::TooLong);
        }
        if util.is_valid_number(&number) {
            let country = country_of(util.get_region_for_number(&number))
                .ok_or(DestinationError::NonGeographic { calling_code })?;
            let kind = NumberKind::from_library(util.get_number_type(&number));
            return Ok(Destination::from_parts(
                e164,
                country,
                kind,
                calling_code,
                Placement::Valid,
            ));
        }
        // Not valid by the bundled metadata. Metadata lags new number ranges by months, and
        // refusing a real user's new number would lock them out, while sending to a truly
        // invalid one costs one provider answer of "invalid number" (which never fails over).
        // So a number of a possible length is accepted, with an unknown line type, in the
        // country the metadata can prove, or none.
        if util.is_possible_number_with_reason(&number) != Ok(NumberLengthType::IsPossible) {
            return Err(DestinationError::Invalid { calling_code });
        }
        let (country, placement) = place_unknown_range(&number, calling_code)?;
        Ok(Destination::from_parts(e164, country, NumberKind::Unknown, calling_code, placement))
    }

    /// Why the number has the country it has, when the metadata did not validate it: for
    /// `explain` and operators (`"country unknown: +1 area code 999 is not in the metadata of
    /// any NANP country"`). `None` for a valid number. Never more of the number than its calling
    /// code and, for +1, its area code (which is not personal data).
    #[must_use]
    pub fn country_reason(&self) -> Option<String> {
        let calling_code = self.calling_code();
        let national = &self.digits()[calling_code.to_string().len()..];
        let area_code = national.get(..3).unwrap_or(national);
        let country = self.country();
        match self.placement() {
            Placement::Valid | Placement::Given => None,
            Placement::CallingCode => Some(format!(
                "{country} by calling code +{calling_code} alone: the number is in no range of \
                 the metadata"
            )),
            Placement::LeadingDigits if calling_code == 1 => Some(format!(
                "{country} by area code {area_code}: the number is in no range of the metadata"
            )),
            Placement::LeadingDigits => Some(format!(
                "{country} by its leading digits: the number is in no range of the metadata \
                 under +{calling_code}"
            )),
            Placement::Unknown if calling_code == 1 => Some(format!(
                "country unknown: +1 area code {area_code} is not in the metadata of any NANP \
                 country"
            )),
            Placement::Unknown => Some(format!(
                "country unknown: +{calling_code} is shared by {} and the number is in none of \
                 their ranges",
                regions_of(calling_code).join(", ")
            )),
        }
    }
}

/// The country of a possible but invalid number, and the evidence for it.
fn place_unknown_range(
    number: &PhoneNumber,
    calling_code: u16,
) -> Result<(Country, Placement), DestinationError> {
    let util = &*PHONE_NUMBER_UTIL;
    let regions: Vec<Region> = util
        .get_regions_for_country_calling_code(number.country_code)
        .ok_or(DestinationError::UnknownCallingCode)?
        .collect();
    match regions.as_slice() {
        [] => Err(DestinationError::UnknownCallingCode),
        [only] => {
            let country =
                country_of(Some(*only)).ok_or(DestinationError::NonGeographic { calling_code })?;
            Ok((country, Placement::CallingCode))
        }
        _ => {
            // libphonenumber's region choice for a shared calling code: the first region whose
            // `leadingDigits` match (every NANP region but US and CA lists its area codes there).
            if let Some(country) = country_of(util.get_region_for_number(number)) {
                return Ok((country, Placement::LeadingDigits));
            }
            // US and CA list their area codes only inside their number patterns.
            if calling_code == 1
                && let Some(country) = nanp_country_of_area_code(number)
            {
                return Ok((country, Placement::LeadingDigits));
            }
            Ok((Country::UNKNOWN, Placement::Unknown))
        }
    }
}

/// The country of a +1 number by its area code, for the NANP regions without `leadingDigits`.
fn nanp_country_of_area_code(number: &PhoneNumber) -> Option<Country> {
    // National NANP numbers are ten digits, the first three the area code.
    let area_code = u16::try_from(number.national_number / 10_000_000).ok()?;
    [("US", nanp_area_codes::US), ("CA", nanp_area_codes::CA)]
        .into_iter()
        .find(|(_, area_codes)| area_codes.binary_search(&area_code).is_ok())
        .and_then(|(region, _)| Country::parse(region))
}

/// The ISO codes of the regions sharing `calling_code`, main country first.
fn regions_of(calling_code: u16) -> Vec<String> {
    PHONE_NUMBER_UTIL
        .get_regions_for_country_calling_code(i32::from(calling_code))
        .map(|regions| regions.map(|region| region.as_region_str().as_str().to_owned()).collect())
        .unwrap_or_default()
}

/// The calling code an E.164 string starts with, for destinations built from parts.
fn calling_code_of(e164: &str) -> u16 {
    let digits = e164.trim_start_matches('+');
    (1..=3)
        .filter_map(|len| digits.get(..len)?.parse::<u16>().ok())
        .find(|code| {
            PHONE_NUMBER_UTIL.get_regions_for_country_calling_code(i32::from(*code)).is_some()
        })
        .unwrap_or(0)
}

/// Whether libphonenumber knows a numbering plan for this region (used to validate route
/// countries, so a rule for a code that no number can have is refused at load time).
pub(crate) fn has_numbering_plan(country: Country) -> bool {
    library_region(country).is_some()
}

/// Refuses text that cannot be a phone number before the parser sees it.
fn check_shape(text: &str) -> Result<(), DestinationError> {
    if text.len() > MAX_TEXT_LEN {
        return Err(DestinationError::TooLong);
    }
    let body = text.strip_prefix('+').unwrap_or(text);
    let is_phone_shaped = body
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b' ' | b'-' | b'.' | b'(' | b')' | b'/'));
    let n_digits = body.bytes().filter(u8::is_ascii_digit).count();
    if !is_phone_shaped || n_digits == 0 {
        return Err(DestinationError::NotANumber);
    }
    if n_digits > MAX_DIGITS_IN_TEXT {
        return Err(DestinationError::TooLong);
    }
    Ok(())
}

fn library_region(country: Country) -> Option<Region> {
    if country.is_unknown() {
        return None;
    }
    let region = Region::from_code(country.as_str()).ok()?;
    // Every two letters make a `Region`; only those with metadata have a numbering plan.
    PHONE_NUMBER_UTIL.get_country_code_for_region(region).is_some().then_some(region)
}

/// The ISO country of a region; `None` for none or the non-geographic "001" (`+800`, `+882`).
fn country_of(region: Option<Region>) -> Option<Country> {
    region.and_then(|region| Country::parse(region.as_region_str().as_str()))
}

fn from_library_error(error: ParseError) -> DestinationError {
    match error {
        ParseError::NotANumber(_) => DestinationError::NotANumber,
        ParseError::InvalidCountryCode => DestinationError::UnknownCallingCode,
        ParseError::TooShortAfterIdd | ParseError::TooShortNsn => DestinationError::TooShort,
        ParseError::TooLongNsn => DestinationError::TooLong,
    }
}

#[cfg(test)]
mod tests;
