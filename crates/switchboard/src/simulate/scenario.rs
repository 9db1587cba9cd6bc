//! The scenario file: the traffic, the emulated providers, what goes wrong when, and the
//! switchboard configuration under test.
//!
//! A scenario is data so that an operator can replay their own week (their country mix, their
//! providers' latencies and prices, the outage they had) without writing code. The raw structs
//! are what serde reads; [`Scenario::try_new`] validates them in one step and names the
//! offending key. The `[switchboard]` table is a switchboard configuration file as an operator
//! writes it, minus what the simulator supplies: listeners, Okta's secret and the provider
//! accounts' credentials (each provider becomes a `kind = "twilio"` placeholder whose adapter the
//! simulator swaps for an emulated one of the same id; `timeout_ms` and other keys given under
//! `[switchboard.providers.ID]` are kept).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use rand::Rng;
use serde::{Deserialize, Serialize};
use switchboard_core::{Channel, Country, ErrorClass};

/// Okta's hook secret in every simulated request.
pub(crate) const OKTA_SECRET: &str = "simulator-okta-hook-secret";

/// Connection refused comes back at once.
const REFUSED_AFTER: Duration = Duration::from_millis(3);

/// The scenarios shipped in `benches/scenarios/`, by name, compiled in so `switchboard simulate
/// NAME` works from any directory.
pub const SHIPPED: &[(&str, &str)] = &[
    ("all-healthy", include_str!("../../../../benches/scenarios/all-healthy.toml")),
    ("primary-outage", include_str!("../../../../benches/scenarios/primary-outage.toml")),
    ("brownout", include_str!("../../../../benches/scenarios/brownout.toml")),
    ("flapping", include_str!("../../../../benches/scenarios/flapping.toml")),
    ("rate-limit-storm", include_str!("../../../../benches/scenarios/rate-limit-storm.toml")),
    ("regional-outage", include_str!("../../../../benches/scenarios/regional-outage.toml")),
    ("price-change", include_str!("../../../../benches/scenarios/price-change.toml")),
];

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
}

/// `[providers.ID]`: how one emulated provider behaves when nothing is wrong.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmulatedProviderConfig {
    /// Accept latency of the API call (log-normal, fitted to a median and a 99th percentile).
    pub latency_ms: LatencyConfig,
    /// Share of sends answered HTTP 503 on a good day.
    #[serde(default)]
    pub error_share: f64,
    /// What one accepted message costs, in the core's `[prices]` shape.
    pub prices: PricesConfig,
}

/// A log-normal latency.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatencyConfig {
    /// Median, in milliseconds.
    pub median: f64,
    /// 99th percentile, in milliseconds; at least the median.
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
}

fn default_targets() -> TargetsConfig {
    TargetsConfig {
        within_deadline_pct: None,
        duplicates_per_1000: None,
        beat_priority: false,
        cost_within_pct_of_cheapest: None,
    }
}

/// A validated scenario.
#[derive(Debug)]
pub struct Scenario {
    /// Short name.
    pub name: String,
    /// What happens.
    pub description: String,
    /// How long the OTPs take to arrive.
    pub duration: Duration,
    /// Destination countries with cumulative weights in (0, 1].
    pub(crate) countries: Vec<(Country, f64)>,
    /// Share of voice codes.
    pub(crate) voice_share: f64,
    /// Emulated providers, in id order; a provider's index is its position.
    pub(crate) providers: Vec<EmulatedProvider>,
    pub(crate) faults: Vec<Fault>,
    /// Price changes, in time order.
    pub(crate) price_changes: Vec<PriceChange>,
    /// The targets.
    pub targets: TargetsConfig,
    /// The switchboard configuration, completed with the simulator's placeholders.
    pub(crate) switchboard: toml::Table,
}

/// One emulated provider.
#[derive(Debug)]
pub(crate) struct EmulatedProvider {
    pub(crate) id: String,
    /// `mu` and `sigma` of the log-normal latency, in milliseconds.
    latency: (f64, f64),
    error_share: f64,
    pub(crate) prices: Prices,
}

/// Validated prices of one provider.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Prices {
    written: PricesConfig,
    default: PriceEntry,
    countries: BTreeMap<Country, PriceEntry>,
}

#[derive(Debug)]
pub(crate) struct Fault {
    provider: usize,
    from: Duration,
    until: Duration,
    countries: Option<Vec<Country>>,
    effect: Effect,
}

#[derive(Debug)]
pub(crate) struct PriceChange {
    pub(crate) provider: usize,
    pub(crate) at: Duration,
    pub(crate) prices: Prices,
}

