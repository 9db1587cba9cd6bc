//! The requests Plivo makes to us (answer fetch, SMS status, call hangup): the V3 signature
//! check that comes before anything else, and the receipts in status and hangup callbacks.

use secrecy::{ExposeSecret, SecretString};

use super::{classify, sign};
use crate::{Callback, CallbackError, Receipt};

/// The largest callback body accepted; Plivo's forms are well under 4 KiB.
const MAX_CALLBACK_BYTES: usize = 16 * 1024;

/// The request's parameters and whether its V3 signature verifies.
pub(crate) fn verified_params(
    auth_token: &SecretString,
    callback: &Callback,
) -> Result<Vec<(String, String)>, CallbackError> {
    let header = |name: &str| callback.headers.get(name).and_then(|value| value.to_str().ok());
    let (Some(signatures), Some(nonce)) =
        (header("X-Plivo-Signature-V3"), header("X-Plivo-Signature-V3-Nonce"))
    else {
        return Err(CallbackError::BadSignature);
    };
    let is_post = callback.method.eq_ignore_ascii_case("POST");
    if callback.body.len() > MAX_CALLBACK_BYTES {
        return Err(CallbackError::Malformed("callback body too large".into()));
    }
    let signed_params: Vec<(String, String)> = if is_post {
        serde_urlencoded::from_bytes(&callback.body)
            .map_err(|_| CallbackError::Malformed("not a form body".into()))?
    } else {
        Vec::new()
    };
    let is_valid = sign::verify(
        auth_token.expose_secret().as_bytes(),
        &callback.method.to_ascii_uppercase(),
        &callback.url,
        &signed_params,
        nonce,
        signatures,
    );
    if !is_valid {
        return Err(CallbackError::BadSignature);
    }
    if is_post {
        return Ok(signed_params);
    }
    let query = callback.url.split_once('?').map_or("", |(_, query)| query);
    serde_urlencoded::from_str(query.split('#').next().unwrap_or(""))
        .map_err(|_| CallbackError::Malformed("bad query".into()))
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
}

/// An SMS status callback (`MessageUUID`, `Status`, `ErrorCode`).
pub(crate) fn message_receipt(params: &[(String, String)]) -> Result<Receipt, CallbackError> {
    let (Some(uuid), Some(status)) = (param(params, "MessageUUID"), param(params, "Status")) else {
        return Err(CallbackError::Malformed("status without MessageUUID or Status".into()));
    };
    let error_code = param(params, "ErrorCode").filter(|code| !code.is_empty());
    Ok(Receipt {
        message_id: uuid.to_owned(),
        state: classify::message_state(status, error_code),
        provider_code: error_code
            .filter(|code| code.bytes().all(|b| b.is_ascii_digit()))
            .map(str::to_owned),
    })
}

/// A call's hangup callback (`RequestUUID`, the id `send` returned, and `CallStatus`).
pub(crate) fn call_receipt(params: &[(String, String)]) -> Result<Receipt, CallbackError> {
    let (Some(uuid), Some(status)) = (param(params, "RequestUUID"), param(params, "CallStatus"))
    else {
        return Err(CallbackError::Malformed("hangup without RequestUUID or CallStatus".into()));
    };
    Ok(Receipt {
        message_id: uuid.to_owned(),
        state: classify::call_state(status),
        provider_code: param(params, "HangupCauseCode")
            .filter(|code| code.bytes().all(|b| b.is_ascii_digit()))
            .map(str::to_owned),
    })
}
