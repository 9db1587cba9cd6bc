//! Okta's event hooks and System Log events, on the wire: the event hook's envelope, the
//! `LogEvent` fields switchboard reads, and what one event says about a code sent by SMS or
//! voice (it was entered, or a wrong code was).
//!
//! Contracts: event hooks <https://developer.okta.com/docs/concepts/event-hooks/>, the System
//! Log API and its `LogEvent` object <https://developer.okta.com/docs/reference/api/system-log/>.
//! The envelope is parsed strictly (a wrong shape is refused, naming the field); each event
//! leniently, field by field: Okta documents `debugContext.debugData` as not a stable contract,
//! so a field of an unexpected type reads as absent and the event is ignored, never the
//! delivery.
//!
//! The two event types read, and where they name the factor:
//! - `user.authentication.auth_via_mfa`: an MFA verification. `outcome.result` `SUCCESS` means
//!   the code was entered; `FAILURE` with `outcome.reason` `INVALID_CREDENTIALS` means a wrong
//!   one was. Identity Engine emits it for every factor, so it is filtered by factor.
//! - `user.mfa.factor.activate`: an enrollment that succeeded (the code was entered).
//!
//! The factor is in `debugContext.debugData.factor` or `.factorType` (seen: `SMS_FACTOR`,
//! `CALL_FACTOR`, `sms`, `call`, in any case), or, for activations, in `outcome.reason`. The
//! user is `actor.id`, the same id as the telephony hook's `data.userProfile.userId`.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Deserializer, Serialize};
use switchboard_core::Channel;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::BodyError;
use super::build::okta_time;

/// `eventType` of every event hook delivery.
const DELIVERY_TYPE: &str = "com.okta.event_hook";
/// An MFA verification.
pub(crate) const MFA_VERIFICATION: &str = "user.authentication.auth_via_mfa";
/// A factor enrollment (activation).
pub(crate) const FACTOR_ACTIVATION: &str = "user.mfa.factor.activate";
/// The header of Okta's one-time verification request.
pub(crate) const VERIFICATION_CHALLENGE: &str = "x-okta-verification-challenge";
/// Longest `uuid` or `actor.id` read (Okta's are 36 and 20 characters).
const MAX_ID_LEN: usize = 128;

/// An event hook delivery: `{eventType, eventId, eventTime, data: {events: [...]}}`. The events
/// stay JSON values here, read one at a time by [`LogEvent::read`].
#[derive(Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
struct Delivery {
    event_type: String,
    event_id: String,
    event_time: String,
    data: DeliveryData,
}

#[derive(Deserialize, Serialize)]
struct DeliveryData {
    events: Vec<serde_json::Value>,
}

/// A delivery that has the envelope's shape.
#[derive(Debug)]
pub(crate) struct EventDelivery {
    /// Okta's `eventId` of the delivery (not of its events).
    pub(crate) id: String,
    pub(crate) events: Vec<serde_json::Value>,
}

impl EventDelivery {
    /// Parses a body: exactly one JSON object of the envelope's shape. The summary never
    /// quotes the input.
    pub(crate) fn parse(body: &[u8]) -> Result<EventDelivery, BodyError> {
        let delivery: Delivery = super::parse_strict(body)?;
        let invalid = |location: &str, reason: &str| BodyError {
            summary: format!("{location}: {reason}"),
            location: Some(location.to_owned()),
        };
        if delivery.event_type != DELIVERY_TYPE {
            return Err(invalid("eventType", "must be com.okta.event_hook"));
        }
        if delivery.event_id.trim().is_empty() || delivery.event_id.len() > MAX_ID_LEN {
            return Err(invalid("eventId", "must be 1 to 128 characters"));
        }
        if OffsetDateTime::parse(&delivery.event_time, &Rfc3339).is_err() {
            return Err(invalid("eventTime", "must be an RFC 3339 timestamp"));
        }
        Ok(EventDelivery { id: delivery.event_id, events: delivery.data.events })
    }
}

/// A page of the System Log API: a JSON array of events.
pub(crate) fn parse_log_page(body: &[u8]) -> Result<Vec<serde_json::Value>, BodyError> {
    super::parse_strict(body)
}

/// The fields of a `LogEvent` switchboard reads; each reads as absent when it is missing or
/// of another type.
#[derive(Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
struct LogEvent {
    #[serde(default, deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    uuid: Option<String>,
    #[serde(default, deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    published: Option<String>,
    #[serde(default, deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    event_type: Option<String>,
    #[serde(default, deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    actor: Option<Actor>,
    #[serde(default, deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    outcome: Option<LogOutcome>,
    #[serde(default, deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    debug_context: Option<DebugContext>,
}

