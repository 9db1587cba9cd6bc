//! What becomes of an accepted message: whether it reaches the phone, and what the provider's
//! delivery receipt says about it, per provider and country on the run's clock
//! (`[providers.ID.handsets]` and `[[handset_phases]]`), and the people who wait for the codes
//! (`[users]`).
//!
//! A receipt is the provider's claim, the phone is the fact: a route can filter most messages and
//! say so (number-level "filtered" receipts), lose them and say "delivered" anyway (a grey
//! route), or deliver fine and stop sending receipts. The simulator draws the fact and the claim
//! separately, so a policy can be scored on the fact while it sees only the claim.

use std::time::Duration;

use anyhow::{Context, ensure};
use rand::Rng;
use switchboard_core::Country;

pub(crate) use super::file::ReceiptCode;
use super::file::{HandsetPhaseConfig, HandsetsConfig, LogNormalConfig, UsersConfig};
use super::lognormal::LogNormal;

/// A receipt later than this is not waited for (and a log-normal tail must not overflow).
const RECEIPT_DELAY_CAP: Duration = Duration::from_secs(3_600);
/// Users wait, and type, for at most this long.
const USER_DELAY_CAP: Duration = Duration::from_secs(3_600);

/// What becomes of one provider's accepted messages, validated.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Handsets {
    pub(crate) delivered_share: f64,
    pub(crate) receipt_delay: LogNormal,
    pub(crate) receipts_lost_share: f64,
    pub(crate) lying_share: f64,
    pub(crate) undelivered_receipt: ReceiptCode,
}

/// The fields a `[[handset_phases]]` entry replaces, validated.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct HandsetChanges {
    delivered_share: Option<f64>,
    receipt_delay: Option<LogNormal>,
    receipts_lost_share: Option<f64>,
    lying_share: Option<f64>,
    undelivered_receipt: Option<ReceiptCode>,
}

/// `[[handset_phases]]`, validated.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct HandsetPhase {
    pub(crate) provider: usize,
    pub(crate) from: Duration,
    pub(crate) until: Duration,
    pub(crate) countries: Option<Vec<Country>>,
    pub(crate) changes: HandsetChanges,
}

/// What one receipt says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReceiptState {
    Delivered,
    Undelivered(ReceiptCode),
}

/// The fate of one accepted message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Fate {
    /// Whether the message reaches the phone (at its acceptance).
    pub(crate) is_on_phone: bool,
    /// The final receipt and how long after the acceptance it comes; `None` if it never does.
    pub(crate) receipt: Option<(Duration, ReceiptState)>,
}

impl Handsets {
    /// Every message reaches the phone, and its receipt says so within seconds.
    pub(crate) fn perfect() -> Handsets {
        Handsets {
            delivered_share: 1.0,
            receipt_delay: LogNormal::try_new("", LogNormalConfig { median: 3.0, p99: 30.0 })
                .expect("valid default"),
            receipts_lost_share: 0.0,
            lying_share: 0.0,
            undelivered_receipt: ReceiptCode::Unreachable,
        }
    }

    /// `[providers.ID.handsets]` (under `key`), over the defaults.
    pub(super) fn try_new(key: &str, config: Option<&HandsetsConfig>) -> anyhow::Result<Handsets> {
        let perfect = Handsets::perfect();
        match config {
            None => Ok(perfect),
            Some(config) => Ok(perfect.with(HandsetChanges::try_new(key, config)?)),
        }
    }

    /// These, with `changes` applied.
    #[must_use]
    pub(crate) fn with(self, changes: HandsetChanges) -> Handsets {
        Handsets {
            delivered_share: changes.delivered_share.unwrap_or(self.delivered_share),
            receipt_delay: changes.receipt_delay.unwrap_or(self.receipt_delay),
            receipts_lost_share: changes.receipts_lost_share.unwrap_or(self.receipts_lost_share),
            lying_share: changes.lying_share.unwrap_or(self.lying_share),
            undelivered_receipt: changes.undelivered_receipt.unwrap_or(self.undelivered_receipt),
        }
    }

