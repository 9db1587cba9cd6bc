//! Delivery evidence every replica's health must hear: a receipt's final state, a receipt that
//! never came, and what Okta said about a code. Unlike an attempt's outcome (seen by the replica
//! that made it, and noisy enough that each replica's own estimate converges), this evidence
//! reaches one replica only: the one the provider's callback or Okta's event landed on, or the
//! one that judged a receipt overdue. Without sharing, each replica would see about 1/N of it
//! and judge routes on a sliver.
//!
//! [`record`] is the one way in: it records locally (always, in both modes) and, in Redis mode,
//! publishes the evidence on the bus; [`apply`] records what another replica published. Nothing
//! is stored in keys: evidence is a stream of small increments, a message lost while Redis is
//! unavailable costs the other replicas one observation each (counted as a lost bus message),
//! and the replica that saw it still has it.

use serde::{Deserialize, Serialize};
use switchboard_core::health::HealthKey;
use switchboard_core::{Channel, Conversion, Country, Delivery, ErrorClass, ProviderId};

use crate::state::Shared;

/// The bus topic.
pub(crate) const TOPIC: &str = "evidence";

/// One observation about a route's delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Evidence {
    /// A final receipt.
    Receipt(Delivery),
    /// A message whose final receipt did not come within the grace.
    ReceiptMissing,
    /// What Okta said (or did not say) about a code.
    Conversion(Conversion),
}

impl Evidence {
    fn kind(self) -> &'static str {
        match self {
            Evidence::Receipt(_) => "receipt",
            Evidence::ReceiptMissing => "receipt_missing",
            Evidence::Conversion(_) => "conversion",
        }
    }
}

/// Records `evidence` about `key` in this replica's health and, in Redis mode, in every other
/// replica's.
pub(crate) fn record(
    shared: &Shared,
    key: &HealthKey,
    evidence: Evidence,
    now: std::time::Instant,
) {
    record_locally(shared, key, evidence, now);
    if let Some(redis) = shared.fleet.redis() {
        redis.publish(TOPIC, serde_json::to_value(Message::new(key, evidence)).unwrap_or_default());
    }
}

/// Evidence another replica published.
pub(crate) fn apply(shared: &Shared, body: serde_json::Value) {
    let Some((key, evidence)) =
        serde_json::from_value::<Message>(body).ok().and_then(|message| message.read())
    else {
        tracing::warn!("unreadable delivery evidence on the shared-state bus");
        return;
    };
    // A provider this replica does not know (a reload not everywhere yet) is kept anyway: the
    // health book carries keys by provider id, and drops them at the next reload if unknown.
    record_locally(shared, &key, evidence, tokio::time::Instant::now().into_std());
    shared.metrics.state_peer_evidence(evidence.kind());
}

fn record_locally(shared: &Shared, key: &HealthKey, evidence: Evidence, now: std::time::Instant) {
    match evidence {
        Evidence::Receipt(delivery) => shared.health.record_receipt(key, delivery, now),
        Evidence::ReceiptMissing => shared.health.record_receipt_missing(key, now),
        Evidence::Conversion(conversion) => {
            shared.health.record_conversion(key, conversion, now);
        }
    }
}

/// The wire form: labels only, the same ones the metrics carry.
#[derive(Debug, Serialize, Deserialize)]
struct Message {
    provider: String,
    country: String,
    channel: String,
    /// `receipt`, `receipt_missing` or `conversion`.
    kind: String,
    /// A receipt: `delivered` or the error class; a conversion: its label (`superseded`
    /// carries `confirmed`).
    #[serde(default)]
    value: String,
    #[serde(default)]
    confirmed: bool,
}

impl Message {
    fn new(key: &HealthKey, evidence: Evidence) -> Message {
        let (value, confirmed) = match evidence {
            Evidence::Receipt(Delivery::Delivered) => ("delivered", false),
            Evidence::Receipt(Delivery::Undelivered(class)) => (class.as_str(), false),
            Evidence::ReceiptMissing => ("", false),
            Evidence::Conversion(Conversion::Superseded { confirmed }) => ("superseded", confirmed),
            Evidence::Conversion(conversion) => (conversion.label(), false),
        };
        Message {
            provider: key.provider().as_str().to_owned(),
            country: key.country().as_str().to_owned(),
            channel: key.channel().as_str().to_owned(),
            kind: evidence.kind().to_owned(),
            value: value.to_owned(),
            confirmed,
        }
    }

    fn read(&self) -> Option<(HealthKey, Evidence)> {
        let key = HealthKey::new(
            ProviderId::parse(&self.provider)?,
            Country::parse(&self.country)?,
            Channel::parse(&self.channel)?,
        );
        let evidence = match (self.kind.as_str(), self.value.as_str()) {
            ("receipt", "delivered") => Evidence::Receipt(Delivery::Delivered),
            ("receipt", class) => Evidence::Receipt(Delivery::Undelivered(
                ErrorClass::ALL.into_iter().find(|c| c.as_str() == class)?,
            )),
            ("receipt_missing", _) => Evidence::ReceiptMissing,
            ("conversion", "entered") => Evidence::Conversion(Conversion::Entered),
            ("conversion", "superseded") => {
                Evidence::Conversion(Conversion::Superseded { confirmed: self.confirmed })
            }
            ("conversion", "not_entered") => Evidence::Conversion(Conversion::NotEntered),
            ("conversion", "not_resent") => Evidence::Conversion(Conversion::NotResent),
            _ => return None,
        };
        Some((key, evidence))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_evidence_survives_the_wire() {
        let key = HealthKey::new(
            ProviderId::parse("twilio").unwrap(),
            Country::parse("GB").unwrap(),
            Channel::Voice,
        );
        let mut all = vec![Evidence::Receipt(Delivery::Delivered), Evidence::ReceiptMissing];
        all.extend(ErrorClass::ALL.map(|class| Evidence::Receipt(Delivery::Undelivered(class))));
        all.extend(
            [
                Conversion::Entered,
                Conversion::Superseded { confirmed: true },
                Conversion::Superseded { confirmed: false },
                Conversion::NotEntered,
                Conversion::NotResent,
            ]
            .map(Evidence::Conversion),
        );
        for evidence in all {
            let json = serde_json::to_value(Message::new(&key, evidence)).unwrap();
            let message: Message = serde_json::from_value(json).unwrap();
            assert_eq!(message.read(), Some((key.clone(), evidence)));
        }
    }
}
