//! The scenario file as written: the structs serde reads, before [`Scenario::try_new`]
//! validates them.
//!
//! [`Scenario::try_new`]: super::Scenario::try_new

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The whole file, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioFile {
    /// Short name, shown in the report.
    pub name: String,
    /// One sentence on what happens.
    pub description: String,
    /// Virtual seconds over which the OTPs arrive (a Poisson stream); faults are placed on the
    /// same clock, so fewer OTPs means sparser traffic through the same story.
    pub duration_s: u64,
    /// Where the codes go.
    pub traffic: TrafficConfig,
    /// The emulated providers by id; every id needs one.
    pub providers: BTreeMap<String, EmulatedProviderConfig>,
    /// What goes wrong, and when.
    #[serde(default)]
    pub faults: Vec<FaultConfig>,
    /// Prices that change during the run.
    #[serde(default)]
    pub price_changes: Vec<PriceChangeConfig>,
    /// What happens to accepted messages for a while: a route that filters, receipts that lie
    /// or stop. Outside every phase a provider's `[providers.ID.handsets]` holds.
    #[serde(default)]
    pub handset_phases: Vec<HandsetPhaseConfig>,
    /// The people behind the codes: who enters a code, how fast, and who asks again. Without
    /// it nobody asks again and nothing is entered (no conversions reach switchboard).
    #[serde(default)]
    pub users: Option<UsersConfig>,
    /// What switchboard should achieve here; printed as met or missed, never asserted.
    #[serde(default = "default_targets")]
    pub targets: TargetsConfig,
    /// The switchboard configuration under test.
    pub switchboard: toml::Table,
}

/// `[traffic]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrafficConfig {
    /// Relative weight of each destination country (ISO alpha-2).
    pub countries: BTreeMap<String, f64>,
    /// Share of codes asked for by voice call rather than SMS.
    #[serde(default)]
    pub voice_share: f64,
    /// Windows in which the arrival rate is multiplied (a 9 am sign-in wave). The run still
    /// holds `--otps` OTPs: the base rate is chosen so that the whole run, surges included,
    /// expects that many.
    #[serde(default)]
    pub surges: Vec<SurgeConfig>,
}

/// `[[traffic.surges]]`: the Poisson arrival rate multiplied for a while.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SurgeConfig {
    /// Start, in virtual seconds from the first OTP.
    pub from_s: f64,
    /// End (exclusive), at most `duration_s`.
    pub until_s: f64,
    /// The arrival rate inside the window, as a multiple of the base rate (above 0; below 1 is a
    /// lull).
    pub rate_multiplier: f64,
}

/// `[providers.ID]`: how one emulated provider behaves when nothing is wrong.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmulatedProviderConfig {
    /// Accept latency of the API call (log-normal, fitted to a median and a 99th percentile).
    pub latency_ms: LogNormalConfig,
    /// Share of sends answered HTTP 503 on a good day.
    #[serde(default)]
    pub error_share: f64,
    /// What one accepted message costs, in the core's `[prices]` shape.
    pub prices: PricesConfig,
    /// The account's throughput, in messages per second (a burst of one second's worth, as the
    /// server's own cap allows); none by default.
    #[serde(default)]
    pub max_per_second: Option<u32>,
    /// What the provider does with a send beyond `max_per_second`; `queue` by default.
    #[serde(default)]
    pub over_capacity: Option<OverCapacity>,
    /// What becomes of the messages it accepts, in every country, outside handset phases; by
    /// default every message reaches the phone and its receipt says so within seconds.
    #[serde(default)]
    pub handsets: Option<HandsetsConfig>,
}

