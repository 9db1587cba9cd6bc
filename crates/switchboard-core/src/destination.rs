//! Parsing untrusted phone-number text into a [`Destination`].
//!
//! Okta sends whatever the user typed at enrolment, normalised to E.164 in production but not in
//! its preview (`9876543210`, no `+`). Routing needs the ISO country, and fraud and cost rules
//! later need the line type (premium rate, toll free), so both are decided once here, from
//! libphonenumber's metadata (the `phonenumber` crate), and carried on the [`Destination`].
//!
//! Errors never contain the number: they end up in logs, and phone numbers are personal data.

use std::fmt;
use std::str::FromStr;

use phonenumber::country::Id;
use phonenumber::metadata::DATABASE;
use phonenumber::{Mode, ParseError, PhoneNumber, Type};

use crate::domain::{Channel, Country, Destination};

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

    fn from_library(kind: Type) -> NumberKind {
        match kind {
            Type::Mobile => NumberKind::Mobile,
            Type::FixedLine => NumberKind::FixedLine,
            Type::FixedLineOrMobile => NumberKind::FixedLineOrMobile,
            Type::TollFree => NumberKind::TollFree,
            Type::PremiumRate => NumberKind::PremiumRate,
            Type::SharedCost => NumberKind::SharedCost,
            Type::Voip => NumberKind::Voip,
            Type::PersonalNumber => NumberKind::PersonalNumber,
            Type::Pager => NumberKind::Pager,
            Type::Uan => NumberKind::Uan,
            Type::Voicemail => NumberKind::Voicemail,
            // Emergency, short codes and carrier-specific numbers are not reachable end-user
            // lines; calling them Unknown keeps the core enum to what routing can act on.
            Type::Emergency
            | Type::ShortCode
            | Type::StandardRate
            | Type::Carrier
            | Type::NoInternational
            | Type::Unknown => NumberKind::Unknown,
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

impl Destination {
    /// Parses E.164 (`+14155550100`), formatted (`+1 (415) 555-0100`) or national text
    /// (`9876543210`, read in `default_region`) into a normalised, validated destination.
    pub fn parse(
        text: &str,
        default_region: Option<Country>,
    ) -> Result<Destination, DestinationError> {
        let text = text.trim();
        check_shape(text)?;
        // The parser trips over some separator positions (`+4915-1234...` reads as an unknown
        // calling code), so it only ever sees `+` and digits.
        let compact: String = text.chars().filter(|c| *c == '+' || c.is_ascii_digit()).collect();
        let region = match default_region {
            Some(region) => {
                Some(library_id(region).ok_or(DestinationError::UnsupportedRegion { region })?)
            }
            None => None,
        };
        // Without `+` the library would guess; a national number needs a region to mean anything.
        if !compact.starts_with('+') && region.is_none() {
            return Err(DestinationError::NoCountry);
        }
        let number = phonenumber::parse(region, &compact).map_err(from_library_error)?;
        let calling_code = number.country().code();
        let e164 = number.format().mode(Mode::E164).to_string();
        if e164.len() - 1 > MAX_E164_DIGITS {
            return Err(DestinationError::TooLong);
        }
        if number.is_valid() {
            let country =
                country_of(&number).ok_or(DestinationError::NonGeographic { calling_code })?;
            let kind = NumberKind::from_library(number.number_type(&DATABASE));
            return Ok(Destination::from_parts(e164, country, kind));
        }
        // Not valid by the bundled metadata. Metadata lags new number ranges by months, and
        // refusing a real user's new number would lock them out, while sending to a truly
        // invalid one costs one provider answer of "invalid number" (which never fails over).
        // So a number whose length is possible in its calling code's main country is accepted,
        // as that country, with an unknown line type.
        let national_digits = e164.len() - 1 - calling_code.to_string().len();
        let main_region = DATABASE.by_code(&calling_code).and_then(|regions| {
            regions.into_iter().find(|meta| meta.is_main_country_for_code() || meta.id() == "US")
        });
        let Some(meta) = main_region else {
            return Err(DestinationError::UnknownCallingCode);
        };
        let country =
            Country::parse(meta.id()).ok_or(DestinationError::NonGeographic { calling_code })?;
        let is_possible_length = u16::try_from(national_digits).is_ok_and(|n| {
            // The metadata keeps possible lengths on each line type, not on the general entry.
            let descriptors = meta.descriptors();
            [
                descriptors.fixed_line(),
                descriptors.mobile(),
                descriptors.voip(),
                descriptors.personal_number(),
            ]
            .into_iter()
            .flatten()
            .any(|descriptor| descriptor.possible_length().contains(&n))
        });
        if !is_possible_length {
            return Err(DestinationError::Invalid { calling_code });
        }
        Ok(Destination::from_parts(e164, country, NumberKind::Unknown))
    }
}

/// Whether libphonenumber knows a numbering plan for this region (used to validate route
/// countries, so a rule for a code that no number can have is refused at load time).
pub(crate) fn has_numbering_plan(country: Country) -> bool {
    library_id(country).is_some()
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

fn library_id(country: Country) -> Option<Id> {
    Id::from_str(country.as_str()).ok()
}

fn country_of(number: &PhoneNumber) -> Option<Country> {
    number.country().id().and_then(|id| Country::parse(id.as_ref()))
}

fn from_library_error(error: ParseError) -> DestinationError {
    match error {
        ParseError::NoNumber | ParseError::MalformedInteger(_) => DestinationError::NotANumber,
        ParseError::InvalidCountryCode => DestinationError::UnknownCallingCode,
        ParseError::TooShortAfterIdd | ParseError::TooShortNsn => DestinationError::TooShort,
        ParseError::TooLong => DestinationError::TooLong,
    }
}

#[cfg(test)]
mod tests;
