//! Turns AWS's answer into acceptance or a classified [`ProviderError`].
//!
//! Acceptance is a 2xx with a `MessageId`; a 2xx without one is "possibly accepted". Errors are
//! read from `__type` (namespaced `com.amazonaws.pinpointsmsvoicev2#ValidationException`, or
//! short, as the SDKs accept both; the `x-amzn-ErrorType` header as a fallback) and `Reason`
//! (research notes section 4 and the model's reason enums). HTTP statuses are not in the model;
//! they only decide when there is no `__type` at all (a proxy's page).
//!
//! Choices where the research table is silent or ambiguous:
//! - `ValidationException` INVALID_PARAMETER/CANNOT_PARSE is read as an invalid number only when
//!   its `Fields` name `DestinationPhoneNumber`; otherwise it is a request we built wrong
//!   (`AuthConfig`), which another provider may not share.
//! - `PRICE_OVER_THRESHOLD` (the destination costs more than `MaxPrice`) is `Funds`: our cost
//!   cap, and a cheaper provider may deliver.
//! - Protect-configuration blocks (the account's own country or number rules) are `Blocked`.
//! - An unknown reason or error type is `Transient`, never a verdict on the number.
//!
//! Bodies are parsed, never logged or copied: `Message` may quote the phone number.

use std::time::SystemTime;

use serde::Deserialize;
use switchboard_core::ErrorClass;

use super::KIND;
use crate::http::RawAnswer;
use crate::refusal::class_for_status;
use crate::{Accepted, ProviderError};

/// Classifies the answer to `SendTextMessage` or `SendVoiceMessage`.
pub(crate) fn classify_send(
    answer: &RawAnswer,
    now: SystemTime,
) -> Result<Accepted, ProviderError> {
    if !answer.is_success() {
        return Err(refusal(answer, now));
    }
    #[derive(Deserialize)]
    struct Sent {
        #[serde(rename = "MessageId")]
        message_id: Option<String>,
    }
    let message_id =
        serde_json::from_slice::<Sent>(&answer.body).ok().and_then(|sent| sent.message_id);
    crate::refusal::accepted(KIND, answer, message_id.filter(|id| is_message_id(id)), "message id")
}

/// Classifies the answer to the probe (`DescribeAccountAttributes`).
pub(crate) fn classify_probe(answer: &RawAnswer, now: SystemTime) -> Result<(), ProviderError> {
    if answer.is_success() { Ok(()) } else { Err(refusal(answer, now)) }
}

/// A message id is opaque; bound it so a garbled body is not taken for one.
fn is_message_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(rename = "__type")]
    error_type: Option<String>,
    #[serde(rename = "Reason")]
    reason: Option<String>,
    #[serde(rename = "Fields", default)]
    fields: Vec<Field>,
}

#[derive(Deserialize)]
struct Field {
    #[serde(rename = "Name")]
    name: Option<String>,
}

fn refusal(answer: &RawAnswer, now: SystemTime) -> ProviderError {
    let parsed = serde_json::from_slice::<ErrorBody>(&answer.body).ok();
    let error_type = parsed
        .as_ref()
        .and_then(|body| body.error_type.as_deref())
        .or(answer.amzn_error_type.as_deref())
        .map(short_type)
        .filter(|name| is_word(name));
    let reason =
        parsed.as_ref().and_then(|body| body.reason.as_deref()).filter(|reason| is_word(reason));
    let names_destination = parsed.as_ref().is_some_and(|body| {
        body.fields.iter().any(|field| field.name.as_deref() == Some("DestinationPhoneNumber"))
    });
    let class = match error_type {
        Some(error_type) => class_for(error_type, reason, names_destination)
            .unwrap_or_else(|| class_for_status(answer.status)),
        None => class_for_status(answer.status),
    };
    let provider_code = error_type.map(|error_type| match reason {
        Some(reason) => format!("{error_type}:{reason}"),
        None => error_type.to_owned(),
    });
    let detail = match &provider_code {
        Some(code) => format!("http {}, {code}", answer.status),
        None => format!("http {}", answer.status),
    };
    // AWS's detail names the type and reason without the word `code`.
    ProviderError { detail, ..crate::refusal::refusal(KIND, answer, class, provider_code, now) }
}

/// `com.amazonaws.pinpointsmsvoicev2#ThrottlingException` or
/// `ThrottlingException:http://internal.amazon.com/...` to `ThrottlingException`.
fn short_type(error_type: &str) -> &str {
    let name = error_type.rsplit('#').next().unwrap_or(error_type);
    name.split(':').next().unwrap_or(name).trim()
}