/// What becomes of a message after the provider accepted it: whether it reaches the phone, and
/// what the provider's delivery receipt says. Every field is optional: in
/// `[providers.ID.handsets]` a missing one keeps the default, in a `[[handset_phases]]` entry it
/// keeps the provider's own value.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HandsetsConfig {
    /// Share of accepted messages that reach the phone (default 1).
    #[serde(default)]
    pub delivered_share: Option<f64>,
    /// Time from acceptance to the final receipt, in seconds (default median 3, p99 30).
    #[serde(default)]
    pub receipt_delay_s: Option<LogNormalConfig>,
    /// Share of messages whose final receipt never comes (default 0).
    #[serde(default)]
    pub receipts_lost_share: Option<f64>,
    /// Share of the messages that did not reach the phone whose receipt says "delivered" anyway
    /// (a grey route; default 0). The rest say `undelivered_receipt`.
    #[serde(default)]
    pub lying_share: Option<f64>,
    /// What the receipt of a message that did not reach the phone says (default
    /// `unreachable`).
    #[serde(default)]
    pub undelivered_receipt: Option<ReceiptCode>,
}

/// The code an "undelivered" receipt carries.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ReceiptCode {
    /// The carrier filtered the message (Twilio 30007): a number-level verdict, never failed
    /// over, but many of them on one route while its peers deliver are the route's.
    Filtered,
    /// The number does not exist on the network (number-level).
    UnknownSubscriber,
    /// The handset was unreachable (switched off, out of coverage): not the number's fault.
    Unreachable,
}

/// `[[handset_phases]]`: what becomes of one provider's accepted messages for a while.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HandsetPhaseConfig {
    /// Which provider.
    pub provider: String,
    /// Start, in virtual seconds from the first OTP (the send's time decides).
    pub from_s: f64,
    /// End (exclusive); defaults to the end of the run.
    #[serde(default)]
    pub until_s: Option<f64>,
    /// Only messages to these countries (ISO alpha-2); defaults to all.
    #[serde(default)]
    pub countries: Option<Vec<String>>,
    /// What changes; the fields given replace the provider's own. Overlapping phases apply in
    /// file order, a later one's fields replacing an earlier one's.
    pub handsets: HandsetsConfig,
}

/// `[users]`: the people behind the codes.
///
/// A user waits for the code. One that arrives while it is still good (within the OTP's life,
/// and before the user asked again: Okta's new code replaces the old) is entered after
/// `entry_delay_s` by `entered_share` of users (the rest abandon the sign-in), which Okta
/// reports to switchboard's event hook. A user with no code after `patience_s` asks again, up
/// to `max_resends` times: a new telephony hook request, same number and user.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsersConfig {
    /// Share of users whose code arrived who enter it.
    pub entered_share: f64,
    /// From the code reaching the phone to the code entered, in seconds.
    pub entry_delay_s: LogNormalConfig,
    /// How long a user waits for a code before asking again, in seconds.
    pub patience_s: LogNormalConfig,
    /// How many times a user asks again at most (default 2).
    #[serde(default = "default_max_resends")]
    pub max_resends: u32,
}

fn default_max_resends() -> u32 {
    2
}

/// What a provider at its throughput does with one more send.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum OverCapacity {
    /// Accepts the send at once and queues the message: it goes out when its turn comes at
    /// `max_per_second`, so its acceptance (and the handset's code) is that much later.
    Queue,
    /// Answers HTTP 429 with `Retry-After: 1`; nothing is sent.
    Refuse,
}

/// A log-normal delay, in the unit its key names (`latency_ms`, `patience_s`).
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogNormalConfig {
    /// Median.
    pub median: f64,
    /// 99th percentile; at least the median.
    pub p99: f64,
}

/// Prices of one provider: a default and per-country overrides, field by field.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PricesConfig {
    /// Prices for every country without its own entry.
    pub default: PriceEntry,
    /// Per-country overrides (ISO alpha-2).
    #[serde(default)]
    pub countries: BTreeMap<String, PriceEntry>,
}

/// One price entry.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PriceEntry {
    /// One SMS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sms: Option<f64>,
    /// One voice call (billed as one minute).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice_minute: Option<f64>,
}

