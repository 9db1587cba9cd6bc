//! Turns Infobip's answers into acceptance or a classified [`ProviderError`] (delivery reports
//! are `receipt.rs`).
//!
//! A send answers HTTP 200 with a status per message; the status *group* decides: PENDING,
//! ACCEPTED and DELIVERED with a `messageId` are acceptance, REJECTED, UNDELIVERABLE and EXPIRED
//! are refusals even under HTTP 200 (research F15). Within REJECTED, the status name picks the
//! class; Infobip's full list of REJECTED names is not in the spec (research gap 6), so unknown
//! names are transient rather than a number-level verdict.
//!
//! Error answers: SMS v3 sends `{"errorCode":"E400",...}`, voice the older
//! `{"requestError":{"serviceException":{"messageId":"BAD_REQUEST",...}}}`. The code is kept,
//! the class comes from the HTTP status. Bodies are never logged or copied.

use std::time::SystemTime;

use serde::Deserialize;
use switchboard_core::{Certainty, ErrorClass};

use super::KIND;
use crate::http::RawAnswer;
use crate::{Accepted, ProviderError};

/// `{groupId, groupName, id, name, description}` of a message status.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Status {
    pub(crate) group_name: Option<String>,
    pub(crate) name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SentMessage {
    message_id: Option<String>,
    status: Option<Status>,
}

#[derive(Debug, Deserialize)]
struct SendResponse {
    #[serde(default)]
    messages: Vec<SentMessage>,
}

/// Classifies the answer to `/sms/3/messages` or `/tts/3/advanced`.
pub(crate) fn classify_send(
    answer: &RawAnswer,
    now: SystemTime,
) -> Result<Accepted, ProviderError> {
    if !(200..300).contains(&answer.status) {
        return Err(refusal(answer, now));
    }
    let first = serde_json::from_slice::<SendResponse>(&answer.body)
        .ok()
        .and_then(|response| response.messages.into_iter().next());
    let Some(SentMessage { message_id, status }) = first else {
        return Err(crate::refusal::without(KIND, answer, "message"));
    };
    let group = status.as_ref().and_then(|s| s.group_name.as_deref()).unwrap_or("");
    let name = status.as_ref().and_then(|s| s.name.as_deref()).unwrap_or("");
    if matches!(group, "REJECTED" | "UNDELIVERABLE" | "EXPIRED") {
        let class = class_for_status(group, name);
        return Err(ProviderError {
            provider_kind: KIND,
            class,
            certainty: Certainty::NotSent,
            retry_after: None,
            provider_code: Some(name.to_owned()).filter(|n| is_code(n)),
            detail: format!("http {}, status {}", answer.status, loggable(name)),
        });
    }
    crate::refusal::accepted(
        KIND,
        answer,
        message_id.filter(|id| (1..=200).contains(&id.len())),
        "messageId",
    )
}

/// Classifies the probe's answer (`GET /sms/3/logs?limit=1`).
pub(crate) fn classify_probe(answer: &RawAnswer, now: SystemTime) -> Result<(), ProviderError> {
    if (200..300).contains(&answer.status) { Ok(()) } else { Err(refusal(answer, now)) }
}

fn refusal(answer: &RawAnswer, now: SystemTime) -> ProviderError {
    let class = match answer.status {
        // The request we built is malformed (E400, violations): our bug or our config.
        400 => ErrorClass::AuthConfig,
        status => crate::refusal::class_for_status(status),
    };
    crate::refusal::refusal(KIND, answer, class, error_code(&answer.body), now)
}

/// `errorCode` (v3) or `requestError.serviceException.messageId` (voice, older APIs), when it is
/// a short code (never free text).
fn error_code(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let code = value
        .get("errorCode")
        .or_else(|| value.pointer("/requestError/serviceException/messageId"))?
        .as_str()?;
    is_code(code).then(|| code.to_owned())
}

