//! What the Sinch emulator posts after a send: SMS delivery reports to a batch's
//! `callback_url`, and signed DiCE events of callouts to the application's callback URL; and
//! the application signature, which signs those events and authenticates callouts.
//!
//! Each recipient of a batch is its own message to its own phone, with its own fate from the
//! shared receipt policy; the batch's `delivery_report` says what is posted about them (Sinch's
//! SMS API reference, developers.sinch.com/docs/sms/api-reference/, "Send" and "Delivery
//! reports"). A send that asked for nothing still has its fates decided, for the handset
//! journal.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use serde_json::{Value, json};

use super::SinchEmulator;
use crate::callbacks::{CallbackKind, Decision, Outgoing, ReceiptOutcome};

/// What a batch's `delivery_report` asks Sinch to post to its `callback_url`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reports {
    /// `none` (the default): nothing.
    None,
    /// `summary`: one `delivery_report_sms` for the batch, counting its recipients per status.
    Summary,
    /// `full`: the summary, listing the recipients under each status.
    Full,
    /// `per_recipient` and `per_recipient_final`: one `recipient_delivery_report_sms` per
    /// recipient. (`per_recipient` also reports intermediate states such as `Dispatched`; the
    /// emulator posts only the final one.)
    PerRecipient,
}

impl Reports {
    /// The batch's choice; validation has refused anything outside the enum.
    fn of(batch: &serde_json::Map<String, Value>) -> Reports {
        match batch.get("delivery_report").and_then(Value::as_str) {
            Some("summary") => Reports::Summary,
            Some("full") => Reports::Full,
            Some("per_recipient" | "per_recipient_final") => Reports::PerRecipient,
            _ => Reports::None,
        }
    }
}

/// Decides the fate of each recipient of the batch `batch_id` on its own, as each is its own
/// message to its own phone, and posts the reports the batch asked for (no signature: Sinch
/// signs none).
pub(super) fn report_batch(
    emulator: &SinchEmulator,
    batch_id: &str,
    recipients: &[String],
    batch: &serde_json::Map<String, Value>,
) {
    let log = emulator.callback_log();
    let url = batch.get("callback_url").and_then(Value::as_str);
    let reports = Reports::of(batch);
    let Some(url) = url.filter(|_| reports != Reports::None) else {
        for recipient in recipients {
            log.decide_unreported(batch_id, Some(recipient));
        }
        return;
    };
    let outgoing = |body: Value| Outgoing {
        kind: CallbackKind::Receipt,
        url: url.to_owned(),
        message_id: batch_id.to_owned(),
        headers: Vec::new(),
        content_type: "application/json",
        body: body.to_string(),
    };
    let client_reference = batch.get("client_reference");
    let fates: Vec<(&str, Decision)> = recipients
        .iter()
        .map(|recipient| (recipient.as_str(), log.decide(batch_id, Some(recipient))))
        .collect();
    if reports == Reports::PerRecipient {
        for (recipient, decision) in fates {
            let Some((status, code)) = report_status(&decision.report) else { continue };
            let mut report = json!({
                "type": "recipient_delivery_report_sms",
                "batch_id": batch_id,
                "recipient": recipient,
                "code": code,
                "status": status,
                "at": now_rfc3339(true),
                "operator_status_at": now_rfc3339(true),
            });
            if let Some(reference) = client_reference {
                report["client_reference"] = reference.clone();
            }
            log.schedule(vec![outgoing(report)], decision.delay);
        }
        return;
    }
    // One report for the batch, once every recipient's fate is known; a recipient whose report
    // is lost is missing from it.
    let mut statuses: BTreeMap<(&str, u32), Vec<&str>> = BTreeMap::new();
    for (recipient, decision) in &fates {
        if let Some(status) = report_status(&decision.report) {
            statuses.entry(status).or_default().push(recipient);
        }
    }
    if statuses.is_empty() {
        return;
    }
    let statuses: Vec<Value> = statuses
        .into_iter()
        .map(|((status, code), recipients)| {
            let mut entry = json!({"code": code, "status": status, "count": recipients.len()});
            if reports == Reports::Full {
                entry["recipients"] = json!(recipients);
            }
            entry
        })
        .collect();
    let mut report = json!({
        "type": "delivery_report_sms",
        "batch_id": batch_id,
        "total_message_count": recipients.len(),
        "statuses": statuses,
    });
    if let Some(reference) = client_reference {
        report["client_reference"] = reference.clone();
    }
    let delay = fates.iter().map(|(_, decision)| decision.delay).max().unwrap_or_default();
    log.schedule(vec![outgoing(report)], delay);
}

