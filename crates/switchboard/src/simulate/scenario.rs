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
//!
//! Traffic may surge (`[[traffic.surges]]`: the rate multiplied in a window, the run still
//! holding `--otps` OTPs), and an emulated account may have a throughput (`max_per_second`,
//! with `over_capacity` `queue` or `refuse` beyond it). A cap the server should know goes under
//! `[switchboard.providers.ID]` too, as for a real account: it reaches the server's config
//! untouched, while the baselines never read it.
//!
//! What becomes of an accepted message is the scenario's too: `[providers.ID.handsets]` (the share
//! that reaches the phone, when the receipt comes, the share of receipts lost, of lost messages
//! receipted "delivered", and the code the other lost ones carry), changed for a while, per
//! country, by `[[handset_phases]]`. `[users]` puts people behind the codes: who enters a code
//! that arrives and how fast, and who asks again after how long. With `[switchboard.okta.events]`
//! the codes they enter reach the server as Okta's events (the simulator supplies its secret,
//! and a `server.public_base_url` so the server takes receipts at `/callbacks/{id}`).
//!
//! `file` holds the format as written; `model` the validated providers, faults and prices and
//! what a send meets; `handsets` what becomes of an accepted message and the users; this module
//! validates the whole and completes the `[switchboard]` table.

mod file;
mod handsets;
mod lognormal;
mod model;

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use rand::Rng;
use switchboard_core::{Channel, Country};

use self::file::ScenarioFile;
pub(super) use self::file::TargetsConfig;
pub(crate) use self::handsets::{
    Fate, HandsetPhase, Handsets, ReceiptCode, ReceiptState, UserDraw, Users,
};
pub(crate) use self::model::{Capacity, OverCapacity, Reply};
use self::model::{EmulatedProvider, Fault, PriceChange, Prices};