/// `[[faults]]`: one provider misbehaving for a while.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultConfig {
    /// Which provider.
    pub provider: String,
    /// Start, in virtual seconds from the first OTP.
    pub from_s: f64,
    /// End (exclusive); defaults to the end of the run.
    #[serde(default)]
    pub until_s: Option<f64>,
    /// Only sends to these countries are affected (a regional outage); defaults to all.
    #[serde(default)]
    pub countries: Option<Vec<String>>,
    /// What the provider does meanwhile.
    pub effect: Effect,
}

/// What a faulty provider does.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Effect {
    /// Connection refused: nothing sent, known at once.
    Refused,
    /// Accepts the connection and never answers; nothing is sent.
    Blackhole,
    /// HTTP 503 for a share of sends (nothing sent); the rest behave normally.
    ServerError {
        /// Share of sends refused.
        share: f64,
    },
    /// Slower by a factor; a share of sends hang without being sent. A send slower than the
    /// caller's timeout is still accepted, late: that is how brownouts make duplicates.
    Brownout {
        /// Latency multiplier.
        latency_factor: f64,
        /// Share of sends that hang.
        hang_share: f64,
    },
    /// HTTP 429 with `Retry-After` for a share of sends.
    RateLimit {
        /// Share of sends refused.
        share: f64,
        /// The `Retry-After` given, in seconds.
        retry_after_s: u64,
    },
    /// Down for the first `down_s` of every `period_s`, failing as `failure` says; up otherwise.
    Flapping {
        /// Length of one down-and-up cycle, in seconds.
        period_s: f64,
        /// Down time at the start of each cycle, in seconds.
        down_s: f64,
        /// How it fails while down.
        failure: DownFailure,
    },
}

/// How a flapping provider fails while down.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DownFailure {
    /// Connection refused.
    Refused,
    /// No answer.
    Blackhole,
}

/// `[[price_changes]]`: a provider's prices change; the operator updates `[prices]` the same
/// moment (a reload), so a cost-ranking policy can react.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceChangeConfig {
    /// Which provider.
    pub provider: String,
    /// When, in virtual seconds from the first OTP.
    pub at_s: f64,
    /// The new prices.
    pub prices: PricesConfig,
}

/// `[targets]`: what switchboard should achieve on this scenario.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TargetsConfig {
    /// Least share of OTPs accepted within the deadline, in percent.
    #[serde(default)]
    pub within_deadline_pct: Option<f64>,
    /// Most OTPs accepted more than once, per 1,000.
    #[serde(default)]
    pub duplicates_per_1000: Option<f64>,
    /// Deliver more OTPs within the deadline than static priority failover.
    #[serde(default)]
    pub beat_priority: bool,
    /// Cost per delivered OTP at most this many percent above the cheapest single provider's.
    #[serde(default)]
    pub cost_within_pct_of_cheapest: Option<f64>,
    /// Least share of sign-ins with a code on the phone while it was good, in percent.
    #[serde(default)]
    pub on_phone_pct: Option<f64>,
    /// More sign-ins with a code on the phone than static priority failover.
    #[serde(default)]
    pub beat_priority_on_phone: bool,
    /// The first handset phase's traffic moved away from its provider within this many
    /// seconds of the phase's start.
    #[serde(default)]
    pub moved_away_within_s: Option<f64>,
    /// During the first handset phase, its provider keeps at least this share of its traffic
    /// from before the phase, in percent (a provider that is not at fault is not punished).
    #[serde(default)]
    pub share_kept_pct: Option<f64>,
}

fn default_targets() -> TargetsConfig {
    TargetsConfig {
        within_deadline_pct: None,
        duplicates_per_1000: None,
        beat_priority: false,
        cost_within_pct_of_cheapest: None,
        on_phone_pct: None,
        beat_priority_on_phone: false,
        moved_away_within_s: None,
        share_kept_pct: None,
    }
}