#[derive(Clone, Default, Deserialize, Serialize)]
struct Actor {
    #[serde(default, deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    kind: Option<serde_json::Value>,
}

#[derive(Clone, Default, Deserialize, Serialize)]
struct LogOutcome {
    #[serde(default, deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    result: Option<String>,
    #[serde(default, deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

#[derive(Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
struct DebugContext {
    #[serde(default, deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    debug_data: Option<DebugData>,
}

#[derive(Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
struct DebugData {
    #[serde(default, deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    factor: Option<String>,
    #[serde(default, deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    factor_type: Option<String>,
}

/// `Some` when the value has the expected type, `None` for anything else (never an error).
fn lenient<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let value = serde_json::Value::deserialize(deserializer)?;
    Ok(serde_json::from_value(value).ok())
}

/// What an event says about the code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Entry {
    /// The code was entered.
    Entered,
    /// A wrong code was entered: the user was there.
    WrongCode,
}

/// An event about a code sent by SMS or voice.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct CodeEvent {
    /// Okta's id of the event, the same however often it is delivered.
    pub(crate) uuid: String,
    pub(crate) published: OffsetDateTime,
    /// `actor.id`: Okta's user id. Personal: hash it before keeping it.
    pub(crate) user_id: String,
    pub(crate) channel: Channel,
    pub(crate) entry: Entry,
}

impl std::fmt::Debug for CodeEvent {
    /// Leaves the user id out.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodeEvent")
            .field("uuid", &self.uuid)
            .field("published", &self.published)
            .field("channel", &self.channel)
            .field("entry", &self.entry)
            .finish_non_exhaustive()
    }
}

/// Why an event says nothing about a code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Skip {
    /// Not an object, or `uuid`, `published` or `actor.id` missing or unusable.
    Unreadable,
    /// Another event type.
    OtherType,
    /// Another factor (push, TOTP, email, ...), or none named.
    OtherFactor,
    /// An outcome that says nothing about the code (`DENY`, a failure of another kind).
    OtherOutcome,
}

/// Reads one event of a delivery or a System Log page.
pub(crate) fn read_event(value: serde_json::Value) -> Result<CodeEvent, Skip> {
    let event = LogEvent::deserialize(value).map_err(|_| Skip::Unreadable)?;
    event.classify()
}

impl LogEvent {
    fn classify(self) -> Result<CodeEvent, Skip> {
        let event_type = self.event_type.as_deref().unwrap_or_default();
        let is_activation = event_type == FACTOR_ACTIVATION;
        if event_type != MFA_VERIFICATION && !is_activation {
            return Err(Skip::OtherType);
        }
        let outcome = self.outcome.unwrap_or_default();
        let data = self.debug_context.and_then(|context| context.debug_data).unwrap_or_default();
        let factor = [data.factor.as_deref(), data.factor_type.as_deref()]
            .into_iter()
            .flatten()
            .chain(outcome.reason.as_deref().filter(|_| is_activation))
            .find_map(factor_channel)
            .ok_or(Skip::OtherFactor)?;
        let result = outcome.result.as_deref().unwrap_or_default();
        let entry = if result.eq_ignore_ascii_case("SUCCESS") {
            Entry::Entered
        } else if result.eq_ignore_ascii_case("FAILURE")
            && outcome
                .reason
                .as_deref()
                .is_some_and(|r| r.eq_ignore_ascii_case("INVALID_CREDENTIALS"))
        {
            Entry::WrongCode
        } else {
            return Err(Skip::OtherOutcome);
        };
        let id = |text: Option<String>| {
            text.filter(|id| !id.trim().is_empty() && id.len() <= MAX_ID_LEN)
                .ok_or(Skip::Unreadable)
        };
        let published = self
            .published
            .and_then(|text| OffsetDateTime::parse(&text, &Rfc3339).ok())
            .ok_or(Skip::Unreadable)?;
        Ok(CodeEvent {
            uuid: id(self.uuid)?,
            published,
            user_id: id(self.actor.and_then(|actor| actor.id))?,
            channel: factor,
            entry,
        })
    }
}

