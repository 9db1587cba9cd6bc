//! The wire behaviour: one `POST /` for every operation, dispatched on `X-Amz-Target`.
//!
//! Order of checks: record, play faults, verify SigV4, then the protocol (content type, target,
//! JSON object), then the input members as the model declares them, then magic numbers.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

use super::model::{self, OPERATIONS};
use super::sigv4::{self, AuthFailure};
use super::{AwsEmulator, ReceivedCall};
use crate::faults::InjectedAnswer;
use crate::server::Connection;

const TARGET_PREFIX: &str = "PinpointSMSVoiceV2.";
const CONTENT_TYPE: &str = "application/x-amz-json-1.0";
/// Namespace of the service's modelled errors in `__type`.
const SERVICE_NAMESPACE: &str = "com.amazonaws.pinpointsmsvoicev2";
/// Namespace of the front end's authentication and protocol errors.
const COMMON_NAMESPACE: &str = "com.amazon.coral.service";

pub(super) fn routes(emulator: AwsEmulator) -> Router {
    Router::new().route("/", post(handle)).with_state(emulator)
}

/// An AWS JSON error answer.
struct AwsError {
    status: StatusCode,
    namespace: &'static str,
    error_type: &'static str,
    members: Value,
}

impl AwsError {
    fn service(error_type: &'static str, members: Value) -> AwsError {
        let status = if error_type == "InternalServerException" {
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            StatusCode::BAD_REQUEST
        };
        AwsError { status, namespace: SERVICE_NAMESPACE, error_type, members }
    }

    fn common(status: StatusCode, error_type: &'static str, message: &str) -> AwsError {
        // The front end's errors spell `message` in lower case.
        AwsError {
            status,
            namespace: COMMON_NAMESPACE,
            error_type,
            members: json!({"message": message}),
        }
    }

    fn validation(reason: &str, field: Option<(&str, &str)>) -> AwsError {
        let mut members =
            json!({"Message": format!("Validation failed: {reason}"), "Reason": reason});
        if let Some((name, message)) = field {
            members["Fields"] = json!([{"Name": name, "Message": message}]);
        }
        AwsError::service("ValidationException", members)
    }
}

impl IntoResponse for AwsError {
    fn into_response(self) -> Response {
        let mut body = self.members;
        body["__type"] = json!(format!("{}#{}", self.namespace, self.error_type));
        let mut response = (self.status, body.to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        headers.insert("x-amzn-errortype", HeaderValue::from_static(self.error_type));
        response
    }
}

async fn handle(
    State(emulator): State<AwsEmulator>,
    connection: Connection,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let path_and_query = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let auth = sigv4::verify(
        emulator.account(),
        &path_and_query,
        &headers,
        &body,
        std::time::SystemTime::now(),
    );
    let target = text("x-amz-target");
    let json_body: Option<Value> = serde_json::from_slice(&body).ok();
    emulator.record(|received_at| ReceivedCall {
        operation: target.as_deref().and_then(|t| t.strip_prefix(TARGET_PREFIX)).map(str::to_owned),
        target: target.clone(),
        content_type: text("content-type"),
        is_signature_valid: auth.is_ok(),
        body: json_body.clone().unwrap_or(Value::Null),
        received_at,
    });
    if let Some(answer) = emulator.play_faults(connection).await {
        return injected_response(answer);
    }
    if let Err(failure) = auth {
        return auth_error(&failure).into_response();
    }
    match answer(&emulator, target.as_deref(), text("content-type").as_deref(), json_body) {
        Ok(body) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], body.to_string()).into_response(),
        Err(error) => error.into_response(),
    }
}

fn auth_error(failure: &AuthFailure) -> AwsError {
    match failure {
        AuthFailure::Missing => AwsError::common(
            StatusCode::BAD_REQUEST,
            "MissingAuthenticationTokenException",
            "Missing Authentication Token",
        ),
        AuthFailure::UnknownCredentials => AwsError::common(
            StatusCode::BAD_REQUEST,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        ),
        AuthFailure::BadSignature(why) => AwsError::common(
            StatusCode::FORBIDDEN,
            "InvalidSignatureException",
            &format!(
                "The request signature we calculated does not match the signature you provided: {why}."
            ),
        ),
    }
}

