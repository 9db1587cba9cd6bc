//! The toll-fraud guard: SMS pumping and voice IRSF.
//!
//! Every request the hook accepts can cost money and reach a real phone, and a bot that can make
//! Okta send OTPs (self-registration, enrollment, password reset) can pump traffic to number
//! ranges that pay it per message. The guard refuses a request before any provider is called when
//! its country is not allowed, or when it exceeds a velocity limit: per number, per number prefix
//! (the number without its last digits, where pumped ranges show), per Okta user, per end-user IP
//! address (Okta passes it), and per country. Limits are GCRA buckets from `governor`, keyed and
//! bounded in memory by periodic pruning.
//!
//! A number whose country the metadata cannot prove (an unknown range under a calling code several
//! countries share, like +1) has the country `unknown`: no allow-list contains it unless it names
//! `"unknown"`, a deny-list blocks it only when it names `"unknown"`, and per-country limits count
//! all such numbers in one bucket of their own, never in the main country's (US for +1).
//!
//! Defaults follow published figures: Okta allows one SMS or call challenge per number per 30 s
//! (<https://developer.okta.com/docs/reference/rl-additional-limits/>), Twilio Verify five sends
//! per verification (error 60203, <https://www.twilio.com/docs/api/errors/60203>), Google
//! Identity Platform 50 verification SMS per minute per IP
//! (<https://cloud.google.com/identity-platform/quotas>); voice gets about half of SMS, as voice
//! fraud costs more. `monitor` mode counts and logs what would be blocked and blocks nothing, for
//! a safe rollout.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::DefaultClock;
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use serde::Deserialize;
use switchboard_core::{Channel, ConfigError, Country};

/// `[guard]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuardConfig {
    /// `enforce` blocks; `monitor` only counts and logs what would be blocked.
    #[serde(default = "default_mode")]
    pub mode: GuardMode,
    /// What Okta is told for a blocked request: `failed` or `successful`.
    #[serde(default = "default_blocked_answer")]
    pub blocked_answer: BlockedAnswer,
    /// Rules for SMS.
    #[serde(default = "ChannelGuardConfig::unset")]
    pub sms: ChannelGuardConfig,
    /// Rules for voice calls.
    #[serde(default = "ChannelGuardConfig::unset")]
    pub voice: ChannelGuardConfig,
    /// Daily spend caps, in the unit of `[prices]`.
    #[serde(default = "SpendConfig::unset")]
    pub spend: SpendConfig,
}

/// `[guard.spend]`: what accepted messages may cost per UTC day, priced with `[prices]`. When a
/// cap is reached, new requests (for that country, or all) are refused until midnight UTC.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpendConfig {
    /// All countries together.
    #[serde(default)]
    pub daily_cap: Option<f64>,
    /// Per country (ISO alpha-2).
    #[serde(default)]
    pub country_daily_caps: std::collections::BTreeMap<String, f64>,
}

impl SpendConfig {
    fn unset() -> SpendConfig {
        SpendConfig { daily_cap: None, country_daily_caps: std::collections::BTreeMap::new() }
    }
}

/// Whether the guard blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GuardMode {
    /// Block.
    Enforce,
    /// Count and log only.
    Monitor,
}

impl GuardMode {
    fn as_str(self) -> &'static str {
        match self {
            GuardMode::Enforce => "enforce",
            GuardMode::Monitor => "monitor",
        }
    }
}

/// What a blocked request is answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BlockedAnswer {
    /// FAILED: honest, but Okta may then send through its own providers.
    Failed,
    /// SUCCESSFUL: nobody sends, and the pumping attempt gets no signal.
    Successful,
}

/// `[guard.sms]` / `[guard.voice]`. Limits are `"N/DURATION"` (`"5/1h"`, `"10/10m"`, `"1/30s"`)
/// or `"off"`; an absent limit takes the channel's default.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelGuardConfig {
    /// When not empty, only these countries (ISO alpha-2) are allowed; numbers of unknown country
    /// are refused unless the list names `"unknown"`.
    #[serde(default)]
    pub allow_countries: Vec<String>,
    /// Countries always refused; `"unknown"` refuses numbers no country can be proven for.
    #[serde(default)]
    pub deny_countries: Vec<String>,
    /// Per destination number.
    #[serde(default)]
    pub per_number: Option<String>,
    /// Per number prefix (the number without its last `prefix_hidden_digits` digits).
    #[serde(default)]
    pub per_prefix: Option<String>,
    /// Digits dropped from the end of the number to form its prefix.
    #[serde(default)]
    pub prefix_hidden_digits: Option<u8>,
    /// Per Okta user id.
    #[serde(default)]
    pub per_user: Option<String>,
    /// Per end-user IP address (IPv6 per /64).
    #[serde(default)]
    pub per_ip: Option<String>,
    /// Per destination country.
    #[serde(default)]
    pub per_country: Option<String>,
}

