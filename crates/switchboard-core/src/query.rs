//! What is being routed: [`RouteQuery`], the question route rules match and the planner
//! answers, and [`NumberDigits`], a number's digits for prefix rules.
//!
//! It sits below both route matching (`route/`) and planning (`plan/`): the rules read a query,
//! the planner is handed one, and neither owns it.

use std::fmt;

use crate::destination::Destination;
use crate::domain::{Channel, Country, ProviderId, Purpose};

/// E.164's limit on the digits of a full international number.
pub const MAX_NUMBER_DIGITS: usize = 15;

/// The digits of an E.164 number, country code first, for prefix rules. `Debug` never prints
/// them: phone numbers are personal data.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct NumberDigits {
    digits: [u8; MAX_NUMBER_DIGITS],
    len: u8,
}

impl NumberDigits {
    /// Accepts 1 to 15 ASCII digits, with or without a leading `+`.
    pub fn parse(text: &str) -> Option<NumberDigits> {
        let body = text.strip_prefix('+').unwrap_or(text).as_bytes();
        if body.is_empty() || body.len() > MAX_NUMBER_DIGITS || !body.iter().all(u8::is_ascii_digit)
        {
            return None;
        }
        let mut digits = [0u8; MAX_NUMBER_DIGITS];
        digits[..body.len()].copy_from_slice(body);
        Some(NumberDigits { digits, len: body.len() as u8 })
    }

    /// The digits, without `+`.
    #[must_use]
    pub fn as_str(&self) -> &str {
        // Constructed only from ASCII digits, so this cannot fail.
        std::str::from_utf8(&self.digits[..usize::from(self.len)]).unwrap_or("")
    }
}

impl fmt::Debug for NumberDigits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NumberDigits(***)")
    }
}

/// What is being routed.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RouteQuery {
    /// The destination's country.
    pub country: Country,
    /// SMS or voice.
    pub channel: Channel,
    /// Why the code is sent (Okta's `requestType`); `None` matches only rules without
    /// `purposes`.
    pub purpose: Option<Purpose>,
    /// The number's digits, for rules with `prefixes`; `None` matches only rules without.
    pub number: Option<NumberDigits>,
    /// SMS segments of the text (the server counts them); voice is priced per call minute.
    pub segments: u32,
    /// A resend: the provider that carried the previous attempt to this number, demoted.
    pub avoid: Option<ProviderId>,
}

impl RouteQuery {
    /// A query by country and channel alone: no purpose, no number, one segment.
    #[must_use]
    pub fn new(country: Country, channel: Channel) -> RouteQuery {
        RouteQuery { country, channel, purpose: None, number: None, segments: 1, avoid: None }
    }

    /// A query for a parsed destination: its country and digits.
    #[must_use]
    pub fn for_destination(destination: &Destination, channel: Channel) -> RouteQuery {
        RouteQuery {
            number: NumberDigits::parse(destination.e164()),
            ..RouteQuery::new(destination.country(), channel)
        }
    }

    /// The same query with a purpose.
    #[must_use]
    pub fn with_purpose(self, purpose: Purpose) -> RouteQuery {
        RouteQuery { purpose: Some(purpose), ..self }
    }

    /// The same query with the text's SMS segment count.
    #[must_use]
    pub fn with_segments(self, segments: u32) -> RouteQuery {
        RouteQuery { segments, ..self }
    }

    /// The same query as a resend that should avoid `provider`.
    #[must_use]
    pub fn with_avoid(self, provider: ProviderId) -> RouteQuery {
        RouteQuery { avoid: Some(provider), ..self }
    }
}