/// The channel of a factor name: `SMS_FACTOR`/`sms` and `CALL_FACTOR`/`call`, in any case.
fn factor_channel(name: &str) -> Option<Channel> {
    let name = name.trim();
    if name.eq_ignore_ascii_case("sms_factor") || name.eq_ignore_ascii_case("sms") {
        Some(Channel::Sms)
    } else if name.eq_ignore_ascii_case("call_factor") || name.eq_ignore_ascii_case("call") {
        Some(Channel::Voice)
    } else {
        None
    }
}

/// An Okta System Log event about an SMS or voice code, as Okta writes it, for traffic that is
/// made up (the simulator, the tests). It serialises the struct the server reads.
///
/// Defaults: a fresh `uuid`, `published` now.
#[derive(Clone)]
pub struct OktaEvent {
    event: LogEvent,
}

impl OktaEvent {
    /// `user.authentication.auth_via_mfa` that succeeded: the user entered the code sent on
    /// `channel` (the factor in `debugContext.debugData.factor`, as `SMS_FACTOR`/`CALL_FACTOR`).
    pub fn verified(user_id: impl Into<String>, channel: Channel) -> OktaEvent {
        let factor = match channel {
            Channel::Sms => "SMS_FACTOR",
            Channel::Voice => "CALL_FACTOR",
        };
        let data = DebugData { factor: Some(factor.to_owned()), factor_type: None };
        OktaEvent::new(MFA_VERIFICATION, user_id, data)
    }

    /// `user.authentication.auth_via_mfa` that failed with `INVALID_CREDENTIALS`: a wrong code.
    pub fn wrong_code(user_id: impl Into<String>, channel: Channel) -> OktaEvent {
        let mut event = OktaEvent::verified(user_id, channel);
        event.event.outcome = Some(LogOutcome {
            result: Some("FAILURE".to_owned()),
            reason: Some("INVALID_CREDENTIALS".to_owned()),
        });
        event
    }

    /// `user.mfa.factor.activate`: the user enrolled the phone by entering the code (the
    /// factor in `debugContext.debugData.factorType`, as `sms`/`call`).
    pub fn activated(user_id: impl Into<String>, channel: Channel) -> OktaEvent {
        let factor = match channel {
            Channel::Sms => "sms",
            Channel::Voice => "call",
        };
        let data = DebugData { factor: None, factor_type: Some(factor.to_owned()) };
        OktaEvent::new(FACTOR_ACTIVATION, user_id, data)
    }

    /// A successful `event_type` event of `user_id`'s.
    fn new(event_type: &str, user_id: impl Into<String>, debug_data: DebugData) -> OktaEvent {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let now = OffsetDateTime::now_utc();
        let uuid = format!(
            "{:08x}-{:04x}-11f0-8000-{:012x}",
            now.unix_timestamp() & 0xffff_ffff,
            now.millisecond(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        OktaEvent {
            event: LogEvent {
                uuid: Some(uuid),
                published: Some(okta_time(now)),
                event_type: Some(event_type.to_owned()),
                actor: Some(Actor { id: Some(user_id.into()), kind: Some("User".into()) }),
                outcome: Some(LogOutcome { result: Some("SUCCESS".to_owned()), reason: None }),
                debug_context: Some(DebugContext { debug_data: Some(debug_data) }),
            },
        }
    }

    /// `uuid`: Okta's id of the event, the same on every delivery of it.
    #[must_use]
    pub fn uuid(mut self, uuid: impl Into<String>) -> OktaEvent {
        self.event.uuid = Some(uuid.into());
        self
    }

    /// `published`: when Okta logged the event.
    #[must_use]
    pub fn published(mut self, at: impl Into<OffsetDateTime>) -> OktaEvent {
        self.event.published = Some(okta_time(at.into()));
        self
    }

    /// The event as JSON (a System Log page is an array of these).
    #[must_use]
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.event).expect("an event of strings serialises")
    }