impl ChannelGuardConfig {
    fn unset() -> ChannelGuardConfig {
        ChannelGuardConfig {
            allow_countries: Vec::new(),
            deny_countries: Vec::new(),
            per_number: None,
            per_prefix: None,
            prefix_hidden_digits: None,
            per_user: None,
            per_ip: None,
            per_country: None,
        }
    }
}

/// The guard's section when the file has none: every default.
pub(crate) fn default_guard() -> GuardConfig {
    GuardConfig {
        mode: default_mode(),
        blocked_answer: default_blocked_answer(),
        sms: ChannelGuardConfig::unset(),
        voice: ChannelGuardConfig::unset(),
        spend: SpendConfig::unset(),
    }
}
fn default_mode() -> GuardMode {
    GuardMode::Enforce
}
fn default_blocked_answer() -> BlockedAnswer {
    BlockedAnswer::Failed
}

/// Default limits per channel: (number, prefix, user, ip, country, hidden digits).
fn defaults(channel: Channel) -> [&'static str; 5] {
    match channel {
        Channel::Sms => ["5/1h", "10/10m", "10/1h", "50/1m", "1000/1h"],
        Channel::Voice => ["3/1h", "5/10m", "5/1h", "25/1m", "500/1h"],
    }
}
const DEFAULT_HIDDEN_DIGITS: u8 = 4;

/// A rule that can block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Rule {
    CountryNotAllowed,
    CountryDenied,
    SpendCap,
    CountrySpendCap,
    PerNumber,
    PerPrefix,
    PerUser,
    PerIp,
    PerCountry,
}

impl Rule {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Rule::CountryNotAllowed => "country_not_allowed",
            Rule::CountryDenied => "country_denied",
            Rule::SpendCap => "spend_cap",
            Rule::CountrySpendCap => "country_spend_cap",
            Rule::PerNumber => "per_number",
            Rule::PerPrefix => "per_prefix",
            Rule::PerUser => "per_user",
            Rule::PerIp => "per_ip",
            Rule::PerCountry => "per_country",
        }
    }
}

/// What the guard is asked about. Keys are keyed hashes: the guard never holds a number or a
/// user id in clear.
#[derive(Debug)]
pub(crate) struct GuardInput {
    pub(crate) channel: Channel,
    pub(crate) country: Country,
    pub(crate) number: [u8; 32],
    pub(crate) prefix: [u8; 32],
    pub(crate) user: Option<[u8; 32]>,
    pub(crate) ip: Option<IpAddr>,
}

/// The guard's answer.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Verdict {
    /// The first rule that blocked (in monitor mode: that would have blocked).
    pub(crate) blocked_by: Option<Rule>,
    /// Limits close to tripping (at most a fifth of their burst left).
    pub(crate) near_misses: Vec<Rule>,
    /// Whether the request must be refused (never in monitor mode).
    pub(crate) is_blocked: bool,
}

type Limiter<K> =
    RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock, StateInformationMiddleware>;

struct Limit<K: Clone + std::hash::Hash + Eq> {
    rule: Rule,
    /// Shared with the configuration this one replaced when the quota did not change.
    limiter: Arc<Limiter<K>>,
    burst: u32,
    /// The quota as configured, to tell whether a reload changed it.
    window: Duration,
}

impl<K: Clone + std::hash::Hash + Eq> Limit<K> {
    /// Takes over `old`'s counters when the quota is the same: a reload must not hand a pumping
    /// campaign a fresh allowance (a changed quota starts afresh; counting under the old one
    /// would mean something else).
    fn keep_counters_of(&mut self, old: &Limit<K>) {
        if self.burst == old.burst && self.window == old.window {
            self.limiter = Arc::clone(&old.limiter);
        }
    }

