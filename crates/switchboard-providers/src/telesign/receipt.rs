//! Telesign's transaction callbacks (SMS and voice): `Authorization: TSA {customer_id}:{sig}`
//! over the raw body is checked, then `status.code` becomes a receipt.

use serde::Deserialize;
use switchboard_core::ErrorClass;

use super::classify::class_for_status_code;
use crate::{Callback, CallbackError, DeliveryState, Receipt};

/// The callback path, below `{callback_base}`.
pub(super) const STATUS_PATH: &str = "/status";

/// The largest callback body accepted; Telesign's are well under 2 KiB.
const MAX_CALLBACK_BYTES: usize = 16 * 1024;

/// Handles `{callback_base}/status`: shape, signature, then the status code.
pub(super) fn status(
    callback: &Callback,
    customer_id: &str,
    signing_key: &[u8],
) -> Result<Receipt, CallbackError> {
    if callback.subpath != STATUS_PATH {
        return Err(CallbackError::NotFound);
    }
    if callback.method != "POST" || callback.body.len() > MAX_CALLBACK_BYTES {
        return Err(CallbackError::Malformed("expected a POST with a small JSON body".into()));
    }
    if !is_signed(callback, customer_id, signing_key) {
        return Err(CallbackError::BadSignature);
    }
    let body: CallbackBody = serde_json::from_slice(&callback.body)
        .map_err(|_| CallbackError::Malformed("not a Telesign transaction callback".into()))?;
    Ok(Receipt {
        message_id: body.reference_id,
        state: delivery_state(body.status.code),
        provider_code: Some(body.status.code.to_string()),
    })
}

/// Checks the callback's `TSA {customer_id}:{signature}` against the raw body.
fn is_signed(callback: &Callback, expected_customer_id: &str, signing_key: &[u8]) -> bool {
    let Some(value) =
        callback.headers.get(http::header::AUTHORIZATION).and_then(|value| value.to_str().ok())
    else {
        return false;
    };
    let Some((customer_id, signature)) =
        value.strip_prefix("TSA ").and_then(|rest| rest.split_once(':'))
    else {
        return false;
    };
    let expected = super::request::signature(signing_key, &callback.body);
    // Both comparisons always run, so timing says nothing about which part was wrong.
    let is_customer =
        crate::secret::constant_time_eq(customer_id.as_bytes(), expected_customer_id.as_bytes());
    let is_signature =
        crate::secret::constant_time_eq(signature.trim().as_bytes(), expected.as_bytes());
    is_customer & is_signature
}

/// A Telesign transaction callback (`reference_id`, `status`, ...); other fields are ignored.
#[derive(Deserialize)]
struct CallbackBody {
    reference_id: String,
    status: CallbackStatus,
}

#[derive(Deserialize)]
struct CallbackStatus {
    code: i64,
}

/// What a callback's `status.code` says about delivery.
#[must_use]
// Per-provider table, alike in shape across adapters on purpose: the codes are this provider's.
pub(crate) fn delivery_state(code: i64) -> DeliveryState {
    match code {
        // Delivered to handset, read (SMS); call answered (voice).
        200 | 201 | 100 => DeliveryState::Delivered,
        // In progress, delivered to gateway, call in progress or not handled yet; "final status
        // unknown" and "sent, no DLR" say nothing about health either.
        290 | 203 | 103 | 105 | 250 | 251 => DeliveryState::Pending,
        // Error (unknown), temporary phone error, expired; not answered, call failed, busy,
        // canceled.
        207 | 210 | 221 | 101 | 106 | 107 | 108 => {
            DeliveryState::Undelivered(ErrorClass::Transient)
        }
        other => DeliveryState::Undelivered(
            class_for_status_code(other).unwrap_or(ErrorClass::Transient),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_callback_status_codes() {
        use DeliveryState::*;
        for (code, state) in [
            (200, Delivered),
            (100, Delivered),
            (290, Pending),
            (203, Pending),
            (251, Pending),
            (210, Undelivered(ErrorClass::Transient)),
            (101, Undelivered(ErrorClass::Transient)),
            (211, Undelivered(ErrorClass::InvalidNumber)),
            (220, Undelivered(ErrorClass::InvalidNumber)),
            (229, Undelivered(ErrorClass::Blocked)),
            (233, Undelivered(ErrorClass::FraudBlock)),
            (231, Undelivered(ErrorClass::AuthConfig)),
            (4242, Undelivered(ErrorClass::Transient)),
        ] {
            assert_eq!(delivery_state(code), state, "{code}");
        }
    }
}