    /// An event hook delivery of `events`, as Okta posts it, with delivery id `event_id`.
    #[must_use]
    pub fn delivery(event_id: &str, events: &[OktaEvent]) -> serde_json::Value {
        let delivery = Delivery {
            event_type: DELIVERY_TYPE.to_owned(),
            event_id: event_id.to_owned(),
            event_time: okta_time(OffsetDateTime::now_utc()),
            data: DeliveryData { events: events.iter().map(OktaEvent::to_json).collect() },
        };
        let mut json = serde_json::to_value(&delivery).expect("a delivery serialises");
        // The rest of Okta's envelope: fields the server does not read.
        json["eventTypeVersion"] = "1.0".into();
        json["cloudEventsVersion"] = "0.1".into();
        json["source"] = "https://example.okta.com/api/v1/eventHooks/whoql0HfiLGPWc8Jx0g3".into();
        json["contentType"] = "application/json".into();
        json
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An `auth_via_mfa` event in the shape of Okta's System Log, trimmed.
    const VERIFIED: &str = r#"{
      "actor": {"id": "00uyxxSknGtK8022w0g3", "type": "User", "alternateId": "a@example.com",
                "displayName": "A User", "detailEntry": null},
      "client": {"ipAddress": "203.0.113.9", "device": "Computer"},
      "authenticationContext": {"externalSessionId": "102abc"},
      "displayMessage": "Authentication of user via MFA",
      "eventType": "user.authentication.auth_via_mfa",
      "outcome": {"result": "SUCCESS", "reason": null},
      "published": "2026-03-02T10:15:31.092Z",
      "securityContext": {},
      "severity": "INFO",
      "debugContext": {"debugData": {"factor": "SMS_FACTOR", "factorIntent": "AUTHENTICATION",
                                     "requestUri": "/idp/idx/challenge/answer", "risk": 3}},
      "legacyEventType": "core.user.factor.attempt_success",
      "transaction": {"type": "WEB", "id": "Y7q0", "detail": {}},
      "uuid": "dc9fd3c0-1620-11f1-8b2e-5bd9c8f2b1a4",
      "version": "0",
      "request": {"ipChain": []},
      "target": [{"id": "sms1abc", "type": "AuthenticatorEnrollment"}]
    }"#;

    fn event(json: &str) -> Result<CodeEvent, Skip> {
        read_event(serde_json::from_str(json).unwrap())
    }

    #[test]
    fn reads_a_verification_and_ignores_what_it_does_not_need() {
        let event = event(VERIFIED).unwrap();
        assert_eq!(event.uuid, "dc9fd3c0-1620-11f1-8b2e-5bd9c8f2b1a4");
        assert_eq!(event.user_id, "00uyxxSknGtK8022w0g3");
        assert_eq!(event.channel, Channel::Sms);
        assert_eq!(event.entry, Entry::Entered);
        assert_eq!(event.published.unix_timestamp(), 1_772_446_531);
        assert!(!format!("{event:?}").contains("00uyxx"), "Debug leaves the user out");
    }