    /// `Some(true)` when allowed near the limit, `Some(false)` allowed, `None` blocked.
    fn check(&self, key: &K) -> Option<bool> {
        match self.limiter.check_key(key) {
            Ok(snapshot) => Some(snapshot.remaining_burst_capacity() * 5 <= self.burst),
            Err(_) => None,
        }
    }
}

struct ChannelGuard {
    allow: Vec<Country>,
    deny: Vec<Country>,
    hidden_digits: u8,
    number: Option<Limit<[u8; 32]>>,
    prefix: Option<Limit<[u8; 32]>>,
    user: Option<Limit<[u8; 32]>>,
    ip: Option<Limit<IpAddr>>,
    country: Option<Limit<Country>>,
}

/// The configured guard with its live counters.
pub(crate) struct Guard {
    mode: GuardMode,
    blocked_answer: BlockedAnswer,
    daily_cap: Option<f64>,
    country_daily_caps: std::collections::BTreeMap<Country, f64>,
    sms: ChannelGuard,
    voice: ChannelGuard,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard").field("mode", &self.mode).finish_non_exhaustive()
    }
}

impl Guard {
    /// Validates `[guard]`, naming the key of any bad value.
    pub(crate) fn try_new(config: &GuardConfig) -> Result<Guard, ConfigError> {
        let cap = |key: String, value: f64| {
            if value.is_finite() && value >= 0.0 {
                Ok(value)
            } else {
                Err(ConfigError::invalid(key, "must be a non-negative amount"))
            }
        };
        let daily_cap =
            config.spend.daily_cap.map(|v| cap("guard.spend.daily_cap".into(), v)).transpose()?;
        let mut country_daily_caps = std::collections::BTreeMap::new();
        for (code, value) in &config.spend.country_daily_caps {
            let key = format!("guard.spend.country_daily_caps.{code}");
            let country = Country::parse(code).ok_or_else(|| {
                ConfigError::invalid(&key, "is not an ISO 3166-1 alpha-2 country code")
            })?;
            country_daily_caps.insert(country, cap(key, *value)?);
        }
        Ok(Guard {
            mode: config.mode,
            blocked_answer: config.blocked_answer,
            daily_cap,
            country_daily_caps,
            sms: ChannelGuard::try_new("guard.sms", &config.sms, Channel::Sms)?,
            voice: ChannelGuard::try_new("guard.voice", &config.voice, Channel::Voice)?,
        })
    }

    /// Carries the rate-limit counters of the guard this one replaces across a reload, limit by
    /// limit, wherever the quota is unchanged.
    pub(crate) fn keep_counters_of(&mut self, old: &Guard) {
        self.sms.keep_counters_of(&old.sms);
        self.voice.keep_counters_of(&old.voice);
    }

