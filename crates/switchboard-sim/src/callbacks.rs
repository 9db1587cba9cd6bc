//! Requests an emulator makes *to* the system under test, as the real provider does after a
//! send: delivery receipts and status callbacks to the URL the send (or the account) named, and
//! (Plivo) the fetch of a call's answer URL. Shared by every emulator that posts them (Twilio,
//! Vonage, Sinch, Telesign, Infobip, Plivo).
//!
//! Why one mechanism: the policy (what happens to a message after it is accepted, what to
//! report, after what delay), the client that never follows redirects, the task that posts in
//! order and the record of what was posted are the same for every provider; only the wire
//! format differs. So each provider module asks [`CallbackLog::decide`] for the fate of each
//! accepted send, renders its own [`Outgoing`] requests (body, signature, headers) from the
//! [`ReceiptOutcome`] decided, and hands them to [`CallbackLog::schedule`]. A send that asked
//! for no receipt (no callback URL) still has a fate: the module asks
//! [`CallbackLog::decide_unreported`], and the phone gets the message or not all the same.
//!
//! What receipts say is set at runtime, in-process ([`Emulator::set_receipts`]) or with
//! `PUT /__sim/receipts` ([`Receipts`] as JSON; 400 naming the field when [`Receipts::check`]
//! refuses it):
//!
//! - `outcome` and `delay_ms`: what every send's receipt says, after what delay: none (the
//!   default for all but Twilio, whose emulator starts with "delivered"), delivered, or
//!   undelivered with the provider's own code. The handset gets every message unless the
//!   outcome is undelivered.
//! - `delivery`: per-country rules ([`CountryDelivery`]); the first whose `countries` names the
//!   destination's country (ISO 3166 alpha-2, read from the `to` number with libphonenumber, as
//!   the server reads it) or `"*"` applies, and a send no rule matches falls back to `outcome`.
//!   A rule draws, per send: whether the message reaches the handset (`delivered_percent`),
//!   else which of `codes` the receipt carries; of the undelivered, whether the receipt lies
//!   and says "delivered" (`lying_percent`); and whether the receipt is lost and never sent
//!   (`lost_percent`).
//! - `seed`: re-seeds the draws when the policy is applied, so the same seed and the same sends
//!   give the same fates.
//!
//! ```json
//! {"delivery": [
//!    {"countries": ["GB"], "delivered_percent": 0, "codes": ["30007"]},
//!    {"countries": ["*"], "delivered_percent": 95, "codes": ["30003", "30005"],
//!     "receipt_delay_ms": 200, "lost_percent": 2, "lying_percent": 10}],
//!  "seed": 7}
//! ```
//!
//! What actually reached each phone is journaled for every accepted send, whether or not it
//! asked for a receipt, and for each recipient of a send to several ([`Handset`]: message id,
//! country, delivered or not, the receipt reported, lost or not asked for, whether it lied;
//! never the number, the body or the passcode), served at `GET /__sim/handsets` (`DELETE` clears) and by
//! [`Emulator::handsets`], so a test can compare what the server believed with what phones got.
//! Every callback made is recorded with the answer it got (`GET /__sim/callbacks`), and tests
//! wait for them with `wait_for_callbacks` instead of sleeping.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::emulator::{Api, Emulator};
use crate::journal::Journal;

/// The most of a callback's answer that is recorded (answer XML is a few hundred bytes).
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// What happens to a message after the emulator accepts it, and what its receipts say; the
/// default delivers everything and sends no receipts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Receipts {
    /// The final state reported for a send no `delivery` rule matches.
    pub outcome: ReceiptOutcome,
    /// Delay between accepting the send and posting its receipt, in milliseconds (for a rule
    /// without a `receipt_delay_ms` of its own too).
    pub delay_ms: u64,
    /// Per-country rules; the first matching the destination applies.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub delivery: Vec<CountryDelivery>,
    /// When set, re-seeds the draws as this policy is applied (a replayable run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

