//! Okta's request, written: [`OktaRequest`] builds the body Okta would send, for the traffic
//! that is made up (the demo, the simulator, the chaos harness, the tests), by serialising the
//! very [`HookRequest`] the hook parses.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use switchboard_core::{Channel, Purpose};
use time::{OffsetDateTime, UtcOffset};

use super::{
    ContextRequest, HookContext, HookData, HookRequest, MessageProfile, SecretField, UserProfile,
    request_type,
};

/// `eventType` of every telephony hook request.
const EVENT_TYPE: &str = "com.okta.telephony.provider";

/// An Okta telephony hook request, as Okta sends it, for traffic that is made up: the demo,
/// the simulator, the chaos harness and the tests. It serialises [`HookRequest`], the struct
/// the hook parses, so the two cannot drift apart.
///
/// Defaults: a fresh `eventId`, `eventTime` now, `requestType` MFA verification,
/// `msgTemplate` `Your code is {code}` (on both channels), locale `EN-US`, no `otpExpires`
/// (the server's default lifetime applies), and no user id or IP address.
pub struct OktaRequest {
    request: HookRequest,
}

impl OktaRequest {
    /// A request for `code` by text message to `phone` (sent as given: E.164 or not).
    pub fn sms(phone: impl Into<String>, code: impl Into<String>) -> OktaRequest {
        OktaRequest::new(Channel::Sms, phone, code)
    }

    /// A request for `code` by voice call (`deliveryChannel` `CALL`).
    pub fn voice(phone: impl Into<String>, code: impl Into<String>) -> OktaRequest {
        OktaRequest::new(Channel::Voice, phone, code)
    }

    /// A request for `code` on `channel`.
    pub fn new(channel: Channel, phone: impl Into<String>, code: impl Into<String>) -> OktaRequest {
        static NEXT_EVENT: AtomicU64 = AtomicU64::new(0);
        let now = OffsetDateTime::now_utc();
        let code = code.into();
        let delivery_channel = match channel {
            Channel::Sms => "SMS",
            Channel::Voice => "CALL",
        };
        OktaRequest {
            request: HookRequest {
                event_id: format!(
                    "evt-{:x}-{}",
                    now.unix_timestamp_nanos(),
                    NEXT_EVENT.fetch_add(1, Ordering::Relaxed)
                ),
                event_time: Some(okta_time(now)),
                event_type: Some(EVENT_TYPE.to_owned()),
                request_type: request_type(Purpose::Verification).map(str::to_owned),
                data: HookData {
                    context: None,
                    user_profile: None,
                    message_profile: MessageProfile {
                        msg_template: Some(SecretField(format!("Your code is {code}"))),
                        phone_number: phone.into(),
                        otp_expires: None,
                        delivery_channel: delivery_channel.to_owned(),
                        otp_code: SecretField(code),
                        locale: Some("EN-US".to_owned()),
                    },
                },
            },
        }
    }

    /// `eventId`: Okta's id of this request, the same on its retries.
    #[must_use]
    pub fn event_id(mut self, event_id: impl Into<String>) -> OktaRequest {
        self.request.event_id = event_id.into();
        self
    }

    /// `eventTime`, when Okta sent the request.
    #[must_use]
    pub fn event_time(mut self, at: impl Into<OffsetDateTime>) -> OktaRequest {
        self.request.event_time = Some(okta_time(at.into()));
        self
    }

    /// `otpExpires`: when the code stops working.
    #[must_use]
    pub fn expires(mut self, at: impl Into<OffsetDateTime>) -> OktaRequest {
        self.request.data.message_profile.otp_expires = Some(okta_time(at.into()));
        self
    }

    /// `otpExpires` `life` from now.
    #[must_use]
    pub fn expires_in(self, life: Duration) -> OktaRequest {
        self.expires(OffsetDateTime::now_utc() + life)
    }

    /// `requestType` for `purpose`; [`Purpose::Other`] leaves it out.
    #[must_use]
    pub fn purpose(mut self, purpose: Purpose) -> OktaRequest {
        self.request.request_type = request_type(purpose).map(str::to_owned);
        self
    }

    /// `locale`, as Okta writes it (`EN-US`) or as a BCP 47 tag.
    #[must_use]
    pub fn locale(mut self, locale: impl Into<String>) -> OktaRequest {
        self.request.data.message_profile.locale = Some(locale.into());
        self
    }

    /// `msgTemplate`: Okta's message text, with the code already in it.
    #[must_use]
    pub fn template(mut self, text: impl Into<String>) -> OktaRequest {
        self.request.data.message_profile.msg_template = Some(SecretField(text.into()));
        self
    }

    /// No `msgTemplate` (Okta sends none for voice; the server then writes its own text).
    #[must_use]
    pub fn without_template(mut self) -> OktaRequest {
        self.request.data.message_profile.msg_template = None;
        self
    }

    /// `deliveryChannel` spelled as given (`voice call` is the Admin Console preview's).
    #[must_use]
    pub fn delivery_channel(mut self, text: impl Into<String>) -> OktaRequest {
        self.request.data.message_profile.delivery_channel = text.into();
        self
    }

    /// `data.userProfile.userId`.
    #[must_use]
    pub fn user_id(mut self, user_id: impl Into<String>) -> OktaRequest {
        self.request.data.user_profile = Some(UserProfile { user_id: Some(user_id.into()) });
        self
    }

    /// `data.context.request.ipAddress`: the end user's address, as text.
    #[must_use]
    pub fn ip_address(mut self, address: impl Into<String>) -> OktaRequest {
        let request = ContextRequest { ip_address: Some(address.into()) };
        self.request.data.context = Some(HookContext { request: Some(request) });
        self
    }

    /// The request as JSON, for a client's `.json(..)` or a test that bends its shape.
    #[must_use]
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.request).expect("a request of strings serialises")
    }
}

/// The body text (`to_string()`).
impl std::fmt::Display for OktaRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = serde_json::to_string(&self.request).map_err(|_| std::fmt::Error)?;
        f.write_str(&text)
    }
}

/// A time as Okta writes it: UTC, milliseconds, `2022-01-28T21:48:34.321Z`.
pub(crate) fn okta_time(at: OffsetDateTime) -> String {
    let at = at.to_offset(UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.millisecond()
    )
}