    pub(crate) fn mode_label(&self) -> &'static str {
        self.mode.as_str()
    }

    pub(crate) fn blocked_answer(&self) -> BlockedAnswer {
        self.blocked_answer
    }

    /// How many digits to drop from the end of a number on `channel` to form its prefix.
    pub(crate) fn hidden_digits(&self, channel: Channel) -> u8 {
        self.channel(channel).hidden_digits
    }

    /// Checks a request. In enforce mode the first blocking rule stops the checks (later limits
    /// keep their tokens); in monitor mode every limit is consumed and nothing is blocked.
    pub(crate) fn check(&self, input: &GuardInput, spend: &SpendMeter) -> Verdict {
        let guard = self.channel(input.channel);
        let mut verdict = Verdict::default();
        let country_rule = self.country_rule(input.channel, input.country, spend);
        verdict.blocked_by = country_rule;
        let is_enforcing = self.mode == GuardMode::Enforce;
        let note = |rule: Rule, outcome: Option<bool>, verdict: &mut Verdict| match outcome {
            Some(true) => verdict.near_misses.push(rule),
            Some(false) => {}
            None => {
                verdict.blocked_by.get_or_insert(rule);
            }
        };
        macro_rules! limit {
            ($limit:expr, $key:expr) => {
                if !(is_enforcing && verdict.blocked_by.is_some()) {
                    if let (Some(limit), Some(key)) = ($limit.as_ref(), $key) {
                        note(limit.rule, limit.check(key), &mut verdict);
                    }
                }
            };
        }
        limit!(guard.number, Some(&input.number));
        limit!(guard.prefix, Some(&input.prefix));
        limit!(guard.user, input.user.as_ref());
        limit!(guard.ip, input.ip.as_ref());
        limit!(guard.country, Some(&input.country));
        verdict.is_blocked = is_enforcing && verdict.blocked_by.is_some();
        verdict
    }

    /// The rules that depend on the destination's country and today's spending alone (allow
    /// and deny lists, spend caps): what `explain` can check without using up any velocity
    /// allowance, through the same code as the hook. Blocks only in enforce mode.
    pub(crate) fn country_rule(
        &self,
        channel: Channel,
        country: Country,
        spend: &SpendMeter,
    ) -> Option<Rule> {
        let guard = self.channel(channel);
        let (spent_total, spent_country) = spend.spent_today(country);
        if !guard.allow.is_empty() && !guard.allow.contains(&country) {
            Some(Rule::CountryNotAllowed)
        } else if guard.deny.contains(&country) {
            Some(Rule::CountryDenied)
        } else if self.daily_cap.is_some_and(|cap| spent_total >= cap) {
            Some(Rule::SpendCap)
        } else if self.country_daily_caps.get(&country).is_some_and(|cap| spent_country >= *cap) {
            Some(Rule::CountrySpendCap)
        } else {
            None
        }
    }

    /// Whether a rule that matches blocks (enforce) or is only counted (monitor).
    pub(crate) fn is_enforcing(&self) -> bool {
        self.mode == GuardMode::Enforce
    }

    /// Forgets keys whose buckets are full again, so memory follows recent traffic.
    pub(crate) fn prune(&self) {
        for guard in [&self.sms, &self.voice] {
            if let Some(limit) = &guard.number {
                limit.limiter.retain_recent();
            }
            if let Some(limit) = &guard.prefix {
                limit.limiter.retain_recent();
            }
            if let Some(limit) = &guard.user {
                limit.limiter.retain_recent();
            }
            if let Some(limit) = &guard.ip {
                limit.limiter.retain_recent();
            }
            if let Some(limit) = &guard.country {
                limit.limiter.retain_recent();
            }
        }
    }

    fn channel(&self, channel: Channel) -> &ChannelGuard {
        match channel {
            Channel::Sms => &self.sms,
            Channel::Voice => &self.voice,
        }
    }
}

/// [`Limit::keep_counters_of`] for an optional limit on both sides.
fn keep<K: Clone + std::hash::Hash + Eq>(new: &mut Option<Limit<K>>, old: &Option<Limit<K>>) {
    if let (Some(new), Some(old)) = (new, old) {
        new.keep_counters_of(old);
    }
}

impl ChannelGuard {
    fn keep_counters_of(&mut self, old: &ChannelGuard) {
        keep(&mut self.number, &old.number);
        // Prefix keys hide a number of digits; with another count they are other keys.
        if self.hidden_digits == old.hidden_digits {
            keep(&mut self.prefix, &old.prefix);
        }
        keep(&mut self.user, &old.user);
        keep(&mut self.ip, &old.ip);
        keep(&mut self.country, &old.country);
    }

    fn try_new(
        key: &str,
        config: &ChannelGuardConfig,
        channel: Channel,
    ) -> Result<ChannelGuard, ConfigError> {
        let countries = |field: &str, codes: &[String]| -> Result<Vec<Country>, ConfigError> {
            codes
                .iter()
                .enumerate()
                .map(|(index, code)| {
                    if code.eq_ignore_ascii_case("unknown") {
                        return Ok(Country::UNKNOWN);
                    }
                    Country::parse(code).ok_or_else(|| {
                        ConfigError::invalid(
                            format!("{key}.{field}[{index}]"),
                            format!("`{code}` is not an ISO 3166-1 alpha-2 code or \"unknown\""),
                        )
                    })
                })
                .collect()
        };
        let [number, prefix, user, ip, country] = defaults(channel);
        let hidden_digits = config.prefix_hidden_digits.unwrap_or(DEFAULT_HIDDEN_DIGITS);
        if !(1..=8).contains(&hidden_digits) {
            return Err(ConfigError::invalid(
                format!("{key}.prefix_hidden_digits"),
                "must be between 1 and 8",
            ));
        }
        Ok(ChannelGuard {
            allow: countries("allow_countries", &config.allow_countries)?,
            deny: countries("deny_countries", &config.deny_countries)?,
            hidden_digits,
            number: limit(
                key,
                "per_number",
                config.per_number.as_deref(),
                number,
                Rule::PerNumber,
            )?,
            prefix: limit(
                key,
                "per_prefix",
                config.per_prefix.as_deref(),
                prefix,
                Rule::PerPrefix,
            )?,
            user: limit(key, "per_user", config.per_user.as_deref(), user, Rule::PerUser)?,
            ip: limit(key, "per_ip", config.per_ip.as_deref(), ip, Rule::PerIp)?,
            country: limit(
                key,
                "per_country",
                config.per_country.as_deref(),
                country,
                Rule::PerCountry,
            )?,
        })
    }
}