/// What an emulated provider does with one send.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Reply {
    /// Accepts the message this long after the request.
    Accept { after: Duration },
    /// Refuses this long after the request.
    Refuse { after: Duration, class: ErrorClass, retry_after: Option<Duration> },
    /// Never answers, and does not send.
    Hang,
}

impl Scenario {
    /// Parses and validates scenario TOML.
    pub fn parse(text: &str) -> anyhow::Result<Scenario> {
        let file: ScenarioFile = toml::from_str(text).context("scenario file")?;
        Scenario::try_new(file)
    }

    /// A shipped scenario by name, or a scenario file by path.
    pub fn load(name_or_path: &str) -> anyhow::Result<Scenario> {
        if let Some((_, text)) = SHIPPED.iter().find(|(name, _)| *name == name_or_path) {
            return Scenario::parse(text)
                .with_context(|| format!("shipped scenario {name_or_path}"));
        }
        let text = std::fs::read_to_string(name_or_path).with_context(|| {
            let names: Vec<&str> = SHIPPED.iter().map(|(name, _)| *name).collect();
            format!(
                "{name_or_path} is neither a shipped scenario ({}) nor a readable file",
                names.join(", ")
            )
        })?;
        Scenario::parse(&text).with_context(|| format!("scenario {name_or_path}"))
    }

    /// Validates a parsed file, naming the offending key.
    pub fn try_new(file: ScenarioFile) -> anyhow::Result<Scenario> {
        ensure!(file.duration_s >= 1, "duration_s: must be at least 1");
        let countries = validate_countries(&file.traffic.countries)?;
        ensure!(
            (0.0..=1.0).contains(&file.traffic.voice_share),
            "traffic.voice_share: must be between 0 and 1"
        );
        ensure!(!file.providers.is_empty(), "providers: emulate at least one provider");
        let mut providers = Vec::with_capacity(file.providers.len());
        for (id, config) in &file.providers {
            let key = format!("providers.{id}");
            let LatencyConfig { median, p99 } = config.latency_ms;
            ensure!(
                median > 0.0 && p99 >= median,
                "{key}.latency_ms: median must be positive and p99 at least the median"
            );
            ensure!(
                (0.0..=1.0).contains(&config.error_share),
                "{key}.error_share: must be between 0 and 1"
            );
            // ln(p99 / median) = 2.326 sigma for a log-normal.
            let sigma = (p99 / median).ln() / 2.326_348;
            providers.push(EmulatedProvider {
                id: id.clone(),
                latency: (median.ln(), sigma),
                error_share: config.error_share,
                prices: Prices::try_new(&format!("{key}.prices"), &config.prices)?,
            });
        }
        let index_of = |key: &str, id: &str| {
            providers
                .iter()
                .position(|p| p.id == id)
                .with_context(|| format!("{key}.provider: {id:?} is not under [providers]"))
        };
        let duration = Duration::from_secs(file.duration_s);
        let mut faults = Vec::with_capacity(file.faults.len());
        for (position, fault) in file.faults.iter().enumerate() {
            let key = format!("faults[{position}]");
            let provider = index_of(&key, &fault.provider)?;
            let until_s = fault.until_s.unwrap_or(file.duration_s as f64 * 10.0);
            ensure!(
                fault.from_s >= 0.0 && until_s > fault.from_s,
                "{key}: from_s must be at least 0 and before until_s"
            );
            let countries = match &fault.countries {
                None => None,
                Some(list) => Some(
                    list.iter()
                        .map(|text| {
                            Country::parse(text).with_context(|| {
                                format!("{key}.countries: {text:?} is not an ISO alpha-2 code")
                            })
                        })
                        .collect::<anyhow::Result<Vec<_>>>()?,
                ),
            };
            validate_effect(&key, &fault.effect)?;
            faults.push(Fault {
                provider,
                from: Duration::from_secs_f64(fault.from_s),
                until: Duration::from_secs_f64(until_s),
                countries,
                effect: fault.effect,
            });
        }
        let mut price_changes = Vec::with_capacity(file.price_changes.len());
        for (position, change) in file.price_changes.iter().enumerate() {
            let key = format!("price_changes[{position}]");
            ensure!(change.at_s >= 0.0, "{key}.at_s: must be at least 0");
            price_changes.push(PriceChange {
                provider: index_of(&key, &change.provider)?,
                at: Duration::from_secs_f64(change.at_s),
                prices: Prices::try_new(&format!("{key}.prices"), &change.prices)?,
            });
        }
        price_changes.sort_by_key(|change| change.at);
        let switchboard = complete_switchboard(file.switchboard, &providers)?;
        Ok(Scenario {
            name: file.name,
            description: file.description,
            duration,
            countries,
            voice_share: file.traffic.voice_share,
            providers,
            faults,
            price_changes,
            targets: file.targets,
            switchboard,
        })
    }