/// A report's `status` and `code` for a decided outcome; `None`: no report.
fn report_status(outcome: &ReceiptOutcome) -> Option<(&'static str, u32)> {
    match outcome {
        ReceiptOutcome::None => None,
        ReceiptOutcome::Delivered => Some(("Delivered", 0)),
        ReceiptOutcome::Undelivered { code } => Some(("Failed", code.parse::<u32>().unwrap_or(0))),
    }
}

/// Sinch's application signature (see the adapter's `sign` module for the scheme).
pub(crate) fn sign(
    secret_base64: &str,
    method: &str,
    body: &[u8],
    content_type: &str,
    timestamp: &str,
    path: &str,
) -> Option<String> {
    let body_md5 = STANDARD.encode(Md5::digest(body));
    let text = format!("{method}\n{body_md5}\n{content_type}\nx-timestamp:{timestamp}\n{path}");
    let key = STANDARD.decode(secret_base64).ok()?;
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).ok()?;
    mac.update(text.as_bytes());
    Some(STANDARD.encode(mac.finalize().into_bytes()))
}

/// Posts a signed DiCE event for a call, as Sinch does when the call ends.
pub(super) fn send_dice(emulator: &SinchEmulator, url: &str, call_id: &str, tts: &Value) {
    let log = emulator.callback_log();
    let decision = log.decide(call_id, tts["destination"]["endpoint"].as_str());
    let (result, reason) = match decision.report {
        ReceiptOutcome::None => return,
        ReceiptOutcome::Delivered => ("ANSWERED".to_owned(), "CALLEEHANGUP"),
        ReceiptOutcome::Undelivered { code } => (code, "CALLEENOTAVAILABLE"),
    };
    let account = emulator.account();
    let timestamp = now_rfc3339(false);
    let mut event = json!({
        "event": "dice",
        "callid": call_id,
        "timestamp": timestamp,
        "reason": reason,
        "result": result,
        "version": 1,
        "applicationKey": account.application_key,
        "to": {"type": "number", "endpoint": tts["destination"]["endpoint"]},
    });
    if let Some(custom) = tts.get("custom") {
        event["custom"] = custom.clone();
    }
    let body = event.to_string();
    let content_type = "application/json; charset=utf-8";
    let path = reqwest::Url::parse(url).map_or_else(
        |_| "/".to_owned(),
        |url| match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        },
    );
    let mut headers = vec![("x-timestamp".to_owned(), timestamp.clone())];
    match sign(
        &account.application_secret,
        "POST",
        body.as_bytes(),
        content_type,
        &timestamp,
        &path,
    ) {
        Some(signature) => headers.push((
            "authorization".to_owned(),
            format!("Application {}:{signature}", account.application_key),
        )),
        None => tracing::warn!("emulator application secret is not base64; DiCE goes unsigned"),
    }
    log.schedule(
        vec![Outgoing {
            kind: CallbackKind::Receipt,
            url: url.to_owned(),
            message_id: call_id.to_owned(),
            headers,
            content_type,
            body,
        }],
        decision.delay,
    );
}

/// Now, as Sinch stamps its batches and reports (with milliseconds) or its Voice events
/// (without).
pub(super) fn now_rfc3339(with_millis: bool) -> String {
    let now = time::OffsetDateTime::now_utc();
    let now = if with_millis {
        now.replace_millisecond(now.millisecond()).unwrap_or(now)
    } else {
        now.replace_nanosecond(0).unwrap_or(now)
    };
    let text = now.format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
    if with_millis && !text.contains('.') { text.replace('Z', ".000Z") } else { text }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_like_sinchs_published_example() {
        let body = br#"{"event":"ace","callid":"822aa4b7-05b4-4d83-87c7-1f835ee0b6f6_257","timestamp":"2014-09-24T10:59:41Z","version":1}"#;
        let signature = sign(
            "BeIukql3pTKJ8RGL5zo0DA==",
            "POST",
            body,
            "application/json",
            "2014-09-24T10:59:41Z",
            "/sinch/callback/ace",
        );
        assert_eq!(signature.as_deref(), Some("Tg6fMyo8mj9pYfWQ9ssbx3Tc1BNC87IEygAfLbJqZb4="));
    }
}