fn limit<K: Clone + std::hash::Hash + Eq>(
    key: &str,
    field: &str,
    text: Option<&str>,
    default: &str,
    rule: Rule,
) -> Result<Option<Limit<K>>, ConfigError> {
    let text = text.unwrap_or(default);
    if text == "off" {
        return Ok(None);
    }
    let (count, window) = parse_rate(text).ok_or_else(|| {
        ConfigError::invalid(
            format!("{key}.{field}"),
            format!("`{text}` is not \"N/DURATION\" (like \"5/1h\") or \"off\""),
        )
    })?;
    // N per window as a GCRA bucket: a burst of N, refilling one every window / N.
    let quota = Quota::with_period(window / count.get())
        .ok_or_else(|| ConfigError::invalid(format!("{key}.{field}"), "window too short"))?
        .allow_burst(count);
    let limiter = RateLimiter::keyed(quota).with_middleware::<StateInformationMiddleware>();
    Ok(Some(Limit { rule, limiter: Arc::new(limiter), burst: count.get(), window }))
}

/// `"5/1h"` → (5, one hour). Units: s, m, h, d.
fn parse_rate(text: &str) -> Option<(NonZeroU32, Duration)> {
    let (count, window) = text.trim().split_once('/')?;
    let count: NonZeroU32 = count.trim().parse().ok()?;
    let window = window.trim();
    let split = window.find(|c: char| !c.is_ascii_digit())?;
    let (amount, unit) = window.split_at(split);
    let amount: u64 = if amount.is_empty() { 1 } else { amount.parse().ok()? };
    let seconds = match unit {
        "s" => amount,
        "m" => amount * 60,
        "h" => amount * 3600,
        "d" => amount * 86_400,
        _ => return None,
    };
    (1..=7 * 86_400).contains(&seconds).then(|| (count, Duration::from_secs(seconds)))
}

/// What accepted messages cost today (UTC), in total and per country. Kept by the server, not the
/// guard, so a configuration reload cannot reset a day's spending.
/// A std mutex: sections are a few arithmetic operations, never across an `.await`.
#[derive(Debug, Default)]
pub(crate) struct SpendMeter {
    state: std::sync::Mutex<SpendDay>,
}

#[derive(Debug, Default)]
struct SpendDay {
    day: i64,
    total: f64,
    by_country: std::collections::HashMap<Country, f64>,
}

impl SpendMeter {
    /// Adds the price of an accepted message.
    pub(crate) fn add(&self, country: Country, amount: f64) {
        self.add_on(today(), country, amount);
    }

    /// (total, this country) spent today.
    pub(crate) fn spent_today(&self, country: Country) -> (f64, f64) {
        self.spent_on(today(), country)
    }

    fn add_on(&self, day: i64, country: Country, amount: f64) {
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        state.roll(day);
        state.total += amount;
        *state.by_country.entry(country).or_default() += amount;
    }

    fn spent_on(&self, day: i64, country: Country) -> (f64, f64) {
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        state.roll(day);
        (state.total, state.by_country.get(&country).copied().unwrap_or(0.0))
    }
}

impl SpendDay {
    fn roll(&mut self, day: i64) {
        if self.day != day {
            *self = SpendDay { day, ..SpendDay::default() };
        }
    }
}

/// Days since the Unix epoch, UTC: caps reset at midnight UTC.
fn today() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp().div_euclid(86_400)
}

/// The number without its last `hidden` digits: where pumped ranges show.
pub(crate) fn prefix_of(e164: &str, hidden: u8) -> &str {
    let keep = e164.len().saturating_sub(usize::from(hidden)).max(2);
    &e164[..keep.min(e164.len())]
}