    /// The emulated providers' ids, in index order.
    pub fn provider_ids(&self) -> impl Iterator<Item = &str> {
        self.providers.iter().map(|p| p.id.as_str())
    }

    /// Draws a destination country and channel.
    pub(crate) fn draw_destination(&self, rng: &mut impl Rng) -> (Country, Channel) {
        let u: f64 = rng.random();
        let country = self
            .countries
            .iter()
            .find(|(_, cumulative)| u < *cumulative)
            .or(self.countries.last())
            .map(|(country, _)| *country)
            .expect("validated: at least one country");
        let channel = if rng.random_bool(self.voice_share) { Channel::Voice } else { Channel::Sms };
        (country, channel)
    }

    /// What `provider` does with a send made `at` into the run to `country`.
    ///
    /// Always draws the same random numbers in the same order, whatever the state, so a fault
    /// changes only the sends it touches.
    pub(crate) fn reply(
        &self,
        provider: usize,
        at: Duration,
        country: Country,
        rng: &mut impl Rng,
    ) -> Reply {
        let emulated = &self.providers[provider];
        let latency = emulated.sample_latency(rng);
        let u: f64 = rng.random();
        let healthy = || {
            if u < emulated.error_share {
                Reply::Refuse {
                    after: latency / 2,
                    class: ErrorClass::Transient,
                    retry_after: None,
                }
            } else {
                Reply::Accept { after: latency }
            }
        };
        let fault = self.faults.iter().find(|fault| {
            fault.provider == provider
                && (fault.from..fault.until).contains(&at)
                && fault.countries.as_ref().is_none_or(|list| list.contains(&country))
        });
        let Some(fault) = fault else { return healthy() };
        let refused =
            Reply::Refuse { after: REFUSED_AFTER, class: ErrorClass::Transient, retry_after: None };
        match fault.effect {
            Effect::Refused => refused,
            Effect::Blackhole => Reply::Hang,
            Effect::ServerError { share } if u < share => Reply::Refuse {
                after: latency / 2,
                class: ErrorClass::Transient,
                retry_after: None,
            },
            Effect::ServerError { .. } => Reply::Accept { after: latency },
            Effect::Brownout { hang_share, .. } if u < hang_share => Reply::Hang,
            Effect::Brownout { latency_factor, .. } => {
                Reply::Accept { after: latency.mul_f64(latency_factor) }
            }
            Effect::RateLimit { share, retry_after_s } if u < share => Reply::Refuse {
                after: latency / 3,
                class: ErrorClass::RateLimited,
                retry_after: Some(Duration::from_secs(retry_after_s)),
            },
            Effect::RateLimit { .. } => Reply::Accept { after: latency },
            Effect::Flapping { period_s, down_s, failure } => {
                let into_cycle = (at - fault.from).as_secs_f64() % period_s;
                match failure {
                    _ if into_cycle >= down_s => healthy(),
                    DownFailure::Refused => refused,
                    DownFailure::Blackhole => Reply::Hang,
                }
            }
        }
    }

    /// The switchboard configuration file in force `at` into the run: the scenario's, with
    /// `[prices]` written from the emulated providers' prices at that time (the operator keeps
    /// the price table true, so cost ranking sees what billing will charge).
    pub(crate) fn switchboard_config(&self, at: Duration) -> toml::Table {
        let mut table = self.switchboard.clone();
        let prices: toml::Table = self
            .providers
            .iter()
            .zip(self.prices_at(at))
            .map(|(provider, prices)| {
                let written = toml::Value::try_from(&prices.written)
                    .expect("prices are plain numbers and tables");
                (provider.id.clone(), written)
            })
            .collect();
        table.insert("prices".into(), toml::Value::Table(prices));
        table
    }

    /// The prices of every provider in force `at` into the run.
    pub(crate) fn prices_at(&self, at: Duration) -> Vec<&Prices> {
        let mut prices: Vec<&Prices> = self.providers.iter().map(|p| &p.prices).collect();
        for change in self.price_changes.iter().take_while(|change| change.at <= at) {
            prices[change.provider] = &change.prices;
        }
        prices
    }
}