/// What happens to the sends to some countries: the share delivered, the codes of the rest,
/// the receipts lost and the receipts that lie. Percentages are 0 to 100.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CountryDelivery {
    /// ISO 3166 alpha-2 codes (`"GB"`), or `"*"` for any destination, even one whose country
    /// is unknown.
    pub countries: Vec<String>,
    /// The share of sends that reach the handset (default 100).
    pub delivered_percent: f64,
    /// The provider's undelivered codes for the rest, one drawn at random per send (numbers or
    /// words, as [`ReceiptOutcome::Undelivered`] carries them); needed when
    /// `delivered_percent` is below 100.
    #[serde(deserialize_with = "codes")]
    pub codes: Vec<String>,
    /// Delay before the receipt, in milliseconds; `None`: the policy's `delay_ms`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receipt_delay_ms: Option<u64>,
    /// The share of sends whose receipt is never sent, delivered or not.
    pub lost_percent: f64,
    /// Of the undelivered sends, the share whose receipt says "delivered".
    pub lying_percent: f64,
}

impl Default for CountryDelivery {
    fn default() -> CountryDelivery {
        CountryDelivery {
            countries: Vec::new(),
            delivered_percent: 100.0,
            codes: Vec::new(),
            receipt_delay_ms: None,
            lost_percent: 0.0,
            lying_percent: 0.0,
        }
    }
}

/// Codes as strings, written as strings or numbers.
fn codes<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Code {
        Text(String),
        Number(u64),
    }
    let codes = Vec::<Code>::deserialize(deserializer)?;
    Ok(codes
        .into_iter()
        .map(|code| match code {
            Code::Text(text) => text,
            Code::Number(number) => number.to_string(),
        })
        .collect())
}

impl CountryDelivery {
    /// Sends to `countries` (ISO codes or `"*"`), all delivered until told otherwise.
    #[must_use]
    pub fn to(countries: &[&str]) -> CountryDelivery {
        CountryDelivery {
            countries: countries.iter().map(|&country| country.to_owned()).collect(),
            ..CountryDelivery::default()
        }
    }

    /// `percent` of the sends reach the handset; the rest get one of `codes`.
    #[must_use]
    pub fn delivered(self, percent: f64, codes: &[&str]) -> CountryDelivery {
        CountryDelivery {
            delivered_percent: percent,
            codes: codes.iter().map(|&code| code.to_owned()).collect(),
            ..self
        }
    }

    /// `percent` of the receipts are never sent.
    #[must_use]
    pub fn lost(self, percent: f64) -> CountryDelivery {
        CountryDelivery { lost_percent: percent, ..self }
    }

    /// `percent` of the undelivered sends' receipts say "delivered".
    #[must_use]
    pub fn lying(self, percent: f64) -> CountryDelivery {
        CountryDelivery { lying_percent: percent, ..self }
    }

    /// Receipts are posted `delay` after the send.
    #[must_use]
    pub fn with_delay(self, delay: Duration) -> CountryDelivery {
        CountryDelivery { receipt_delay_ms: Some(saturating_millis(delay)), ..self }
    }

    fn matches(&self, country: Option<&str>) -> bool {
        self.countries.iter().any(|named| {
            named == "*" || country.is_some_and(|country| named.eq_ignore_ascii_case(country))
        })
    }

    fn check(&self, at: &str) -> Result<(), String> {
        if self.countries.is_empty() {
            return Err(format!("{at}.countries: must name at least one country or \"*\""));
        }
        if let Some(bad) = self.countries.iter().find(|country| {
            *country != "*"
                && !(country.len() == 2 && country.bytes().all(|b| b.is_ascii_alphabetic()))
        }) {
            return Err(format!("{at}.countries: {bad:?} is neither an ISO 3166 code nor \"*\""));
        }
        for (name, value) in [
            ("delivered_percent", self.delivered_percent),
            ("lost_percent", self.lost_percent),
            ("lying_percent", self.lying_percent),
        ] {
            if !(0.0..=100.0).contains(&value) {
                return Err(format!("{at}.{name}: must be between 0 and 100, got {value}"));
            }
        }
        if self.delivered_percent < 100.0 && self.codes.is_empty() {
            return Err(format!(
                "{at}.codes: must name the undelivered codes when delivered_percent is below 100"
            ));
        }
        if self.codes.iter().any(String::is_empty) {
            return Err(format!("{at}.codes: a code is empty"));
        }
        Ok(())
    }
}

