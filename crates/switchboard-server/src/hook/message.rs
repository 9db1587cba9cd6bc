//! The message a delivery sends: the screened destination and the SMS text.

use axum::response::Response;
use switchboard_core::{MessageText, OutboundMessage};

use super::screening::{Screening, refuse};
use crate::okta::Delivery;
use crate::state::{Runtime, Shared};

/// The message for `delivery`, or Okta's FAILED answer when its number may get no code.
pub(super) fn outbound_message(
    shared: &Shared,
    runtime: &Runtime,
    delivery: &Delivery,
) -> Result<OutboundMessage, Box<Response>> {
    let screening = Screening {
        phone_number: &delivery.phone_number,
        channel: delivery.channel,
        otp_expires: delivery.otp_expires,
        event_time: delivery.event_time,
    };
    let destination = screening
        .screen(&runtime.okta, time::OffsetDateTime::now_utc())
        .map_err(|refusal| Box::new(refuse(shared, &delivery.event_id, &refusal)))?;
    Ok(OutboundMessage {
        reference: delivery.event_id.clone(),
        destination,
        channel: delivery.channel,
        passcode: delivery.passcode.clone(),
        text: sms_text(runtime, shared, delivery),
        locale: delivery.locale.clone(),
    })
}

/// Okta's SMS parts cap when no `[sms_text]` says otherwise (threat T12: a long or UCS-2
/// template billed as many segments).
const OKTA_TEXT_MAX_SEGMENTS: usize = 2;

/// The SMS text: the configured template for the user's locale, else Okta's text unless it is
/// missing, lost the code, or would bill more than [`OKTA_TEXT_MAX_SEGMENTS`] parts, else a short
/// built-in text.
fn sms_text(runtime: &Runtime, shared: &Shared, delivery: &Delivery) -> MessageText {
    if let Some(templates) = &runtime.sms_text {
        return templates.render(delivery.locale.as_ref(), &delivery.passcode);
    }
    match &delivery.text {
        Some(text)
            if switchboard_core::text::segments(text.expose()).count <= OKTA_TEXT_MAX_SEGMENTS =>
        {
            text.clone()
        }
        Some(_) => {
            shared.metrics.hook_refused("okta_text_too_long");
            tracing::warn!(event_id = %delivery.event_id, "Okta's SMS text would bill more than two parts; sending the short built-in text");
            MessageText::new(format!("Your verification code is {}", delivery.passcode.expose()))
        }
        None => {
            MessageText::new(format!("Your verification code is {}", delivery.passcode.expose()))
        }
    }
}
