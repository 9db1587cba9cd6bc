//! Unit-test fixtures shared by the adapters' request and classify tests.

use switchboard_core::OutboundMessage;
use switchboard_core::{Channel, Country, Destination, Locale, MessageText, Passcode};

/// A message with reference `evt-1` to `number` in `country`.
pub(crate) fn outbound(
    number: &str,
    country: &str,
    channel: Channel,
    passcode: &str,
    text: &str,
    locale: Option<&str>,
) -> OutboundMessage {
    OutboundMessage {
        reference: "evt-1".into(),
        destination: Destination::new(number.into(), Country::parse(country).unwrap()),
        channel,
        passcode: Passcode::parse(passcode).unwrap(),
        text: MessageText::new(text.into()),
        locale: locale.and_then(Locale::parse),
    }
}

/// Passcode 918273 to `+14155550100` (US), the usual request-test message.
pub(crate) fn us_message(channel: Channel, text: &str, locale: Option<&str>) -> OutboundMessage {
    outbound("+14155550100", "US", channel, "918273", text, locale)
}

/// Asserts that `result` is a 2xx without a usable id: transient and possibly accepted.
/// `label` (the body under test) names the failing case.
#[track_caller]
pub(crate) fn assert_possibly_accepted<T: std::fmt::Debug>(
    result: Result<T, crate::ProviderError>,
    label: &str,
) {
    let error = result.unwrap_err();
    assert_eq!(
        (error.class, error.certainty),
        (switchboard_core::ErrorClass::Transient, switchboard_core::Certainty::PossiblyAccepted),
        "{label}"
    );
}