/// The final state a receipt reports.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ReceiptOutcome {
    /// Send no receipts.
    #[default]
    None,
    /// Delivered to the handset (SMS) or answered (calls).
    Delivered,
    /// Not delivered, with the provider's own code, as its receipt carries it: a string,
    /// because some are words (Twilio `ErrorCode` such as 30003, Vonage `err-code` such as 6
    /// or a call status such as `busy`, Sinch report code 402 or DiCE result `NOANSWER`,
    /// Telesign `status.code` such as 211, Infobip `status.id` such as 14, Plivo `ErrorCode`
    /// such as 50).
    Undelivered {
        /// The provider's code for why.
        code: String,
    },
}

impl Receipts {
    /// No receipts.
    #[must_use]
    pub fn none() -> Receipts {
        Receipts::default()
    }

    /// Every send gets a "delivered" receipt.
    #[must_use]
    pub fn delivered() -> Receipts {
        Receipts { outcome: ReceiptOutcome::Delivered, ..Receipts::default() }
    }

    /// Every send gets an "undelivered" receipt with the provider's `code` (a number or a word).
    #[must_use]
    pub fn undelivered(code: impl ToString) -> Receipts {
        Receipts {
            outcome: ReceiptOutcome::Undelivered { code: code.to_string() },
            ..Receipts::default()
        }
    }

    /// Posts receipts `delay` after the send.
    #[must_use]
    pub fn with_delay(self, delay: Duration) -> Receipts {
        Receipts { delay_ms: saturating_millis(delay), ..self }
    }

    /// Adds a per-country rule after those already set (the first matching applies).
    #[must_use]
    pub fn with_rule(mut self, rule: CountryDelivery) -> Receipts {
        self.delivery.push(rule);
        self
    }

    /// Re-seeds the draws when applied.
    #[must_use]
    pub fn with_seed(self, seed: u64) -> Receipts {
        Receipts { seed: Some(seed), ..self }
    }

    /// Checks the values a caller can get wrong; the message names the field.
    pub fn check(&self) -> Result<(), String> {
        for (index, rule) in self.delivery.iter().enumerate() {
            rule.check(&format!("delivery[{index}]"))?;
        }
        Ok(())
    }
}

fn saturating_millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// What reached one phone, for one accepted send: the truth beside what the receipt said.
/// Holds neither the message nor the number.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Handset {
    /// The provider's id of the message or call.
    pub message_id: String,
    /// The destination's country (ISO 3166 alpha-2), when its calling code tells.
    pub country: Option<String>,
    /// Whether the message reached the handset (the call was answered).
    pub delivered: bool,
    /// What the receipt reported.
    pub receipt: HandsetReceipt,
    /// Whether the receipt says "delivered" of a message that was not.
    pub lying: bool,
}

/// What the receipt of a send reported.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum HandsetReceipt {
    /// No receipt: the policy sends none, or the send asked for none.
    None,
    /// "Delivered".
    Delivered,
    /// Undelivered, with the provider's code.
    Undelivered {
        /// The provider's code.
        code: String,
    },
    /// A receipt was due and was lost (`lost_percent`).
    Lost,
}

/// Whether an accepted send asked for a receipt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reporting {
    Asked,
    NotAsked,
}

/// The fate of one accepted send, as the provider module renders it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Decision {
    /// What the receipt reports; [`ReceiptOutcome::None`]: send no receipt.
    pub(crate) report: ReceiptOutcome,
    /// Whether the message reached the handset (a call: was answered).
    pub(crate) delivered: bool,
    /// When to post the receipt.
    pub(crate) delay: Duration,
}

/// Why the emulator made a callback.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CallbackKind {
    /// A delivery receipt (SMS status, call hangup).
    Receipt,
    /// A fetch of a call's answer URL for the call's script.
    AnswerFetch,
}

/// One callback the emulator made, and what it got back.
#[derive(Clone, Debug, Serialize)]
pub struct SentCallback {
    /// Receipt or answer fetch.
    pub kind: CallbackKind,
    /// The URL called.
    pub url: String,
    /// The provider's id of the message or call it is about.
    pub message_id: String,
    /// The body sent.
    pub request_body: String,
    /// The HTTP status answered; `None` when the request failed.
    pub status: Option<u16>,
    /// The answer's body (bounded), such as a call's XML.
    pub response_body: String,
    /// The transport error, when the request failed.
    pub error: Option<String>,
}

/// One callback to make.
#[derive(Clone, Debug)]
pub(crate) struct Outgoing {
    pub(crate) kind: CallbackKind,
    pub(crate) url: String,
    pub(crate) message_id: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) content_type: &'static str,
    pub(crate) body: String,
}

