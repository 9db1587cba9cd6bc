//! `[guard]` as the operator writes it, and its validation into the guard's rules.
//!
//! Limits are written `"N/DURATION"` and become [`LimitQuota`]s: the rules say which limits
//! apply; the live counters are the server's [`GuardLimits`](super::limits::GuardLimits).

use std::num::NonZeroU32;
use std::time::Duration;

use serde::Deserialize;
use switchboard_core::{Channel, ConfigError, Country};

use super::limits::LimitQuota;
use super::{ChannelRules, Guard, Rule};

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
    pub(super) fn as_str(self) -> &'static str {
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
            sms: channel_rules("guard.sms", &config.sms, Channel::Sms)?,
            voice: channel_rules("guard.voice", &config.voice, Channel::Voice)?,
        })
    }
}

fn channel_rules(
    key: &str,
    config: &ChannelGuardConfig,
    channel: Channel,
) -> Result<ChannelRules, ConfigError> {
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
    let allow = countries("allow_countries", &config.allow_countries)?;
    let deny = countries("deny_countries", &config.deny_countries)?;
    // In the order they are checked.
    let limits = [
        (Rule::PerNumber, "per_number", config.per_number.as_deref(), number),
        (Rule::PerPrefix, "per_prefix", config.per_prefix.as_deref(), prefix),
        (Rule::PerUser, "per_user", config.per_user.as_deref(), user),
        (Rule::PerIp, "per_ip", config.per_ip.as_deref(), ip),
        (Rule::PerCountry, "per_country", config.per_country.as_deref(), country),
    ];
    let mut quotas = Vec::new();
    for (rule, field, text, default) in limits {
        // Prefix keys hide a number of digits; with another count they are other keys.
        let scope = if rule == Rule::PerPrefix { hidden_digits } else { 0 };
        if let Some(quota) = limit(key, field, text, default, scope)? {
            quotas.push((rule, quota));
        }
    }
    Ok(ChannelRules { allow, deny, hidden_digits, limits: quotas })
}

fn limit(
    key: &str,
    field: &str,
    text: Option<&str>,
    default: &str,
    scope: u8,
) -> Result<Option<LimitQuota>, ConfigError> {
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
    LimitQuota::new(count, window, scope)
        .map(Some)
        .ok_or_else(|| ConfigError::invalid(format!("{key}.{field}"), "window too short"))
}

/// `"5/1h"` → (5, one hour). Units: s, m, h, d.
pub(super) fn parse_rate(text: &str) -> Option<(NonZeroU32, Duration)> {
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
