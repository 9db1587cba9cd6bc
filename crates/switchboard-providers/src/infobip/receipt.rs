//! Infobip's delivery reports: the secret path token is checked (Infobip does not sign
//! reports), then `{"results":[...]}` becomes receipts.

use secrecy::SecretString;
use serde::Deserialize;
use switchboard_core::ErrorClass;

use super::classify::{Status, class_for_status, is_code};
use crate::{Callback, CallbackError, DeliveryState, Receipt};

/// The largest report body accepted (Infobip batches up to 100 reports per request).
const MAX_REPORT_BYTES: usize = 256 * 1024;

/// The path reports are posted to, followed by the callback token.
pub(super) const REPORT_PATH: &str = "/reports/";

/// Handles `{callback_base}/reports/{token}`: the token, then the body.
pub(super) fn report(
    callback: &Callback,
    expected_token: Option<&SecretString>,
) -> Result<Vec<Receipt>, CallbackError> {
    let Some(token) = callback.subpath.strip_prefix(REPORT_PATH) else {
        return Err(CallbackError::NotFound);
    };
    crate::secret::check_path_token(token, expected_token)?;
    if callback.method != "POST" || callback.body.len() > MAX_REPORT_BYTES {
        return Err(CallbackError::Malformed("expected a POST with a JSON report".into()));
    }
    receipts(&callback.body)
        .ok_or_else(|| CallbackError::Malformed("not an Infobip delivery report".into()))
}

/// One report of `{"results":[...]}` (SMS v3 and voice reports share these fields).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReportResult {
    message_id: String,
    status: Status,
    error: Option<ReportError>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReportError {
    group_name: Option<String>,
    permanent: Option<bool>,
}

#[derive(Debug, Deserialize)]
struct Reports {
    results: Vec<ReportResult>,
}

/// Parses a delivery-report body into receipts; `None` when it is not Infobip's report JSON.
pub(crate) fn receipts(body: &[u8]) -> Option<Vec<Receipt>> {
    let reports: Reports = serde_json::from_slice(body).ok()?;
    Some(
        reports
            .results
            .into_iter()
            .map(|result| {
                let group = result.status.group_name.as_deref().unwrap_or("");
                let name = result.status.name.as_deref().unwrap_or("");
                let state = match group {
                    "DELIVERED" => DeliveryState::Delivered,
                    "PENDING" | "ACCEPTED" => DeliveryState::Pending,
                    "UNDELIVERABLE" => {
                        let error = result.error.as_ref();
                        let is_permanent_handset = error.is_some_and(|e| {
                            e.permanent == Some(true)
                                && e.group_name.as_deref() == Some("HANDSET_ERRORS")
                        });
                        DeliveryState::Undelivered(if is_permanent_handset {
                            ErrorClass::InvalidNumber
                        } else {
                            ErrorClass::Transient
                        })
                    }
                    "REJECTED" | "EXPIRED" => {
                        DeliveryState::Undelivered(class_for_status(group, name))
                    }
                    _ => DeliveryState::Pending,
                };
                Receipt {
                    message_id: result.message_id,
                    state,
                    provider_code: Some(name.to_owned()).filter(|n| is_code(n)),
                }
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_become_receipts() {
        let body = r#"{"results":[
            {"messageId":"m1","status":{"groupId":3,"groupName":"DELIVERED","id":5,"name":"DELIVERED_TO_HANDSET"},"error":{"groupId":0,"groupName":"OK","id":0,"name":"NO_ERROR","permanent":false}},
            {"messageId":"m2","status":{"groupId":5,"groupName":"REJECTED","id":14,"name":"REJECTED_DESTINATION"}},
            {"messageId":"m3","status":{"groupId":2,"groupName":"UNDELIVERABLE","id":9,"name":"UNDELIVERABLE_NOT_DELIVERED"},"error":{"groupId":1,"groupName":"HANDSET_ERRORS","id":1,"name":"EC_UNKNOWN_SUBSCRIBER","permanent":true}},
            {"messageId":"m4","status":{"groupId":2,"groupName":"UNDELIVERABLE","id":4,"name":"UNDELIVERABLE_REJECTED_OPERATOR"},"error":{"groupName":"OPERATOR_ERRORS","permanent":false}},
            {"messageId":"m5","status":{"groupId":1,"groupName":"PENDING","id":3,"name":"PENDING_WAITING_DELIVERY"}},
            {"messageId":"m6","status":{"groupId":3,"groupName":"DELIVERED","id":5,"name":"DELIVERED_TO_HANDSET"},"error":{"groupId":0,"groupName":"OK","id":5000,"name":"VOICE_ANSWERED","permanent":true}}
        ]}"#;
        let states: Vec<_> = receipts(body.as_bytes())
            .unwrap()
            .into_iter()
            .map(|r| (r.message_id, r.state))
            .collect();
        assert_eq!(
            states,
            [
                ("m1".to_owned(), DeliveryState::Delivered),
                ("m2".to_owned(), DeliveryState::Undelivered(ErrorClass::InvalidNumber)),
                ("m3".to_owned(), DeliveryState::Undelivered(ErrorClass::InvalidNumber)),
                ("m4".to_owned(), DeliveryState::Undelivered(ErrorClass::Transient)),
                ("m5".to_owned(), DeliveryState::Pending),
                ("m6".to_owned(), DeliveryState::Delivered),
            ]
        );
        assert!(receipts(b"<xml/>").is_none());
    }
}