/// An [`Api`] whose emulator makes its callbacks through a [`CallbackLog`]: its emulator gets
/// the receipt methods below, and serves `/__sim/receipts` and `/__sim/callbacks` when the
/// provider's routes merge this module's `routes`.
pub trait CallbackApi: Api {
    /// The provider's log.
    fn callback_log(&self) -> &Arc<CallbackLog>;
}

/// Wires an emulator whose API makes callbacks, the same way for every provider: its own
/// routes (`$routes(emulator)`) plus the `/__sim/receipts` and `/__sim/callbacks` controls,
/// `clear` forgetting the callbacks made, and [`CallbackApi`] over its `callbacks` field.
///
/// The braced form also declares the usual API struct, an account and its callback log
/// starting with `receipts`, and its [`AccountApi`](crate::emulator::AccountApi) impl; an
/// emulator that keeps more state declares its own struct and uses the short form.
macro_rules! callback_emulator {
    (
        $(#[$meta:meta])*
        pub struct $api:ident { account: $account:ty, receipts: $receipts:expr $(,)? }
        received = $received:ty, routes = $routes:path $(;)?
    ) => {
        $(#[$meta])*
        #[derive(Debug)]
        pub struct $api {
            account: $account,
            callbacks: std::sync::Arc<crate::callbacks::CallbackLog>,
        }

        impl crate::emulator::AccountApi for $api {
            type Account = $account;

            fn for_account(account: $account) -> $api {
                $api {
                    account,
                    callbacks: std::sync::Arc::new(crate::callbacks::CallbackLog::new($receipts)),
                }
            }

            fn account(&self) -> &$account {
                &self.account
            }
        }

        crate::callbacks::callback_emulator!($api, received = $received, routes = $routes);
    };
    ($api:ty, received = $received:ty, routes = $routes:path) => {
        impl crate::emulator::Api for $api {
            type Received = $received;

            fn routes(emulator: &crate::emulator::Emulator<$api>) -> axum::Router {
                $routes(emulator.clone()).merge(crate::callbacks::routes(emulator))
            }

            fn clear(&self) {
                self.callbacks.clear();
            }
        }

        impl crate::callbacks::CallbackApi for $api {
            fn callback_log(&self) -> &std::sync::Arc<crate::callbacks::CallbackLog> {
                &self.callbacks
            }
        }
    };
}

pub(crate) use callback_emulator;

impl<A: CallbackApi> Emulator<A> {
    /// Sets what happens to later sends and what their receipts say.
    ///
    /// # Panics
    /// If [`Receipts::check`] refuses them.
    pub fn set_receipts(&self, receipts: Receipts) {
        if let Err(reason) = receipts.check() {
            panic!("invalid receipt policy: {reason}");
        }
        self.api().callback_log().set_receipts(receipts);
    }

    /// The receipt policy in force.
    #[must_use]
    pub fn receipts(&self) -> Receipts {
        self.api().callback_log().receipts()
    }

    /// Every callback made so far, with the answer it got.
    #[must_use]
    pub fn callbacks(&self) -> Vec<SentCallback> {
        self.api().callback_log().sent()
    }

    /// Waits until `n` callbacks were made (and answered or failed); bound it with a timeout.
    pub async fn wait_for_callbacks(&self, n: usize) -> Vec<SentCallback> {
        self.api().callback_log().wait_for(n).await
    }

    /// What reached the phones: one record per send whose fate was decided, oldest first.
    #[must_use]
    pub fn handsets(&self) -> Vec<Handset> {
        self.api().callback_log().handsets.snapshot()
    }

    /// Waits until the fates of `n` sends were decided since the emulator started (clearing
    /// does not reset the count); bound it with a timeout.
    pub async fn wait_for_handsets(&self, n: usize) -> Vec<Handset> {
        let log = self.api().callback_log();
        log.handsets.wait_for_pushed(n).await;
        log.handsets.snapshot()
    }

    pub(crate) fn callback_log(&self) -> Arc<CallbackLog> {
        Arc::clone(self.api().callback_log())
    }
}

/// The receipt policy, the client that calls out, and the record of callbacks made: opaque
/// outside this crate, public only because [`CallbackApi`] names it.
#[derive(Debug)]
pub struct CallbackLog {
    /// A std mutex: held only to copy or replace the policy, or to draw one send's fate.
    policy: Mutex<Policy>,
    handsets: Journal<Handset>,
    client: reqwest::Client,
    journal: Journal<SentCallback>,
    /// Counts callbacks completed, so waiters wake without polling.
    completed: watch::Sender<usize>,
}

/// The policy in force and the RNG its draws come from.
#[derive(Debug)]
struct Policy {
    receipts: Receipts,
    rng: StdRng,
}

/// The seed of the draws until a policy names one.
const DEFAULT_SEED: u64 = 0x5eed;

impl CallbackLog {
    /// A log whose receipts start as `receipts`.
    pub(crate) fn new(receipts: Receipts) -> CallbackLog {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        let rng = StdRng::seed_from_u64(receipts.seed.unwrap_or(DEFAULT_SEED));
        CallbackLog {
            policy: Mutex::new(Policy { receipts, rng }),
            handsets: Journal::new(),
            client,
            journal: Journal::new(),
            completed: watch::Sender::new(0),
        }
    }

    pub(crate) fn set_receipts(&self, receipts: Receipts) {
        let mut policy = self.policy();
        if let Some(seed) = receipts.seed {
            policy.rng = StdRng::seed_from_u64(seed);
        }
        policy.receipts = receipts;
    }

    pub(crate) fn receipts(&self) -> Receipts {
        self.policy().receipts.clone()
    }

    fn policy(&self) -> MutexGuard<'_, Policy> {
        // Every section leaves the policy whole, so a poisoned lock is still consistent.
        self.policy.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Decides the fate of the accepted send `message_id` to `to` (the number as the send
    /// named it, when it has one), journals what reached the handset, and answers what the
    /// provider module renders. Call it once per accepted send that asked for a receipt.
    pub(crate) fn decide(&self, message_id: &str, to: Option<&str>) -> Decision {
        self.decide_as(message_id, to, Reporting::Asked)
    }

    /// [`CallbackLog::decide`] for an accepted send that asked for no receipt (no callback URL,
    /// or reports turned off): the phone still gets the message or not, as the policy says, and
    /// the journal says so; the answer reports nothing ([`ReceiptOutcome::None`]). Call it once
    /// per such send.
    pub(crate) fn decide_unreported(&self, message_id: &str, to: Option<&str>) -> Decision {
        self.decide_as(message_id, to, Reporting::NotAsked)
    }

    fn decide_as(&self, message_id: &str, to: Option<&str>, reporting: Reporting) -> Decision {
        let country = to.and_then(crate::country::of_number);
        // Drawn the same way whether or not a receipt was asked for, so which sends ask does
        // not change the fates of the others under a seed.
        let (mut decision, mut receipt, mut lying) = {
            let mut policy = self.policy();
            let Policy { receipts, rng } = &mut *policy;
            draw(receipts, rng, country.as_deref())
        };
        if reporting == Reporting::NotAsked {
            decision.report = ReceiptOutcome::None;
            receipt = HandsetReceipt::None;
            lying = false;
        }
        self.handsets.push(Handset {
            message_id: message_id.to_owned(),
            country,
            delivered: decision.delivered,
            receipt,
            lying,
        });
        decision
    }

    pub(crate) fn clear_handsets(&self) {
        self.handsets.clear();
    }

    pub(crate) fn sent(&self) -> Vec<SentCallback> {
        self.journal.snapshot()
    }

    pub(crate) fn clear(&self) {
        self.journal.clear();
        self.handsets.clear();
    }

    /// Waits until at least `n` callbacks completed since the emulator started; returns the
    /// record. Bound it with a timeout in tests.
    pub(crate) async fn wait_for(&self, n: usize) -> Vec<SentCallback> {
        let mut completed = self.completed.subscribe();
        // The sender lives as long as `self`, so `wait_for` cannot fail while we borrow it.
        if completed.wait_for(|count| *count >= n).await.is_err() {
            tracing::warn!("emulator callback counter closed");
        }
        self.sent()
    }

    /// Makes `outgoing` now and records it.
    pub(crate) async fn call(&self, outgoing: Outgoing) -> SentCallback {
        let mut request = self
            .client
            .post(&outgoing.url)
            .header(reqwest::header::CONTENT_TYPE, outgoing.content_type)
            .body(outgoing.body.clone());
        for (name, value) in &outgoing.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let (status, response_body, error) = match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                match response.bytes().await {
                    Ok(bytes) => {
                        let kept = &bytes[..bytes.len().min(MAX_ANSWER_BYTES)];
                        (Some(status), String::from_utf8_lossy(kept).into_owned(), None)
                    }
                    Err(error) => (Some(status), String::new(), Some(error.to_string())),
                }
            }
            Err(error) => (None, String::new(), Some(error.to_string())),
        };
        if let Some(error) = &error {
            tracing::debug!(url = %outgoing.url, %error, "emulator callback failed");
        }
        let sent = SentCallback {
            kind: outgoing.kind,
            url: outgoing.url,
            message_id: outgoing.message_id,
            request_body: outgoing.body,
            status,
            response_body,
            error,
        };
        self.journal.push(sent.clone());
        self.completed.send_modify(|count| *count += 1);
        sent
    }

    /// Makes `outgoing` in order from a task of its own, after `delay` (the [`Decision`]'s): the
    /// provider's answer to the send is built first, as the real provider answers before it
    /// reports, and a test awaits the record instead of sleeping.
    pub(crate) fn schedule(self: &Arc<Self>, outgoing: Vec<Outgoing>, delay: Duration) {
        if outgoing.is_empty() {
            return;
        }
        let log = Arc::clone(self);
        tokio::spawn(async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            for outgoing in outgoing {
                log.call(outgoing).await;
            }
        });
    }
}