    #[test]
    fn the_factor_is_found_wherever_okta_puts_it_in_any_case() {
        let cases = [
            (r#""factor": "SMS_FACTOR""#, Channel::Sms),
            (r#""factor": "call_factor""#, Channel::Voice),
            (r#""factorType": "sms""#, Channel::Sms),
            (r#""factorType": "CALL""#, Channel::Voice),
            (r#""factor": 7, "factorType": "Call""#, Channel::Voice),
        ];
        for (fields, channel) in cases {
            let json = VERIFIED.replace(r#""factor": "SMS_FACTOR""#, fields);
            assert_eq!(event(&json).unwrap().channel, channel, "{fields}");
        }
        for other in [r#""factor": "OKTA_VERIFY_PUSH""#, r#""factor": "EMAIL_FACTOR""#, r#""x": 1"#]
        {
            let json = VERIFIED.replace(r#""factor": "SMS_FACTOR""#, other);
            assert_eq!(event(&json).unwrap_err(), Skip::OtherFactor, "{other}");
        }
        // Activations may name the factor in outcome.reason; verifications may not.
        let activation = VERIFIED
            .replace(MFA_VERIFICATION, FACTOR_ACTIVATION)
            .replace(r#""factor": "SMS_FACTOR""#, r#""x": 1"#)
            .replace(r#""reason": null"#, r#""reason": "CALL_FACTOR""#);
        assert_eq!(event(&activation).unwrap().channel, Channel::Voice);
        let verification = activation.replace(FACTOR_ACTIVATION, MFA_VERIFICATION);
        assert_eq!(event(&verification).unwrap_err(), Skip::OtherFactor);
    }

    #[test]
    fn outcomes_and_types_that_say_nothing_are_skipped() {
        let wrong = VERIFIED
            .replace(r#""result": "SUCCESS""#, r#""result": "FAILURE""#)
            .replace(r#""reason": null"#, r#""reason": "INVALID_CREDENTIALS""#);
        assert_eq!(event(&wrong).unwrap().entry, Entry::WrongCode);
        let other_failure = wrong.replace("INVALID_CREDENTIALS", "VERIFICATION_ERROR");
        assert_eq!(event(&other_failure).unwrap_err(), Skip::OtherOutcome);
        let denied = VERIFIED.replace(r#""result": "SUCCESS""#, r#""result": "DENY""#);
        assert_eq!(event(&denied).unwrap_err(), Skip::OtherOutcome);
        let other_type = VERIFIED.replace(MFA_VERIFICATION, "user.session.start");
        assert_eq!(event(&other_type).unwrap_err(), Skip::OtherType);
    }

    #[test]
    fn an_unusable_field_skips_the_event_never_the_delivery() {
        let cases = [
            VERIFIED.replace(r#""uuid": "dc9fd3c0-1620-11f1-8b2e-5bd9c8f2b1a4""#, r#""uuid": 5"#),
            VERIFIED.replace(
                r#""published": "2026-03-02T10:15:31.092Z""#,
                r#""published": "yesterday""#,
            ),
            VERIFIED.replace(r#""id": "00uyxxSknGtK8022w0g3""#, r#""id": """#),
            VERIFIED.replace(
                r#""id": "00uyxxSknGtK8022w0g3""#,
                &format!(r#""id": "{}""#, "x".repeat(129)),
            ),
            VERIFIED.replace(r#""actor": {"#, r#""actor": [1], "x": {"#),
        ];
        for json in cases {
            assert_eq!(event(&json).unwrap_err(), Skip::Unreadable, "{json}");
        }
        assert_eq!(read_event(serde_json::json!("text")).unwrap_err(), Skip::Unreadable);
        assert_eq!(
            read_event(serde_json::json!({"debugContext": "x"})).unwrap_err(),
            Skip::OtherType
        );
    }

    #[test]
    fn the_envelope_is_strict_and_names_the_field() {
        let good = OktaEvent::delivery("evt-1", &[OktaEvent::verified("00u1", Channel::Sms)]);
        let delivery = EventDelivery::parse(good.to_string().as_bytes()).unwrap();
        assert_eq!((delivery.id.as_str(), delivery.events.len()), ("evt-1", 1));
        let bend = |f: Bend| {
            let mut json = good.clone();
            f(&mut json);
            EventDelivery::parse(json.to_string().as_bytes()).unwrap_err()
        };
        type Bend = fn(&mut serde_json::Value);
        let cases: [(Bend, &str); 6] = [
            (|j| j["eventType"] = "com.okta.telephony.provider".into(), "eventType"),
            (|j| j["eventId"] = "".into(), "eventId"),
            (|j| j["eventTime"] = "00u-secret-value".into(), "eventTime"),
            (|j| j["data"]["events"] = "00u-secret-value".into(), "data.events"),
            (|j| _ = j["data"].as_object_mut().unwrap().remove("events"), "data"),
            (|j| _ = j.as_object_mut().unwrap().remove("eventId"), "."),
        ];
        for (bend_it, location) in cases {
            let error = bend(bend_it);
            let at = error.location.as_deref().unwrap_or(".");
            assert_eq!(at, location, "{}", error.summary);
            assert!(!error.summary.contains("00u-secret-value"), "{}", error.summary);
        }
        let error = EventDelivery::parse(b"{\"eventType\": ").unwrap_err();
        assert!(error.summary.contains("ends too early"), "{}", error.summary);
        let error = EventDelivery::parse(format!("{good} {{}}").as_bytes()).unwrap_err();
        assert!(error.summary.contains("text after the JSON"), "{}", error.summary);
    }

    #[test]
    fn the_builder_writes_what_the_server_reads() {
        let at = time::macros::datetime!(2026-03-02 10:15:31.092 UTC);
        for (event, channel, entry) in [
            (OktaEvent::verified("00u1", Channel::Sms), Channel::Sms, Entry::Entered),
            (OktaEvent::verified("00u1", Channel::Voice), Channel::Voice, Entry::Entered),
            (OktaEvent::wrong_code("00u1", Channel::Sms), Channel::Sms, Entry::WrongCode),
            (OktaEvent::activated("00u1", Channel::Voice), Channel::Voice, Entry::Entered),
        ] {
            let read = read_event(event.uuid("u-1").published(at).to_json()).unwrap();
            assert_eq!(
                (read.uuid.as_str(), read.user_id.as_str(), read.channel, read.entry),
                ("u-1", "00u1", channel, entry)
            );
            assert_eq!(read.published, at);
        }
        let (a, b) =
            (OktaEvent::verified("u", Channel::Sms), OktaEvent::verified("u", Channel::Sms));
        assert_ne!(a.to_json()["uuid"], b.to_json()["uuid"], "fresh uuids");
    }
}