    /// Draws one accepted message's fate. Always the same five draws in the same order, so a
    /// phase changes only the fates it touches.
    pub(crate) fn fate(&self, rng: &mut impl Rng) -> Fate {
        let u_phone: f64 = rng.random();
        let u_lost: f64 = rng.random();
        let u_lie: f64 = rng.random();
        let delay = self.receipt_delay.sample_seconds(rng, RECEIPT_DELAY_CAP);
        let is_on_phone = u_phone < self.delivered_share;
        let state = if is_on_phone || u_lie < self.lying_share {
            ReceiptState::Delivered
        } else {
            ReceiptState::Undelivered(self.undelivered_receipt)
        };
        let receipt = (u_lost >= self.receipts_lost_share).then_some((delay, state));
        Fate { is_on_phone, receipt }
    }

    /// A short description for the report.
    pub(crate) fn describe(&self) -> String {
        let mut parts = vec![format!("{} reach the phone", percent(self.delivered_share))];
        if self.delivered_share < 1.0 {
            if self.lying_share > 0.0 {
                let lying = percent(self.lying_share);
                parts.push(format!("{lying} of the lost ones receipted \"delivered\""));
            }
            if self.lying_share < 1.0 {
                parts.push(format!("the others \"{}\"", self.undelivered_receipt.as_str()));
            }
        }
        if self.receipts_lost_share > 0.0 {
            parts.push(format!("{} of receipts never come", percent(self.receipts_lost_share)));
        }
        parts.join(", ")
    }
}

/// A share as a percentage, with a decimal only where it has one (`10%`, `99.5%`).
fn percent(share: f64) -> String {
    let text = format!("{:.1}", share * 100.0);
    format!("{}%", text.strip_suffix(".0").unwrap_or(&text))
}

impl ReceiptCode {
    /// As written in scenarios and in the emulated receipts.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ReceiptCode::Filtered => "filtered",
            ReceiptCode::UnknownSubscriber => "unknown_subscriber",
            ReceiptCode::Unreachable => "unreachable",
        }
    }

    /// Parses [`ReceiptCode::as_str`].
    pub(crate) fn parse(text: &str) -> Option<ReceiptCode> {
        [ReceiptCode::Filtered, ReceiptCode::UnknownSubscriber, ReceiptCode::Unreachable]
            .into_iter()
            .find(|code| code.as_str() == text)
    }
}

impl HandsetChanges {
    /// A `handsets` table under `key`, validated.
    pub(super) fn try_new(key: &str, config: &HandsetsConfig) -> anyhow::Result<HandsetChanges> {
        let share = |field: &str, value: Option<f64>| -> anyhow::Result<Option<f64>> {
            if let Some(value) = value {
                ensure!((0.0..=1.0).contains(&value), "{key}.{field}: must be between 0 and 1");
            }
            Ok(value)
        };
        Ok(HandsetChanges {
            delivered_share: share("delivered_share", config.delivered_share)?,
            receipt_delay: config
                .receipt_delay_s
                .map(|delay| LogNormal::try_new(&format!("{key}.receipt_delay_s"), delay))
                .transpose()?,
            receipts_lost_share: share("receipts_lost_share", config.receipts_lost_share)?,
            lying_share: share("lying_share", config.lying_share)?,
            undelivered_receipt: config.undelivered_receipt,
        })
    }
}

impl HandsetPhase {
    /// `handset_phases[position]` (`key`), validated; `provider` is the index of the provider
    /// it names, and a phase without `until_s` lasts until `default_until_s`.
    pub(super) fn try_new(
        key: &str,
        phase: &HandsetPhaseConfig,
        provider: usize,
        default_until_s: f64,
    ) -> anyhow::Result<HandsetPhase> {
        let until_s = phase.until_s.unwrap_or(default_until_s);
        ensure!(
            phase.from_s.is_finite() && phase.from_s >= 0.0 && until_s > phase.from_s,
            "{key}: from_s must be at least 0 and before until_s"
        );
        let countries = phase
            .countries
            .as_ref()
            .map(|list| {
                list.iter()
                    .map(|text| {
                        Country::parse(text).with_context(|| {
                            format!("{key}.countries: {text:?} is not an ISO alpha-2 code")
                        })
                    })
                    .collect::<anyhow::Result<Vec<_>>>()
            })
            .transpose()?;
        Ok(HandsetPhase {
            provider,
            from: Duration::from_secs_f64(phase.from_s),
            until: Duration::from_secs_f64(until_s),
            countries,
            changes: HandsetChanges::try_new(&format!("{key}.handsets"), &phase.handsets)?,
        })
    }