/// One send's fate under `receipts`: the decision, what the handset journal says was reported,
/// and whether the receipt lies.
fn draw(
    receipts: &Receipts,
    rng: &mut StdRng,
    country: Option<&str>,
) -> (Decision, HandsetReceipt, bool) {
    let Some(rule) = receipts.delivery.iter().find(|rule| rule.matches(country)) else {
        let delivered = !matches!(receipts.outcome, ReceiptOutcome::Undelivered { .. });
        let receipt = match &receipts.outcome {
            ReceiptOutcome::None => HandsetReceipt::None,
            ReceiptOutcome::Delivered => HandsetReceipt::Delivered,
            ReceiptOutcome::Undelivered { code } => {
                HandsetReceipt::Undelivered { code: code.clone() }
            }
        };
        let delay = Duration::from_millis(receipts.delay_ms);
        return (Decision { report: receipts.outcome.clone(), delivered, delay }, receipt, false);
    };
    let delivered = chance(rng, rule.delivered_percent);
    let mut lying = false;
    let mut report = ReceiptOutcome::Delivered;
    if !delivered {
        lying = chance(rng, rule.lying_percent);
        if !lying {
            let code = rule.codes.choose(rng).cloned().unwrap_or_default();
            report = ReceiptOutcome::Undelivered { code };
        }
    }
    let lost = chance(rng, rule.lost_percent);
    let receipt = match (&report, lost) {
        (_, true) => HandsetReceipt::Lost,
        (ReceiptOutcome::Undelivered { code }, false) => {
            HandsetReceipt::Undelivered { code: code.clone() }
        }
        _ => HandsetReceipt::Delivered,
    };
    if lost {
        report = ReceiptOutcome::None;
    }
    let delay = Duration::from_millis(rule.receipt_delay_ms.unwrap_or(receipts.delay_ms));
    (Decision { report, delivered, delay }, receipt, lying)
}

