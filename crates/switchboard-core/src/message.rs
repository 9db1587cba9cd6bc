//! [`OutboundMessage`]: everything an adapter needs to deliver one passcode through one
//! provider, the one place a destination and the secrets that travel with it meet. Not a wire
//! type: each adapter builds its own request from it.

use crate::destination::Destination;
use crate::domain::{Channel, Locale, MessageText, Passcode};

/// Everything an adapter needs to deliver one passcode through one provider.
#[derive(Clone, Debug)]
pub struct OutboundMessage {
    /// Correlates the attempt with the hook request (Okta's `eventId`); safe to log.
    pub reference: String,
    /// Where to send.
    pub destination: Destination,
    /// SMS or voice.
    pub channel: Channel,
    /// The code itself (voice reads it digit by digit).
    pub passcode: Passcode,
    /// The SMS body (Okta's template with the code in it); unused for voice.
    pub text: MessageText,
    /// The user's locale, when Okta sent a usable one.
    pub locale: Option<Locale>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Country;

    #[test]
    fn secrets_never_print() {
        let passcode = Passcode::parse("918273").unwrap();
        let text = MessageText::new("Your code is 918273".into());
        let destination = Destination::new("+14155550100".into(), Country::parse("us").unwrap());
        for printed in [
            format!("{passcode:?} {passcode}"),
            format!("{text:?} {text}"),
            format!("{destination:?}"),
        ] {
            assert!(!printed.contains("918273"), "{printed}");
            assert!(!printed.contains("4155550100"), "{printed}");
        }
    }
}