/// Only identifier-like words are kept for logs and `provider_code`.
fn is_word(text: &str) -> bool {
    (1..=64).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn class_for(
    error_type: &str,
    reason: Option<&str>,
    names_destination: bool,
) -> Option<ErrorClass> {
    use ErrorClass::*;
    let class = match (error_type, reason.unwrap_or("")) {
        ("ValidationException", "INVALID_PARAMETER" | "CANNOT_PARSE") if names_destination => {
            InvalidNumber
        }
        ("ValidationException", "DESTINATION_COUNTRY_BLOCKED") => Blocked,
        ("ValidationException", "PRICE_OVER_THRESHOLD") => Funds,
        (
            "ValidationException",
            "INVALID_PARAMETER"
            | "CANNOT_PARSE"
            | "MISSING_PARAMETER"
            | "FIELD_VALIDATION_FAILED"
            | "PARAMETERS_CANNOT_BE_USED_TOGETHER"
            | "INVALID_ARN"
            | "INVALID_REQUEST"
            | "MAXIMUM_SIZE_EXCEEDED"
            | "UNKNOWN_OPERATION"
            | "UNSPECIFIED_PARAMETER_NOT_SUPPORTED"
            | "COUNTRY_CODE_MISMATCH"
            | "COUNTRY_NOT_ENABLED"
            | "CHANNEL_NOT_ENABLED"
            | "INTERNATIONAL_SENDING_NOT_SUPPORTED"
            | "INVALID_IDENTITY_FOR_DESTINATION_COUNTRY"
            | "SENDER_ID_NOT_REGISTERED"
            | "SENDER_ID_NOT_SUPPORTED"
            | "SENDER_ID_REQUIRES_REGISTRATION"
            | "VOICE_CAPABILITY_NOT_AVAILABLE"
            | "RESOURCE_NOT_ACCESSIBLE",
        ) => AuthConfig,
        ("ConflictException", "DESTINATION_PHONE_NUMBER_OPTED_OUT") => Blocked,
        (
            "ConflictException",
            "DESTINATION_COUNTRY_BLOCKED_BY_PROTECT_CONFIGURATION"
            | "DESTINATION_PHONE_NUMBER_BLOCKED_BY_PROTECT_NUMBER_OVERRIDE",
        ) => Blocked,
        (
            "ConflictException",
            // Sandbox accounts reach verified numbers only; the rest are identities or
            // configuration that do not fit this send.
            "DESTINATION_PHONE_NUMBER_NOT_VERIFIED"
            | "NO_ORIGINATION_IDENTITIES_FOUND"
            | "MESSAGE_TYPE_MISMATCH"
            | "NUMBER_CAPABILITIES_MISMATCH"
            | "KEYWORD_MISMATCH"
            | "RESOURCE_NOT_ACTIVE"
            | "TWO_WAY_CONFIG_MISMATCH"
            | "OPT_OUT_LIST_MISMATCH",
        ) => AuthConfig,
        ("ServiceQuotaExceededException", reason) if reason.starts_with("MONTHLY_SPEND_LIMIT") => {
            Funds
        }
        ("ServiceQuotaExceededException", reason) if reason.starts_with("DAILY_") => RateLimited,
        ("ServiceQuotaExceededException", _) => AuthConfig,
        ("ThrottlingException" | "TooManyRequestsException" | "Throttling", _) => RateLimited,
        ("AccessDeniedException" | "ResourceNotFoundException", _) => AuthConfig,
        // Authentication failures from AWS's front end (not in the service model).
        (
            "UnrecognizedClientException"
            | "InvalidSignatureException"
            | "IncompleteSignatureException"
            | "MissingAuthenticationTokenException"
            | "ExpiredTokenException"
            | "InvalidClientTokenId"
            | "SignatureDoesNotMatch"
            | "UnknownOperationException"
            | "SerializationException",
            _,
        ) => AuthConfig,
        ("InternalServerException" | "ServiceUnavailableException" | "InternalFailure", _) => {
            Transient
        }
        _ => return None,
    };
    Some(class)
}

#[cfg(test)]
mod tests {
    use switchboard_core::Certainty;

    use super::*;

    fn send(status: u16, body: &str) -> Result<Accepted, ProviderError> {
        classify_send(&RawAnswer::new(status, body), SystemTime::UNIX_EPOCH)
    }

    fn aws_error(error_type: &str, reason: Option<&str>) -> String {
        let reason = reason.map(|r| format!(r#","Reason":"{r}""#)).unwrap_or_default();
        format!(
            r#"{{"__type":"com.amazonaws.pinpointsmsvoicev2#{error_type}","Message":"+14155550100 is not allowed"{reason}}}"#
        )
    }

    #[test]
    fn only_a_message_id_is_acceptance() {
        assert_eq!(
            send(200, r#"{"MessageId":"a1b2c3d4-5678-90ab-cdef-EXAMPLE11111"}"#),
            Ok(Accepted { message_id: "a1b2c3d4-5678-90ab-cdef-EXAMPLE11111".into() })
        );
        for body in ["", "{}", r#"{"MessageId":""}"#, r#"{"MessageId":"<html>"}"#, "<html/>"] {
            crate::testing::assert_possibly_accepted(send(200, body), body);
        }
    }

    #[test]
    fn classifies_the_research_table() {
        use ErrorClass::*;
        let destination_field = r#"{"__type":"ValidationException","Reason":"INVALID_PARAMETER","Fields":[{"Name":"DestinationPhoneNumber","Message":"bad"}]}"#;
        let cases: Vec<(u16, String, ErrorClass, Certainty)> = vec![
            (400, destination_field.to_owned(), InvalidNumber, Certainty::NotSent),
            (400, aws_error("ValidationException", Some("INVALID_PARAMETER")), AuthConfig, Certainty::NotSent),
            (400, aws_error("ValidationException", Some("DESTINATION_COUNTRY_BLOCKED")), Blocked, Certainty::NotSent),
            (400, aws_error("ValidationException", Some("SENDER_ID_NOT_REGISTERED")), AuthConfig, Certainty::NotSent),
            (400, aws_error("ValidationException", Some("COUNTRY_NOT_ENABLED")), AuthConfig, Certainty::NotSent),
            (400, aws_error("ValidationException", Some("PRICE_OVER_THRESHOLD")), Funds, Certainty::NotSent),
            (400, aws_error("ValidationException", Some("SOMETHING_NEW")), Transient, Certainty::NotSent),
            (400, aws_error("ConflictException", Some("DESTINATION_PHONE_NUMBER_OPTED_OUT")), Blocked, Certainty::NotSent),
            (400, aws_error("ConflictException", Some("DESTINATION_COUNTRY_BLOCKED_BY_PROTECT_CONFIGURATION")), Blocked, Certainty::NotSent),
            (400, aws_error("ConflictException", Some("DESTINATION_PHONE_NUMBER_NOT_VERIFIED")), AuthConfig, Certainty::NotSent),
            (400, aws_error("ConflictException", Some("NO_ORIGINATION_IDENTITIES_FOUND")), AuthConfig, Certainty::NotSent),
            (400, aws_error("ServiceQuotaExceededException", Some("MONTHLY_SPEND_LIMIT_REACHED_FOR_TEXT")), Funds, Certainty::NotSent),
            (400, aws_error("ServiceQuotaExceededException", Some("MONTHLY_SPEND_LIMIT_REACHED_FOR_VOICE")), Funds, Certainty::NotSent),
            (400, aws_error("ServiceQuotaExceededException", Some("DAILY_DESTINATION_CALL_LIMIT")), RateLimited, Certainty::NotSent),
            (400, aws_error("ThrottlingException", None), RateLimited, Certainty::NotSent),
            (400, aws_error("AccessDeniedException", Some("ACCOUNT_DISABLED")), AuthConfig, Certainty::NotSent),
            (400, aws_error("ResourceNotFoundException", None), AuthConfig, Certainty::NotSent),
            (403, aws_error("InvalidSignatureException", None), AuthConfig, Certainty::NotSent),
            (400, r#"{"__type":"com.amazon.coral.service#UnrecognizedClientException","message":"x"}"#.to_owned(), AuthConfig, Certainty::NotSent),
            (500, aws_error("InternalServerException", None), Transient, Certainty::NotSent),
            (400, r#"{"__type":"ThrottlingException:http://internal.amazon.com/coral/"}"#.to_owned(), RateLimited, Certainty::NotSent),
            (400, aws_error("BrandNewException", None), Transient, Certainty::NotSent),
            (403, aws_error("BrandNewException", None), AuthConfig, Certainty::NotSent),
            (502, "<html>Bad Gateway</html>".to_owned(), Transient, Certainty::NotSent),
            (504, "<html>Gateway Timeout</html>".to_owned(), Timeout, Certainty::PossiblyAccepted),
            (429, String::new(), RateLimited, Certainty::NotSent),
            (301, String::new(), AuthConfig, Certainty::NotSent),
            // Through the shared status fallback: AWS's private copy lacked 402.
            (402, String::new(), Funds, Certainty::NotSent),
            (402, "<html>Payment Required</html>".to_owned(), Funds, Certainty::NotSent),
        ];
        for (status, body, class, certainty) in cases {
            let error = send(status, &body).unwrap_err();
            assert_eq!((error.class, error.certainty), (class, certainty), "{status} {body}");
            assert!(!error.to_string().contains("4155550100"), "{error}");
        }
    }

    #[test]
    fn error_carries_type_and_reason_not_the_message() {
        let error =
            send(400, &aws_error("ConflictException", Some("DESTINATION_PHONE_NUMBER_OPTED_OUT")))
                .unwrap_err();
        assert_eq!(
            error.provider_code.as_deref(),
            Some("ConflictException:DESTINATION_PHONE_NUMBER_OPTED_OUT")
        );
        assert_eq!(
            error.to_string(),
            "aws_sms_voice blocked: http 400, ConflictException:DESTINATION_PHONE_NUMBER_OPTED_OUT"
        );
        let odd = send(400, r#"{"__type":"Bad Type <script>","Reason":"x y"}"#).unwrap_err();
        assert_eq!(odd.provider_code, None);
    }

    #[test]
    fn the_error_type_header_is_a_fallback() {
        let answer = RawAnswer {
            retry_after: Some("2".into()),
            amzn_error_type: Some("ThrottlingException:http://internal.amazon.com/".into()),
            ..RawAnswer::new(400, "")
        };
        let error = classify_send(&answer, SystemTime::UNIX_EPOCH).unwrap_err();
        assert_eq!(error.class, ErrorClass::RateLimited);
        assert_eq!(error.retry_after, Some(std::time::Duration::from_secs(2)));
    }
}