/// True with probability `percent` / 100: never at 0, always at 100.
fn chance(rng: &mut StdRng, percent: f64) -> bool {
    rng.random::<f64>() * 100.0 < percent
}

/// `/__sim/receipts` (GET, PUT [`Receipts`]), `/__sim/callbacks` and `/__sim/handsets` (GET,
/// DELETE).
pub(crate) fn routes<A: CallbackApi>(emulator: &Emulator<A>) -> Router {
    Router::new()
        .route("/__sim/receipts", get(get_receipts).put(put_receipts))
        .route("/__sim/handsets", get(get_handsets).delete(delete_handsets))
        .route("/__sim/callbacks", get(get_callbacks).delete(delete_callbacks))
        .with_state(emulator.callback_log())
}

async fn get_receipts(State(log): State<Arc<CallbackLog>>) -> Json<Receipts> {
    Json(log.receipts())
}

async fn put_receipts(
    State(log): State<Arc<CallbackLog>>,
    Json(receipts): Json<Receipts>,
) -> Response {
    if let Err(reason) = receipts.check() {
        return (StatusCode::BAD_REQUEST, reason).into_response();
    }
    log.set_receipts(receipts);
    Json(log.receipts()).into_response()
}

async fn get_handsets(State(log): State<Arc<CallbackLog>>) -> Json<Vec<Handset>> {
    Json(log.handsets.snapshot())
}

