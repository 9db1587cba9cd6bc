//! SigV4 verification by recomputation: the emulator signs the received request's canonical
//! parts (method, path, the headers the client says it signed, body) with the account's secret
//! through `aws-sigv4`, at the request's own `X-Amz-Date`, and compares the signatures.
//!
//! So an adapter passes only if it signs exactly what it sends: a header changed after signing,
//! a body re-serialised, a wrong region or service in the scope, all fail as they would on AWS.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use axum::http::HeaderMap;

use super::AwsAccount;

/// The service name in the credential scope.
pub(crate) const SERVICE: &str = "sms-voice";

/// How far `X-Amz-Date` may be from the emulator's clock (AWS allows 15 minutes).
const MAX_SKEW: Duration = Duration::from_secs(15 * 60);

/// Why a request is not authenticated, as AWS's front end says it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum AuthFailure {
    /// No `Authorization` header (`MissingAuthenticationTokenException`).
    Missing,
    /// An access key or session token the account does not have (`UnrecognizedClientException`).
    UnknownCredentials,
    /// Malformed, mis-scoped, expired or simply wrong (`InvalidSignatureException`).
    BadSignature(&'static str),
}

/// The parsed `Authorization` header.
#[derive(Debug, PartialEq, Eq)]
struct Authorization<'a> {
    access_key_id: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    signed_headers: Vec<&'a str>,
    signature: &'a str,
}

fn parse_authorization(value: &str) -> Option<Authorization<'_>> {
    let rest = value.strip_prefix("AWS4-HMAC-SHA256 ")?;
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let (name, value) = part.trim().split_once('=')?;
        match name {
            "Credential" => credential = Some(value),
            "SignedHeaders" => signed_headers = Some(value),
            "Signature" => signature = Some(value),
            _ => return None,
        }
    }
    let mut scope = credential?.split('/');
    let authorization = Authorization {
        access_key_id: scope.next()?,
        date: scope.next()?,
        region: scope.next()?,
        service: scope.next()?,
        signed_headers: signed_headers?.split(';').collect(),
        signature: signature?,
    };
    (scope.next()? == "aws4_request" && scope.next().is_none()).then_some(authorization)
}

/// `20260101T000000Z` to a time.
fn parse_amz_date(text: &str) -> Option<SystemTime> {
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    let at = time::PrimitiveDateTime::parse(text, &format).ok()?.assume_utc();
    Some(SystemTime::from(at))
}

/// Verifies a `POST` to `path_and_query` with `headers` and `body`, signed for `account`.
pub(crate) fn verify(
    account: &AwsAccount,
    path_and_query: &str,
    headers: &HeaderMap,
    body: &[u8],
    now: SystemTime,
) -> Result<(), AuthFailure> {
    let value = headers.get("authorization").ok_or(AuthFailure::Missing)?;
    let value =
        value.to_str().map_err(|_| AuthFailure::BadSignature("unreadable authorization"))?;
    let authorization =
        parse_authorization(value).ok_or(AuthFailure::BadSignature("malformed authorization"))?;
    if authorization.access_key_id != account.access_key_id {
        return Err(AuthFailure::UnknownCredentials);
    }
    let token = headers.get("x-amz-security-token").and_then(|value| value.to_str().ok());
    if token != account.session_token.as_deref() {
        return Err(AuthFailure::UnknownCredentials);
    }
    if authorization.region != account.region {
        return Err(AuthFailure::BadSignature("credential should be scoped to a valid region"));
    }
    if authorization.service != SERVICE {
        return Err(AuthFailure::BadSignature(
            "credential should be scoped to the correct service",
        ));
    }
    let amz_date = headers
        .get("x-amz-date")
        .and_then(|value| value.to_str().ok())
        .ok_or(AuthFailure::BadSignature("x-amz-date is required"))?;
    let signed_at =
        parse_amz_date(amz_date).ok_or(AuthFailure::BadSignature("x-amz-date is malformed"))?;
    if !amz_date.starts_with(authorization.date) || authorization.date.len() != 8 {
        return Err(AuthFailure::BadSignature("credential date does not match x-amz-date"));
    }
    let skew = now.duration_since(signed_at).or_else(|early| Ok::<_, ()>(early.duration()));
    if skew.is_ok_and(|skew| skew > MAX_SKEW) {
        return Err(AuthFailure::BadSignature("signature expired"));
    }
    for required in ["host", "x-amz-date"] {
        if !authorization.signed_headers.contains(&required) {
            return Err(AuthFailure::BadSignature("host and x-amz-date must be signed"));
        }
    }
    // The signer adds x-amz-date and the token itself, so they are not passed in.
    let mut signable_headers = Vec::new();
    for name in &authorization.signed_headers {
        if matches!(*name, "x-amz-date" | "x-amz-security-token") {
            continue;
        }
        for value in headers.get_all(*name) {
            let value = value
                .to_str()
                .map_err(|_| AuthFailure::BadSignature("unreadable signed header"))?;
            signable_headers.push((*name, value));
        }
        if headers.get(*name).is_none() {
            return Err(AuthFailure::BadSignature("a signed header is missing"));
        }
    }
    let identity = Credentials::new(
        account.access_key_id.as_str(),
        account.secret_access_key.as_str(),
        account.session_token.clone(),
        None,
        "switchboard-sim",
    )
    .into();
    let settings = SigningSettings::default();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&account.region)
        .name(SERVICE)
        .time(signed_at)
        .settings(settings)
        .build()
        .map_err(|_| AuthFailure::BadSignature("cannot sign"))?
        .into();
    let signable = SignableRequest::new(
        "POST",
        path_and_query,
        signable_headers.into_iter(),
        SignableBody::Bytes(body),
    )
    .map_err(|_| AuthFailure::BadSignature("cannot canonicalise the request"))?;
    let (_, expected) =
        sign(signable, &params).map_err(|_| AuthFailure::BadSignature("cannot sign"))?.into_parts();
    if expected.len() == authorization.signature.len()
        && expected
            .bytes()
            .zip(authorization.signature.bytes())
            .fold(0, |diff, (a, b)| diff | (a ^ b))
            == 0
    {
        Ok(())
    } else {
        Err(AuthFailure::BadSignature("the request signature we calculated does not match"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_authorization_header() {
        let value = "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/sms-voice/aws4_request, \
                     SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=abc123";
        assert_eq!(
            parse_authorization(value),
            Some(Authorization {
                access_key_id: "AKID",
                date: "20260101",
                region: "us-east-1",
                service: "sms-voice",
                signed_headers: vec!["content-type", "host", "x-amz-date", "x-amz-target"],
                signature: "abc123",
            })
        );
        for bad in [
            "Basic abc",
            "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/sms-voice, SignedHeaders=host, Signature=a",
            "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/sms-voice/aws4_request, Signature=a",
        ] {
            assert_eq!(parse_authorization(bad), None, "{bad}");
        }
    }

    #[test]
    fn parses_amz_dates() {
        let at = parse_amz_date("20260101T000000Z").unwrap();
        assert_eq!(at.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs(), 1_767_225_600);
        assert!(parse_amz_date("2026-01-01T00:00:00Z").is_none());
    }
}