impl EmulatedProvider {
    fn sample_latency(&self, rng: &mut impl Rng) -> Duration {
        // Box-Muller: two uniforms, one standard normal.
        let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
        let u2: f64 = rng.random();
        let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        let (mu, sigma) = self.latency;
        // Capped at ten minutes: a slower answer is no answer, and Duration must not overflow.
        Duration::from_secs_f64(((mu + sigma * z).exp() / 1000.0).min(600.0))
    }
}

impl Prices {
    fn try_new(key: &str, config: &PricesConfig) -> anyhow::Result<Prices> {
        let check = |key: &str, entry: &PriceEntry| -> anyhow::Result<()> {
            for (field, value) in [("sms", entry.sms), ("voice_minute", entry.voice_minute)] {
                if let Some(value) = value {
                    ensure!(
                        value.is_finite() && (0.0..=1000.0).contains(&value),
                        "{key}.{field}: must be between 0 and 1000"
                    );
                }
            }
            Ok(())
        };
        check(&format!("{key}.default"), &config.default)?;
        ensure!(
            config.default.sms.is_some() && config.default.voice_minute.is_some(),
            "{key}.default: give both sms and voice_minute"
        );
        let mut countries = BTreeMap::new();
        for (code, entry) in &config.countries {
            let entry_key = format!("{key}.countries.{code}");
            let country = Country::parse(code)
                .with_context(|| format!("{entry_key}: not an ISO alpha-2 code"))?;
            check(&entry_key, entry)?;
            countries.insert(country, *entry);
        }
        Ok(Prices { written: config.clone(), default: config.default, countries })
    }

    /// What one accepted message costs.
    pub(crate) fn price(&self, country: Country, channel: Channel) -> f64 {
        let entry = self.countries.get(&country);
        let pick = |entry: &PriceEntry| match channel {
            Channel::Sms => entry.sms,
            Channel::Voice => entry.voice_minute,
        };
        entry.and_then(pick).or_else(|| pick(&self.default)).unwrap_or_default()
    }
}

fn validate_countries(weights: &BTreeMap<String, f64>) -> anyhow::Result<Vec<(Country, f64)>> {
    ensure!(!weights.is_empty(), "traffic.countries: give at least one country");
    let mut total = 0.0;
    for (code, weight) in weights {
        ensure!(
            weight.is_finite() && *weight > 0.0,
            "traffic.countries.{code}: the weight must be positive"
        );
        total += weight;
    }
    let mut cumulative = 0.0;
    weights
        .iter()
        .map(|(code, weight)| {
            let country = Country::parse(code)
                .with_context(|| format!("traffic.countries.{code}: not an ISO alpha-2 code"))?;
            ensure!(
                super::traffic::has_number_plan(country),
                "traffic.countries.{code}: the simulator has no number range for this country"
            );
            cumulative += weight / total;
            Ok((country, cumulative))
        })
        .collect()
}

fn validate_effect(key: &str, effect: &Effect) -> anyhow::Result<()> {
    let share_ok = |share: f64| (0.0..=1.0).contains(&share);
    match *effect {
        Effect::Refused | Effect::Blackhole => {}
        Effect::ServerError { share } => {
            ensure!(share_ok(share), "{key}.effect.share: must be between 0 and 1");
        }
        Effect::Brownout { latency_factor, hang_share } => {
            ensure!(
                latency_factor.is_finite() && latency_factor >= 1.0,
                "{key}.effect.latency_factor: must be at least 1"
            );
            ensure!(share_ok(hang_share), "{key}.effect.hang_share: must be between 0 and 1");
        }
        Effect::RateLimit { share, retry_after_s } => {
            ensure!(share_ok(share), "{key}.effect.share: must be between 0 and 1");
            ensure!(retry_after_s >= 1, "{key}.effect.retry_after_s: must be at least 1");
        }
        Effect::Flapping { period_s, down_s, .. } => {
            ensure!(
                period_s > 0.0 && down_s > 0.0 && down_s < period_s,
                "{key}.effect: need 0 < down_s < period_s"
            );
        }
    }
    Ok(())
}