async fn delete_handsets(State(log): State<Arc<CallbackLog>>) -> StatusCode {
    log.clear_handsets();
    StatusCode::NO_CONTENT
}

async fn get_callbacks(State(log): State<Arc<CallbackLog>>) -> Json<Vec<SentCallback>> {
    Json(log.sent())
}

async fn delete_callbacks(State(log): State<Arc<CallbackLog>>) -> StatusCode {
    log.clear();
    StatusCode::NO_CONTENT
}

/// RFC 3339 UTC with milliseconds, as providers stamp their receipts.
pub(crate) fn rfc3339_now() -> String {
    time::OffsetDateTime::from(SystemTime::now())
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipts_json_shape() {
        let receipts: Receipts =
            serde_json::from_str(r#"{"outcome":{"kind":"undelivered","code":"211"},"delay_ms":5}"#)
                .unwrap();
        assert_eq!(receipts, Receipts::undelivered(211).with_delay(Duration::from_millis(5)));
        assert_eq!(serde_json::from_str::<Receipts>("{}").unwrap(), Receipts::none());
        assert!(serde_json::from_str::<Receipts>(r#"{"delay":5}"#).is_err());
    }
}

#[cfg(test)]
mod delivery_tests {
    use super::*;

    #[test]
    fn parses_country_rules_with_codes_as_numbers_or_words() {
        let receipts: Receipts = serde_json::from_str(
            r#"{"delivery":[{"countries":["GB"],"delivered_percent":0,"codes":[30007,"busy"],
                "receipt_delay_ms":20,"lost_percent":5,"lying_percent":10}],"seed":7}"#,
        )
        .unwrap();
        let rule = CountryDelivery::to(&["GB"])
            .delivered(0.0, &["30007", "busy"])
            .with_delay(Duration::from_millis(20))
            .lost(5.0)
            .lying(10.0);
        assert_eq!(receipts, Receipts::none().with_rule(rule).with_seed(7));
        assert_eq!(receipts.check(), Ok(()));
        let rule: CountryDelivery = serde_json::from_str(r#"{"countries":["*"]}"#).unwrap();
        assert_eq!(rule, CountryDelivery::to(&["*"]), "delivered_percent defaults to 100");
        // The old shape still round-trips without the new fields.
        let json = serde_json::to_value(Receipts::delivered()).unwrap();
        assert_eq!(json, serde_json::json!({"outcome": {"kind": "delivered"}, "delay_ms": 0}));
    }

    #[test]
    fn check_names_the_field_at_fault() {
        let refused = |rule: CountryDelivery| {
            Receipts::delivered().with_rule(CountryDelivery::to(&["US"])).with_rule(rule).check()
        };
        let reason = refused(CountryDelivery::to(&["GB"]).delivered(150.0, &["1"])).unwrap_err();
        assert!(reason.starts_with("delivery[1].delivered_percent:"), "{reason}");
        let reason = refused(CountryDelivery::to(&["GB"]).delivered(50.0, &[])).unwrap_err();
        assert!(reason.starts_with("delivery[1].codes:"), "{reason}");
        let reason = refused(CountryDelivery::to(&["GB"]).lost(-1.0)).unwrap_err();
        assert!(reason.starts_with("delivery[1].lost_percent:"), "{reason}");
        let reason = refused(CountryDelivery::to(&["GB"]).lying(100.5)).unwrap_err();
        assert!(reason.starts_with("delivery[1].lying_percent:"), "{reason}");
        let reason = refused(CountryDelivery::to(&[])).unwrap_err();
        assert!(reason.starts_with("delivery[1].countries:"), "{reason}");
        let reason = refused(CountryDelivery::to(&["GBR"])).unwrap_err();
        assert!(reason.starts_with("delivery[1].countries:"), "{reason}");
        assert_eq!(refused(CountryDelivery::to(&["gb", "*"]).delivered(100.0, &[])), Ok(()));
    }

    fn fates(receipts: Receipts, to: &str, n: usize) -> Vec<Handset> {
        let log = CallbackLog::new(receipts);
        (0..n).map(|i| log.decide(&format!("m{i}"), Some(to))).for_each(drop);
        log.handsets.snapshot()
    }

    #[test]
    fn the_first_matching_rule_applies_and_unmatched_sends_keep_the_outcome() {
        let receipts = Receipts::undelivered(30003)
            .with_rule(CountryDelivery::to(&["GB"]).delivered(0.0, &["30007"]))
            .with_rule(CountryDelivery::to(&["*"]).lost(100.0));
        let log = CallbackLog::new(receipts.clone());
        let gb = log.decide("a", Some("+447400123456"));
        assert_eq!(gb.report, ReceiptOutcome::Undelivered { code: "30007".into() });
        assert!(!gb.delivered);
        let us = log.decide("b", Some("+14155550100"));
        assert_eq!((us.report, us.delivered), (ReceiptOutcome::None, true), "lost by `*`");
        let unknown = log.decide("c", Some("alice"));
        assert_eq!(unknown.report, ReceiptOutcome::None, "an unknown country matches `*`");
        let only_gb = Receipts { delivery: receipts.delivery[..1].to_vec(), ..receipts };
        let log = CallbackLog::new(only_gb.with_delay(Duration::from_millis(9)));
        let fallback = log.decide("d", None);
        let expected = ReceiptOutcome::Undelivered { code: "30003".into() };
        assert_eq!((fallback.report, fallback.delay), (expected, Duration::from_millis(9)));
        let journal = log.handsets.snapshot();
        assert_eq!(journal[0].country, None);
        assert!(!journal[0].delivered);
    }

    #[test]
    fn shares_over_many_draws_match_the_rule() {
        let rule = CountryDelivery::to(&["*"]).delivered(70.0, &["1", "2"]).lost(10.0).lying(50.0);
        let handsets = fates(Receipts::none().with_rule(rule).with_seed(42), "+447400123456", 1000);
        let count = |keep: &dyn Fn(&Handset) -> bool| handsets.iter().filter(|h| keep(h)).count();
        let delivered = count(&|h| h.delivered);
        let lost = count(&|h| h.receipt == HandsetReceipt::Lost);
        let lying = count(&|h| h.lying);
        let undelivered = 1000 - delivered;
        // Binomial standard deviations are about 14 (delivered), 9 (lost) and 8 (lying of ~300):
        // the bounds are over 5 of them wide, and the seed is fixed, so this cannot flake.
        assert!((630..=770).contains(&delivered), "delivered {delivered}");
        assert!((55..=145).contains(&lost), "lost {lost}");
        assert!(lying * 100 >= undelivered * 35 && lying * 100 <= undelivered * 65, "{lying}");
        assert!(handsets.iter().all(|h| !h.lying || !h.delivered), "only the undelivered lie");
        let codes: Vec<_> = handsets
            .iter()
            .filter_map(|h| match &h.receipt {
                HandsetReceipt::Undelivered { code } => Some(code.as_str()),
                _ => None,
            })
            .collect();
        assert!(codes.contains(&"1") && codes.contains(&"2"), "both codes are drawn");
        assert!(handsets.iter().all(|h| h.country.as_deref() == Some("GB")));
    }

    #[test]
    fn the_same_seed_gives_the_same_fates() {
        let policy = |seed| {
            Receipts::none()
                .with_rule(CountryDelivery::to(&["*"]).delivered(50.0, &["1", "2"]).lost(20.0))
                .with_seed(seed)
        };
        let first = fates(policy(3), "+14155550100", 200);
        assert_eq!(first, fates(policy(3), "+14155550100", 200));
        assert_ne!(first, fates(policy(4), "+14155550100", 200));
        // Re-applying a seeded policy restarts the sequence.
        let log = CallbackLog::new(policy(3));
        let once: Vec<_> = (0..20).map(|i| log.decide(&format!("m{i}"), None)).collect();
        log.set_receipts(policy(3));
        let again: Vec<_> = (0..20).map(|i| log.decide(&format!("m{i}"), None)).collect();
        assert_eq!(once, again);
    }
}