    /// Whether a message `provider` accepted, sent `at` into the run to `country`, is in it.
    pub(crate) fn covers(&self, provider: usize, at: Duration, country: Country) -> bool {
        self.provider == provider
            && (self.from..self.until).contains(&at)
            && self.countries.as_ref().is_none_or(|list| list.contains(&country))
    }
}

/// `[users]`, validated.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Users {
    pub(crate) entered_share: f64,
    pub(crate) entry_delay: LogNormal,
    pub(crate) patience: LogNormal,
    pub(crate) max_resends: u32,
}

/// What one user does with one code, drawn once for every policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct UserDraw {
    /// How long the user waits for this code before asking again.
    pub(crate) patience: Duration,
    /// Whether the user enters this code if it arrives.
    pub(crate) enters: bool,
    /// From the code reaching the phone to the code entered.
    pub(crate) entry_delay: Duration,
}

impl Users {
    /// `[users]`, validated.
    pub(super) fn try_new(config: &UsersConfig) -> anyhow::Result<Users> {
        ensure!(
            (0.0..=1.0).contains(&config.entered_share),
            "users.entered_share: must be between 0 and 1"
        );
        ensure!(config.max_resends <= 5, "users.max_resends: at most 5");
        Ok(Users {
            entered_share: config.entered_share,
            entry_delay: LogNormal::try_new("users.entry_delay_s", config.entry_delay_s)?,
            patience: LogNormal::try_new("users.patience_s", config.patience_s)?,
            max_resends: config.max_resends,
        })
    }

    /// Draws what a user does with one code (always four draws).
    pub(crate) fn draw(&self, rng: &mut impl Rng) -> UserDraw {
        let patience = self.patience.sample_seconds(rng, USER_DELAY_CAP);
        let enters = rng.random::<f64>() < self.entered_share;
        let entry_delay = self.entry_delay.sample_seconds(rng, USER_DELAY_CAP);
        UserDraw { patience, enters, entry_delay }
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    fn handsets(delivered: f64, lost: f64, lying: f64) -> Handsets {
        Handsets {
            delivered_share: delivered,
            receipts_lost_share: lost,
            lying_share: lying,
            undelivered_receipt: ReceiptCode::Filtered,
            ..Handsets::perfect()
        }
    }

    fn fates(handsets: Handsets) -> Vec<Fate> {
        let mut rng = StdRng::seed_from_u64(5);
        (0..10_000).map(|_| handsets.fate(&mut rng)).collect()
    }

    #[test]
    fn the_phone_and_the_receipt_are_drawn_apart() {
        let count =
            |fates: &[Fate], f: &dyn Fn(&Fate) -> bool| fates.iter().filter(|x| f(x)).count();
        let perfect = fates(Handsets::perfect());
        assert_eq!(count(&perfect, &|f| f.is_on_phone), 10_000);
        assert_eq!(
            count(&perfect, &|f| matches!(f.receipt, Some((_, ReceiptState::Delivered)))),
            10_000
        );

        // A filtering route says so: a tenth reach the phone, the rest are receipted "filtered".
        let filtering = fates(handsets(0.1, 0.0, 0.0));
        let on_phone = count(&filtering, &|f| f.is_on_phone);
        assert!((800..1_200).contains(&on_phone), "{on_phone}");
        let filtered = count(&filtering, &|f| {
            f.receipt.is_none()
                || matches!(f.receipt, Some((_, ReceiptState::Undelivered(ReceiptCode::Filtered))))
        });
        assert_eq!(filtered, 10_000 - on_phone);

        // A lying route: the same phones, every receipt "delivered".
        let lying = fates(handsets(0.1, 0.0, 1.0));
        assert_eq!(count(&lying, &|f| f.is_on_phone), on_phone, "the same draws decide the phone");
        assert_eq!(
            count(&lying, &|f| matches!(f.receipt, Some((_, ReceiptState::Delivered)))),
            10_000
        );

        // Receipts that stop: every message arrives, none is receipted.
        let silent = fates(handsets(1.0, 1.0, 0.0));
        assert_eq!(count(&silent, &|f| f.is_on_phone), 10_000);
        assert_eq!(count(&silent, &|f| f.receipt.is_some()), 0);
    }
}