fn answer(
    emulator: &AwsEmulator,
    target: Option<&str>,
    content_type: Option<&str>,
    body: Option<Value>,
) -> Result<Value, AwsError> {
    if content_type.is_none_or(|value| !value.starts_with(CONTENT_TYPE)) {
        return Err(AwsError::common(
            StatusCode::BAD_REQUEST,
            "SerializationException",
            "Unsupported content type",
        ));
    }
    let operation = target.and_then(|target| target.strip_prefix(TARGET_PREFIX));
    let Some((operation, members)) =
        operation.and_then(|name| OPERATIONS.iter().find(|(known, _)| *known == name))
    else {
        return Err(AwsError::common(
            StatusCode::BAD_REQUEST,
            "UnknownOperationException",
            "Unknown operation",
        ));
    };
    let Some(Value::Object(body)) = body else {
        return Err(AwsError::common(
            StatusCode::BAD_REQUEST,
            "SerializationException",
            "Body is not a JSON object",
        ));
    };
    if let Err(invalid) = model::validate(members, &body) {
        let message = format!("{} {}", invalid.field, invalid.reason);
        return Err(AwsError::validation(invalid.code, Some((&invalid.field, &message))));
    }
    if *operation == "DescribeAccountAttributes" {
        return Ok(json!({"AccountAttributes": [{"Name": "ACCOUNT_TIER", "Value": "PRODUCTION"}]}));
    }
    let destination = body["DestinationPhoneNumber"].as_str().unwrap_or_default();
    if let Some(error) = magic(destination, *operation == "SendVoiceMessage") {
        return Err(error);
    }
    Ok(json!({"MessageId": emulator.new_uuid_shaped()}))
}

fn magic(destination: &str, is_voice: bool) -> Option<AwsError> {
    let conflict = |reason: &str| {
        AwsError::service(
            "ConflictException",
            json!({"Message": "Conflict", "Reason": reason, "ResourceType": "opt-out-list", "ResourceId": "default"}),
        )
    };
    let error = match destination.strip_prefix("+1555010000")? {
        "1" => AwsError::validation(
            "INVALID_PARAMETER",
            Some(("DestinationPhoneNumber", "The destination phone number is not valid")),
        ),
        "2" => conflict("DESTINATION_PHONE_NUMBER_OPTED_OUT"),
        "3" => AwsError::validation("DESTINATION_COUNTRY_BLOCKED", None),
        "4" => {
            let reason = if is_voice {
                "MONTHLY_SPEND_LIMIT_REACHED_FOR_VOICE"
            } else {
                "MONTHLY_SPEND_LIMIT_REACHED_FOR_TEXT"
            };
            AwsError::service(
                "ServiceQuotaExceededException",
                json!({"Message": "Quota exceeded", "Reason": reason}),
            )
        }
        "5" => AwsError::service(
            "AccessDeniedException",
            json!({"Message": "Account disabled", "Reason": "ACCOUNT_DISABLED"}),
        ),
        "6" => conflict("DESTINATION_PHONE_NUMBER_NOT_VERIFIED"),
        "7" => AwsError::service(
            "ResourceNotFoundException",
            json!({"Message": "Not found", "ResourceType": "pool", "ResourceId": "pool-unknown"}),
        ),
        "8" => AwsError::service("ThrottlingException", json!({"Message": "Rate exceeded"})),
        _ => return None,
    };
    Some(error)
}

fn injected_response(answer: InjectedAnswer) -> Response {
    let error = |status: StatusCode, _code| {
        let error_type = match status.as_u16() {
            503 => "ServiceUnavailableException",
            500..=599 => "InternalServerException",
            429 => "ThrottlingException",
            403 => "AccessDeniedException",
            _ => "ValidationException",
        };
        let mut error = AwsError::service(error_type, json!({"Message": "Injected error"}));
        error.status = status;
        if error_type == "ValidationException" {
            error.members["Reason"] = json!("OTHER");
        }
        error.into_response()
    };
    answer.render(error, || {
        AwsError::service("ThrottlingException", json!({"Message": "Rate exceeded"}))
            .into_response()
    })
}