/// Fills in what the simulator supplies, and refuses what would make the run measure something
/// other than routing.
fn complete_switchboard(
    mut table: toml::Table,
    providers: &[EmulatedProvider],
) -> anyhow::Result<toml::Table> {
    use toml::Value;

    let section = |table: &mut toml::Table, key: &str| -> anyhow::Result<toml::Table> {
        match table.remove(key) {
            None => Ok(toml::Table::new()),
            Some(Value::Table(inner)) => Ok(inner),
            Some(_) => bail!("switchboard.{key}: must be a table"),
        }
    };
    let mut server = section(&mut table, "server")?;
    server.entry("listen").or_insert_with(|| Value::from("127.0.0.1:0"));
    table.insert("server".into(), Value::Table(server));

    let mut okta = section(&mut table, "okta")?;
    okta.entry("auth").or_insert_with(|| {
        let mut auth = toml::Table::new();
        auth.insert("header".into(), Value::from("Authorization"));
        auth.insert("secrets".into(), Value::Array(vec![Value::from(OKTA_SECRET)]));
        Value::Table(auth)
    });
    table.insert("okta".into(), Value::Table(okta));

    let mut logging = section(&mut table, "logging")?;
    // A fixed key: the ledger and guard key on these hashes, and a run must not depend on a
    // random draw.
    logging.entry("phone_hash_key").or_insert_with(|| Value::from("simulator-phone-hash-key"));
    table.insert("logging".into(), Value::Table(logging));

    let guard = section(&mut table, "guard")?;
    let mode = guard.get("mode").and_then(Value::as_str).unwrap_or("monitor");
    ensure!(
        mode == "monitor",
        "switchboard.guard.mode: must be \"monitor\": simulated traffic looks like SMS pumping, and \
         an enforcing guard would measure the guard, not routing"
    );
    let mut guard = guard;
    guard.insert("mode".into(), Value::from("monitor"));
    table.insert("guard".into(), Value::Table(guard));

    ensure!(
        !table.contains_key("prices"),
        "switchboard.prices: give prices under [providers.ID.prices]; the simulator writes \
         switchboard's [prices] from them, so routing and billing agree"
    );

    let mut accounts = section(&mut table, "providers")?;
    if let Some(unknown) = accounts.keys().find(|id| !providers.iter().any(|p| &p.id == *id)) {
        bail!(
            "switchboard.providers.{unknown}: not an emulated provider (add [providers.{unknown}])"
        );
    }
    for (index, provider) in providers.iter().enumerate() {
        let mut account = match accounts.remove(&provider.id) {
            None => toml::Table::new(),
            Some(Value::Table(inner)) => inner,
            Some(_) => bail!("switchboard.providers.{}: must be a table", provider.id),
        };
        let kind = account.entry("kind").or_insert_with(|| Value::from("twilio"));
        ensure!(
            kind.as_str() == Some("twilio"),
            "switchboard.providers.{}.kind: the simulator's placeholders are \"twilio\"",
            provider.id
        );
        account.entry("account_sid").or_insert_with(|| Value::from(format!("AC{index:032x}")));
        account.entry("auth_token").or_insert_with(|| Value::from("simulator-token"));
        account.entry("from").or_insert_with(|| Value::from("+15005550006"));
        account.entry("base_url").or_insert_with(|| Value::from("http://127.0.0.1:9"));
        accounts.insert(provider.id.clone(), Value::Table(account));
    }
    table.insert("providers".into(), Value::Table(accounts));
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_scenario_is_valid() {
        for (name, text) in SHIPPED {
            let scenario = Scenario::parse(text).unwrap_or_else(|e| panic!("{name}: {e:#}"));
            assert_eq!(&scenario.name, name);
        }
    }

    #[test]
    fn faults_touch_only_their_provider_country_and_time() {
        let text = SHIPPED.iter().find(|(name, _)| *name == "regional-outage").unwrap().1;
        let scenario = Scenario::parse(text).unwrap();
        let fault = &scenario.faults[0];
        let affected = fault.countries.as_ref().unwrap()[0];
        let other = scenario.countries.iter().map(|(c, _)| *c).find(|c| *c != affected).unwrap();
        let during = fault.from + Duration::from_secs(1);
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(1);
        let mut replies = |provider, at, country| {
            (0..200)
                .map(|_| scenario.reply(provider, at, country, &mut rng))
                .filter(|reply| matches!(reply, Reply::Accept { .. }))
                .count()
        };
        assert!(replies(fault.provider, during, affected) < 10);
        assert!(replies(fault.provider, during, other) > 190);
        assert!(replies(fault.provider, Duration::ZERO, affected) > 190);
    }

    #[test]
    fn errors_name_the_key() {
        let text = SHIPPED[0].1.replace("voice_share = 0.05", "voice_share = 2.0");
        let error = format!("{:#}", Scenario::parse(&text).unwrap_err());
        assert!(error.contains("traffic.voice_share"), "{error}");
        let enforcing = SHIPPED[0].1.replace("mode = \"monitor\"", "mode = \"enforce\"");
        let error = format!("{:#}", Scenario::parse(&enforcing).unwrap_err());
        assert!(error.contains("switchboard.guard.mode"), "{error}");
    }
}
