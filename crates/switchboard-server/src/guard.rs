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
//! The guard is in three parts: `config` (the `[guard]` section and its validation into
//! [`Guard`], the rules, replaced on every reload), `limits` (the live counters,
//! [`GuardLimits`], owned by the server and kept across reloads wherever a limit's quota is
//! unchanged) and this module, which checks a request against both and the day's spending.
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

use switchboard_core::{Channel, Country};

use crate::spend::SpentToday;

mod config;
mod limits;
#[cfg(test)]
mod tests;

use config::GuardMode;
pub(crate) use config::default_guard;
pub(crate) use config::{BlockedAnswer, GuardConfig};
pub(crate) use limits::{Counters, GuardLimits, Limit, LimitKey, LimitQuota, Take, take_each};

/// A rule that can block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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

impl Verdict {
    /// The blocking rule's metric label.
    pub(crate) fn blocked_label(&self) -> Option<&'static str> {
        self.blocked_by.map(Rule::as_str)
    }

    /// The near misses' metric labels.
    pub(crate) fn near_miss_labels(&self) -> Vec<&'static str> {
        self.near_misses.iter().map(|rule| rule.as_str()).collect()
    }
}

/// One channel's rules.
#[derive(Debug)]
struct ChannelRules {
    allow: Vec<Country>,
    deny: Vec<Country>,
    hidden_digits: u8,
    /// The velocity limits, in the order they are checked.
    limits: Vec<(Rule, LimitQuota)>,
}

/// The configured guard: its rules. The counters its limits use are [`GuardLimits`], and the
/// day's spending the server's spend meter; both outlive it.
pub(crate) struct Guard {
    mode: GuardMode,
    blocked_answer: BlockedAnswer,
    daily_cap: Option<f64>,
    country_daily_caps: std::collections::BTreeMap<Country, f64>,
    sms: ChannelRules,
    voice: ChannelRules,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard").field("mode", &self.mode).finish_non_exhaustive()
    }
}

impl Guard {
    /// Every velocity limit with its quota, for [`GuardLimits::configure`].
    pub(crate) fn quotas(&self) -> Vec<(Channel, Rule, LimitQuota)> {
        [(Channel::Sms, &self.sms), (Channel::Voice, &self.voice)]
            .into_iter()
            .flat_map(|(channel, rules)| {
                rules.limits.iter().map(move |(rule, quota)| (channel, *rule, *quota))
            })
            .collect()
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

    /// Checks a request against the rules, the day's spending (`spent`, for the request's
    /// country) and this replica's own velocity counters (`limits`, memory mode): see
    /// [`Guard::check_with`].
    pub(crate) fn check(
        &self,
        input: &GuardInput,
        spent: SpentToday,
        limits: &GuardLimits,
    ) -> Verdict {
        use futures::FutureExt as _;
        // The local counters answer at once; their future never waits.
        self.check_with(input, spent, limits).now_or_never().expect("the local counters never wait")
    }

    /// Checks a request against the rules, the day's spending (`spent`, for the request's
    /// country) and the velocity limits' `counters` (this replica's, or the fleet's in Redis
    /// mode). In enforce mode the first blocking rule stops the checks (later limits keep their
    /// tokens); in monitor mode every limit is consumed and nothing is blocked.
    pub(crate) async fn check_with(
        &self,
        input: &GuardInput,
        spent: SpentToday,
        counters: &impl Counters,
    ) -> Verdict {
        let rules = self.channel(input.channel);
        let mut verdict = Verdict {
            blocked_by: self.country_rule(input.channel, input.country, spent),
            ..Verdict::default()
        };
        let is_enforcing = self.mode == GuardMode::Enforce;
        if is_enforcing && verdict.blocked_by.is_some() {
            verdict.is_blocked = true;
            return verdict;
        }
        let limits: Vec<Limit> = rules
            .limits
            .iter()
            .filter_map(|(rule, quota)| {
                let key = match rule {
                    Rule::PerNumber => Some(LimitKey::Digest(input.number)),
                    Rule::PerPrefix => Some(LimitKey::Digest(input.prefix)),
                    Rule::PerUser => input.user.map(LimitKey::Digest),
                    Rule::PerIp => input.ip.map(LimitKey::Ip),
                    Rule::PerCountry => Some(LimitKey::Country(input.country)),
                    _ => None,
                };
                key.map(|key| Limit { rule: *rule, key, quota: *quota })
            })
            .collect();
        let takes = counters.take_all(input.channel, &limits, is_enforcing).await;
        for (limit, take) in limits.iter().zip(takes) {
            match take {
                Take::NearLimit => verdict.near_misses.push(limit.rule),
                Take::Allowed => {}
                Take::Over => {
                    verdict.blocked_by.get_or_insert(limit.rule);
                }
            }
        }
        verdict.is_blocked = is_enforcing && verdict.blocked_by.is_some();
        verdict
    }

    /// The rules that depend on the destination's country and the day's spending alone (allow
    /// and deny lists, spend caps): what `explain` can check without using up any velocity
    /// allowance, through the same code as the hook. Blocks only in enforce mode.
    pub(crate) fn country_rule(
        &self,
        channel: Channel,
        country: Country,
        spent: SpentToday,
    ) -> Option<Rule> {
        let rules = self.channel(channel);
        if !rules.allow.is_empty() && !rules.allow.contains(&country) {
            Some(Rule::CountryNotAllowed)
        } else if rules.deny.contains(&country) {
            Some(Rule::CountryDenied)
        } else if self.daily_cap.is_some_and(|cap| spent.total >= cap) {
            Some(Rule::SpendCap)
        } else if self.country_daily_caps.get(&country).is_some_and(|cap| spent.country >= *cap) {
            Some(Rule::CountrySpendCap)
        } else {
            None
        }
    }

    /// Whether a rule that matches blocks (enforce) or is only counted (monitor).
    pub(crate) fn is_enforcing(&self) -> bool {
        self.mode == GuardMode::Enforce
    }

    fn channel(&self, channel: Channel) -> &ChannelRules {
        match channel {
            Channel::Sms => &self.sms,
            Channel::Voice => &self.voice,
        }
    }
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