/// Okta's hook secret in every simulated request.
pub(crate) const OKTA_SECRET: &str = "simulator-okta-hook-secret";
/// The event hook's secret the simulator supplies when `[switchboard.okta.events]` gives none.
const OKTA_EVENTS_SECRET: &str = "simulator-okta-events-secret";
/// Where the emulated providers post receipts: the server only needs a public base URL to
/// answer callbacks; the simulator calls its router directly.
const PUBLIC_BASE_URL: &str = "http://127.0.0.1:9";

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
    ("morning-peak", include_str!("../../../../benches/scenarios/morning-peak.toml")),
    ("carrier-filtering", include_str!("../../../../benches/scenarios/carrier-filtering.toml")),
    ("lying-receipts", include_str!("../../../../benches/scenarios/lying-receipts.toml")),
    ("receipts-lost", include_str!("../../../../benches/scenarios/receipts-lost.toml")),
];

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
    /// Surges of the arrival rate, in time order, not overlapping.
    pub(crate) surges: Vec<Surge>,
    /// Emulated providers, in id order; a provider's index is its position.
    pub(crate) providers: Vec<EmulatedProvider>,
    pub(crate) faults: Vec<Fault>,
    /// Price changes, in time order.
    pub(crate) price_changes: Vec<PriceChange>,
    /// What becomes of accepted messages for a while, in file order.
    pub(crate) handset_phases: Vec<HandsetPhase>,
    /// The people behind the codes, if the scenario has them.
    pub(crate) users: Option<Users>,
    /// The targets.
    pub targets: TargetsConfig,
    /// The switchboard configuration, completed with the simulator's placeholders.
    pub(crate) switchboard: toml::Table,
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
        let surges = validate_surges(&file.traffic.surges, file.duration_s)?;
        ensure!(!file.providers.is_empty(), "providers: emulate at least one provider");
        let providers = file
            .providers
            .iter()
            .map(|(id, config)| EmulatedProvider::try_new(id, config))
            .collect::<anyhow::Result<Vec<_>>>()?;
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
            // Past the last arrival, so a fault without an end lasts the whole run.
            let default_until_s = file.duration_s as f64 * 10.0;
            faults.push(Fault::try_new(&key, fault, provider, default_until_s)?);
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
        let mut handset_phases = Vec::with_capacity(file.handset_phases.len());
        for (position, phase) in file.handset_phases.iter().enumerate() {
            let key = format!("handset_phases[{position}]");
            let provider = index_of(&key, &phase.provider)?;
            let default_until_s = file.duration_s as f64 * 10.0;
            handset_phases.push(HandsetPhase::try_new(&key, phase, provider, default_until_s)?);
        }
        let users = file.users.as_ref().map(Users::try_new).transpose()?;
        let switchboard = complete_switchboard(file.switchboard, &providers)?;
        ensure!(
            users.is_some() || events_table(&switchboard).is_none(),
            "switchboard.okta.events: add [users]: without users nobody enters a code, so no \
             event would ever reach it"
        );
        Ok(Scenario {
            name: file.name,
            description: file.description,
            duration,
            countries,
            voice_share: file.traffic.voice_share,
            surges,
            providers,
            faults,
            price_changes,
            handset_phases,
            users,
            targets: file.targets,
            switchboard,
        })
    }

    /// The arrival rate's integral over the run, in base-rate seconds: `duration` plus what the
    /// surges add. The base rate is `otps` over this, so the run expects `otps` arrivals.
    pub(crate) fn base_rate_seconds(&self) -> f64 {
        let extra: f64 = self
            .surges
            .iter()
            .map(|surge| (surge.multiplier - 1.0) * (surge.until - surge.from))
            .sum();
        self.duration.as_secs_f64() + extra
    }

    /// The time, in seconds from the start, by which the rate's integral reaches `s` base-rate
    /// seconds: a Poisson stream at the base rate, mapped through this, has the surges. Without
    /// surges it is `s` itself.
    pub(crate) fn surge_time(&self, s: f64) -> f64 {
        let (mut t, mut integral) = (0.0, 0.0);
        for surge in &self.surges {
            if s <= integral + (surge.from - t) {
                break;
            }
            integral += surge.from - t;
            t = surge.from;
            let inside = surge.multiplier * (surge.until - surge.from);
            if s <= integral + inside {
                return t + (s - integral) / surge.multiplier;
            }
            integral += inside;
            t = surge.until;
        }
        t + (s - integral)
    }

    /// Whether switchboard's two delivery signals are worth running apart: some handset phase
    /// to detect, and Okta's event hook to report conversions.
    pub(crate) fn compares_signals(&self) -> bool {
        !self.handset_phases.is_empty() && self.events_endpoint().is_some()
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

    /// What `provider` does with a send made `at` into the run to `country`: the same random
    /// draws whatever the state, so a fault changes only the sends it touches.
    pub(crate) fn reply(
        &self,
        provider: usize,
        at: Duration,
        country: Country,
        rng: &mut impl Rng,
    ) -> Reply {
        self.providers[provider].reply(provider, &self.faults, at, country, rng)
    }

    /// The fate of a message `provider` accepted, sent `at` into the run to `country`: its
    /// `[providers.ID.handsets]`, changed by every phase that covers it, in file order.
    pub(crate) fn fate(
        &self,
        provider: usize,
        at: Duration,
        country: Country,
        rng: &mut impl Rng,
    ) -> Fate {
        self.handsets_at(provider, at, country).fate(rng)
    }

    /// What becomes of `provider`'s messages sent `at` into the run to `country`.
    pub(crate) fn handsets_at(&self, provider: usize, at: Duration, country: Country) -> Handsets {
        self.handset_phases
            .iter()
            .filter(|phase| phase.covers(provider, at, country))
            .fold(self.providers[provider].handsets, |handsets, phase| handsets.with(phase.changes))
    }

    /// Where and how Okta's event hook posts, when `[switchboard.okta.events]` is configured:
    /// (path, header, secret).
    pub(crate) fn events_endpoint(&self) -> Option<(String, String, String)> {
        let events = events_table(&self.switchboard)?;
        let path = events.get("path").and_then(toml::Value::as_str).unwrap_or("/okta/events");
        let auth = events.get("auth").and_then(toml::Value::as_table);
        let header = auth
            .and_then(|auth| auth.get("header"))
            .and_then(toml::Value::as_str)
            .unwrap_or("Authorization");
        let secret = auth
            .and_then(|auth| auth.get("secrets"))
            .and_then(toml::Value::as_array)
            .and_then(|secrets| secrets.first())
            .and_then(toml::Value::as_str)
            .unwrap_or(OKTA_EVENTS_SECRET);
        Some((path.to_owned(), header.to_owned(), secret.to_owned()))
    }

    /// The switchboard configuration file in force `at` into the run: the scenario's, with
    /// `[prices]` written from the emulated providers' prices at that time (the operator keeps
    /// the price table true, so cost ranking sees what billing will charge). Without
    /// `has_events`, `[okta.events]` is left out: the operator never set up the event hook.
    pub(crate) fn switchboard_config(&self, at: Duration, has_events: bool) -> toml::Table {
        let mut table = self.switchboard.clone();
        if !has_events && let Some(toml::Value::Table(okta)) = table.get_mut("okta") {
            okta.remove("events");
        }
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

/// `[[traffic.surges]]`, validated.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Surge {
    /// Start, in seconds.
    pub(crate) from: f64,
    /// End (exclusive), in seconds.
    pub(crate) until: f64,
    /// Rate multiplier inside.
    pub(crate) multiplier: f64,
}

fn validate_surges(surges: &[file::SurgeConfig], duration_s: u64) -> anyhow::Result<Vec<Surge>> {
    let mut validated: Vec<Surge> = Vec::with_capacity(surges.len());
    for (position, surge) in surges.iter().enumerate() {
        let key = format!("traffic.surges[{position}]");
        ensure!(
            surge.from_s.is_finite() && surge.from_s >= 0.0,
            "{key}.from_s: must be at least 0"
        );
        ensure!(
            surge.until_s.is_finite()
                && surge.until_s > surge.from_s
                && surge.until_s <= duration_s as f64,
            "{key}.until_s: must be after from_s and at most duration_s ({duration_s})"
        );
        ensure!(
            surge.rate_multiplier.is_finite()
                && surge.rate_multiplier > 0.0
                && surge.rate_multiplier <= 1000.0,
            "{key}.rate_multiplier: must be above 0 and at most 1000"
        );
        validated.push(Surge {
            from: surge.from_s,
            until: surge.until_s,
            multiplier: surge.rate_multiplier,
        });
    }
    validated.sort_by(|a, b| a.from.total_cmp(&b.from));
    if let Some(pair) = validated.windows(2).find(|pair| pair[1].from < pair[0].until) {
        bail!(
            "traffic.surges: the surges from {} s and from {} s overlap",
            pair[0].from,
            pair[1].from
        );
    }
    Ok(validated)
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
                super::numbers::has_number_plan(country),
                "traffic.countries.{code}: the simulator has no number range for this country"
            );
            cumulative += weight / total;
            Ok((country, cumulative))
        })
        .collect()
}

/// `[okta.events]` in a switchboard table, if configured.
fn events_table(switchboard: &toml::Table) -> Option<&toml::Table> {
    switchboard.get("okta")?.as_table()?.get("events")?.as_table()
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
    // Receipts are posted to the server's callback route, which answers only with a base URL.
    server.entry("public_base_url").or_insert_with(|| Value::from(PUBLIC_BASE_URL));
    table.insert("server".into(), Value::Table(server));

    let mut okta = section(&mut table, "okta")?;
    let auth = |secret: &str| {
        let mut auth = toml::Table::new();
        auth.insert("header".into(), Value::from("Authorization"));
        auth.insert("secrets".into(), Value::Array(vec![Value::from(secret)]));
        Value::Table(auth)
    };
    okta.entry("auth").or_insert_with(|| auth(OKTA_SECRET));
    match okta.get_mut("events") {
        None => {}
        Some(Value::Table(events)) => {
            events.entry("auth").or_insert_with(|| auth(OKTA_EVENTS_SECRET));
        }
        Some(_) => bail!("switchboard.okta.events: must be a table"),
    }
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