/// Upper-case letters, digits and `_`, at most 64: a code, safe to log.
pub(super) fn is_code(text: &str) -> bool {
    (1..=64).contains(&text.len())
        && text.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

fn loggable(name: &str) -> &str {
    if is_code(name) { name } else { "unknown" }
}

/// The class of a final status that is not a delivery. Status names are Infobip's
/// (research section 7; the REJECTED names beyond those the research lists are unverified).
// Per-provider table, alike in shape across adapters on purpose: the codes are this provider's.
pub(super) fn class_for_status(group: &str, name: &str) -> ErrorClass {
    match (group, name) {
        (
            "REJECTED",
            "REJECTED_DESTINATION"
            | "REJECTED_PREFIX_MISSING"
            | "REJECTED_INVALID_DESTINATION"
            | "REJECTED_DESTINATION_NOT_REGISTERED"
            | "MISSING_TO",
        ) => ErrorClass::InvalidNumber,
        ("REJECTED", "REJECTED_DND") => ErrorClass::Blocked,
        ("REJECTED", "REJECTED_NOT_ENOUGH_CREDITS" | "REJECTED_PREPAID_PACKAGE_EXPIRED") => {
            ErrorClass::Funds
        }
        // Network not enabled for the account, sender not allowed, no route: another provider
        // may deliver.
        (
            "REJECTED",
            "REJECTED_NETWORK"
            | "REJECTED_SENDER"
            | "REJECTED_SOURCE"
            | "REJECTED_ROUTE_NOT_AVAILABLE",
        ) => ErrorClass::AuthConfig,
        ("REJECTED", "REJECTED_FLOODING_FILTER") => ErrorClass::RateLimited,
        _ => ErrorClass::Transient,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str) -> RawAnswer {
        RawAnswer::new(status, body)
    }

    fn send(status: u16, body: &str) -> Result<Accepted, ProviderError> {
        classify_send(&answer(status, body), SystemTime::UNIX_EPOCH)
    }

    fn sent(group_id: u32, group: &str, id: u32, name: &str) -> String {
        format!(
            r#"{{"bulkId":"2034072219640523072","messages":[{{"messageId":"2250be2d4219-3af1-78856-aabe-1362af1edfd2","status":{{"groupId":{group_id},"groupName":"{group}","id":{id},"name":"{name}","description":"x"}},"destination":"41793026727","details":{{"messageCount":1}}}}]}}"#
        )
    }

    #[test]
    fn pending_with_a_message_id_is_acceptance() {
        let accepted = send(200, &sent(1, "PENDING", 26, "PENDING_ACCEPTED")).unwrap();
        assert_eq!(accepted.message_id, "2250be2d4219-3af1-78856-aabe-1362af1edfd2");
        for body in
            ["", "{}", r#"{"messages":[]}"#, r#"{"messages":[{"status":{"groupName":"PENDING"}}]}"#]
        {
            crate::testing::assert_possibly_accepted(send(200, body), body);
        }
    }

    #[test]
    fn classifies_infobip_answers() {
        use ErrorClass::*;
        let cases: &[(u16, String, ErrorClass, Certainty)] = &[
            (200, sent(5, "REJECTED", 14, "REJECTED_DESTINATION"), InvalidNumber, Certainty::NotSent),
            (200, sent(5, "REJECTED", 8, "REJECTED_PREFIX_MISSING"), InvalidNumber, Certainty::NotSent),
            (200, sent(5, "REJECTED", 10, "REJECTED_DND"), Blocked, Certainty::NotSent),
            (200, sent(5, "REJECTED", 12, "REJECTED_NOT_ENOUGH_CREDITS"), Funds, Certainty::NotSent),
            (200, sent(5, "REJECTED", 6, "REJECTED_NETWORK"), AuthConfig, Certainty::NotSent),
            (200, sent(5, "REJECTED", 13, "REJECTED_SENDER"), AuthConfig, Certainty::NotSent),
            (200, sent(5, "REJECTED", 99, "REJECTED_SOMETHING_NEW"), Transient, Certainty::NotSent),
            (200, sent(4, "EXPIRED", 15, "EXPIRED_EXPIRED"), Transient, Certainty::NotSent),
            (400, r#"{"errorCode":"E400","description":"Request cannot be processed.","action":"x","violations":[{"property":"messages[0].destinations[0].to","violation":"+41793026727"}],"resources":[]}"#.into(), AuthConfig, Certainty::NotSent),
            (401, r#"{"errorCode":"E401","description":"x","action":"x","violations":[],"resources":[]}"#.into(), AuthConfig, Certainty::NotSent),
            (401, r#"{"requestError":{"serviceException":{"messageId":"UNAUTHORIZED","text":"Unauthorized"}}}"#.into(), AuthConfig, Certainty::NotSent),
            (403, String::new(), AuthConfig, Certainty::NotSent),
            (429, r#"{"errorCode":"E429"}"#.into(), RateLimited, Certainty::NotSent),
            (500, r#"{"errorCode":"E500"}"#.into(), Transient, Certainty::NotSent),
            (502, "<html>bad gateway</html>".into(), Transient, Certainty::NotSent),
            (504, String::new(), Timeout, Certainty::PossiblyAccepted),
        ];
        for (status, body, class, certainty) in cases {
            let error = send(*status, body).unwrap_err();
            assert_eq!((error.class, error.certainty), (*class, *certainty), "{status} {body}");
            assert!(!error.to_string().contains("41793026727"), "{error}");
        }
        let error =
            send(401, r#"{"requestError":{"serviceException":{"messageId":"UNAUTHORIZED"}}}"#)
                .unwrap_err();
        assert_eq!(error.provider_code.as_deref(), Some("UNAUTHORIZED"));
        let error = send(200, &sent(5, "REJECTED", 14, "REJECTED_DESTINATION")).unwrap_err();
        assert_eq!(
            error.to_string(),
            "infobip invalid_number: http 200, status REJECTED_DESTINATION"
        );
        let error = send(400, r#"{"errorCode":"free text with +41793026727"}"#).unwrap_err();
        assert_eq!(error.provider_code, None);
    }
}