/// IPv6 addresses count per /64 (one customer's allocation); IPv4 per address.
pub(crate) fn ip_key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => {
            let segments = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(
                segments[0],
                segments[1],
                segments[2],
                segments[3],
                0,
                0,
                0,
                0,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Guard {
        fn check_fresh(&self, input: &GuardInput) -> Verdict {
            self.check(input, &SpendMeter::default())
        }
    }

    #[test]
    fn spend_caps_stop_new_requests_for_the_day_and_reset_at_midnight() {
        let guard = guard("[spend]\ndaily_cap = 10.0\ncountry_daily_caps = { GB = 2.0 }");
        let meter = SpendMeter::default();
        let gb = input(Channel::Sms, "GB", 1, 1);
        meter.add(Country::parse("GB").unwrap(), 1.5);
        assert!(!guard.check(&gb, &meter).is_blocked);
        meter.add(Country::parse("GB").unwrap(), 0.5);
        assert_eq!(guard.check(&gb, &meter).blocked_by, Some(Rule::CountrySpendCap));
        assert!(!guard.check(&input(Channel::Sms, "US", 2, 2), &meter).is_blocked);
        meter.add(Country::parse("US").unwrap(), 8.0);
        assert_eq!(
            guard.check(&input(Channel::Sms, "US", 3, 3), &meter).blocked_by,
            Some(Rule::SpendCap)
        );
        // A new UTC day starts from zero.
        let (total, _) = meter.spent_on(today() + 1, Country::parse("GB").unwrap());
        assert_eq!(total, 0.0);
        let error =
            Guard::try_new(&toml::from_str("[spend]\ndaily_cap = -1.0").unwrap()).unwrap_err();
        assert!(error.to_string().starts_with("guard.spend.daily_cap: "), "{error}");
    }

    fn guard(toml_text: &str) -> Guard {
        let config: GuardConfig = toml::from_str(toml_text).unwrap();
        Guard::try_new(&config).unwrap()
    }

    fn input(channel: Channel, country: &str, number: u8, prefix: u8) -> GuardInput {
        GuardInput {
            channel,
            country: if country == "unknown" {
                Country::UNKNOWN
            } else {
                Country::parse(country).unwrap()
            },
            number: [number; 32],
            prefix: [prefix; 32],
            user: None,
            ip: None,
        }
    }

    #[test]
    fn parses_rates_and_refuses_nonsense_naming_the_key() {
        assert_eq!(
            parse_rate("5/1h"),
            Some((NonZeroU32::new(5).unwrap(), Duration::from_secs(3600)))
        );
        assert_eq!(
            parse_rate("1/30s"),
            Some((NonZeroU32::new(1).unwrap(), Duration::from_secs(30)))
        );
        assert_eq!(
            parse_rate("10/m"),
            Some((NonZeroU32::new(10).unwrap(), Duration::from_secs(60)))
        );
        for bad in ["0/1h", "5", "5/1w", "x/1h", "5/0s", "5/8d"] {
            assert_eq!(parse_rate(bad), None, "{bad}");
        }
        let config: GuardConfig = toml::from_str("[sms]\nper_prefix = \"lots\"").unwrap();
        let error = Guard::try_new(&config).unwrap_err().to_string();
        assert!(error.starts_with("guard.sms.per_prefix: "), "{error}");
        let config: GuardConfig =
            toml::from_str("[voice]\nallow_countries = [\"US\", \"USA\"]").unwrap();
        let error = Guard::try_new(&config).unwrap_err().to_string();
        assert!(error.starts_with("guard.voice.allow_countries[1]: "), "{error}");
    }

    #[test]
    fn a_burst_to_one_prefix_trips_the_prefix_limit() {
        let guard = guard("[sms]\nper_number = \"off\"\nper_prefix = \"3/10m\"");
        for number in 0..3 {
            assert!(!guard.check_fresh(&input(Channel::Sms, "GB", number, 7)).is_blocked);
        }
        let verdict = guard.check_fresh(&input(Channel::Sms, "GB", 99, 7));
        assert_eq!(verdict.blocked_by, Some(Rule::PerPrefix));
        assert!(verdict.is_blocked);
        assert!(
            !guard.check_fresh(&input(Channel::Sms, "GB", 99, 8)).is_blocked,
            "other prefixes unaffected"
        );
        assert!(
            !guard.check_fresh(&input(Channel::Voice, "GB", 99, 7)).is_blocked,
            "voice has its own limits"
        );
    }

    #[test]
    fn countries_allow_and_deny() {
        let guard =
            guard("[sms]\nallow_countries = [\"US\", \"GB\"]\n[voice]\ndeny_countries = [\"CU\"]");
        assert!(!guard.check_fresh(&input(Channel::Sms, "US", 1, 1)).is_blocked);
        assert_eq!(
            guard.check_fresh(&input(Channel::Sms, "LV", 1, 1)).blocked_by,
            Some(Rule::CountryNotAllowed)
        );
        assert_eq!(
            guard.check_fresh(&input(Channel::Voice, "CU", 1, 1)).blocked_by,
            Some(Rule::CountryDenied)
        );
        assert!(!guard.check_fresh(&input(Channel::Voice, "LV", 1, 1)).is_blocked);
    }

    #[test]
    fn a_number_of_unknown_country_is_never_treated_as_the_main_country() {
        // An unknown +1 range (a Jamaican pumping range the metadata lacks, say) is not US.
        let us_only = guard("[sms]\nallow_countries = [\"US\"]");
        assert_eq!(
            us_only.check_fresh(&input(Channel::Sms, "unknown", 1, 1)).blocked_by,
            Some(Rule::CountryNotAllowed)
        );
        let allowing = guard("[sms]\nallow_countries = [\"US\", \"unknown\"]");
        assert!(!allowing.check_fresh(&input(Channel::Sms, "unknown", 1, 1)).is_blocked);
        // A deny-list blocks it only by name.
        let denying_us = guard("[sms]\ndeny_countries = [\"US\"]");
        assert!(!denying_us.check_fresh(&input(Channel::Sms, "unknown", 1, 1)).is_blocked);
        let denying = guard("[sms]\ndeny_countries = [\"unknown\"]");
        assert_eq!(
            denying.check_fresh(&input(Channel::Sms, "unknown", 1, 1)).blocked_by,
            Some(Rule::CountryDenied)
        );
        assert!(!denying.check_fresh(&input(Channel::Sms, "US", 2, 2)).is_blocked);
        // Per-country limits count unknown numbers in their own bucket, not the US one.
        let limited =
            guard("[sms]\nper_number = \"off\"\nper_prefix = \"off\"\nper_country = \"2/1h\"");
        for number in 0..2 {
            assert!(
                !limited.check_fresh(&input(Channel::Sms, "unknown", number, number)).is_blocked
            );
        }
        assert_eq!(
            limited.check_fresh(&input(Channel::Sms, "unknown", 9, 9)).blocked_by,
            Some(Rule::PerCountry)
        );
        assert!(!limited.check_fresh(&input(Channel::Sms, "US", 9, 9)).is_blocked);
    }

    #[test]
    fn monitor_mode_blocks_nothing_and_reports_everything() {
        let guard =
            guard("mode = \"monitor\"\n[sms]\ndeny_countries = [\"CU\"]\nper_number = \"2/1h\"");
        let first = guard.check_fresh(&input(Channel::Sms, "CU", 1, 1));
        assert_eq!((first.blocked_by, first.is_blocked), (Some(Rule::CountryDenied), false));
        guard.check_fresh(&input(Channel::Sms, "US", 2, 2));
        let near = guard.check_fresh(&input(Channel::Sms, "US", 2, 2));
        assert!(near.near_misses.contains(&Rule::PerNumber), "{near:?}");
        let over = guard.check_fresh(&input(Channel::Sms, "US", 2, 2));
        assert_eq!((over.blocked_by, over.is_blocked), (Some(Rule::PerNumber), false));
    }

    #[test]
    fn prefixes_and_ip_keys() {
        assert_eq!(prefix_of("+447700900123", 4), "+44770090");
        assert_eq!(prefix_of("+1", 4), "+1");
        let v6: IpAddr = "2001:db8:1:2:3:4:5:6".parse().unwrap();
        assert_eq!(ip_key(v6), "2001:db8:1:2::".parse::<IpAddr>().unwrap());
        let v4: IpAddr = "203.0.113.9".parse().unwrap();
        assert_eq!(ip_key(v4), v4);
    }
}
