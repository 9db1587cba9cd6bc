use std::num::NonZeroU32;
use std::time::Duration;

use super::config::parse_rate;
use super::*;
use crate::spend::SpendMeter;

/// A guard with its own counters, as the server keeps them.
struct Tested {
    guard: Guard,
    limits: GuardLimits,
}

impl Tested {
    /// Checks with nothing spent today.
    fn check_fresh(&self, input: &GuardInput) -> Verdict {
        self.guard.check(input, SpentToday::default(), &self.limits)
    }

    /// Checks with what `meter` says was spent on `day`.
    fn check(&self, input: &GuardInput, meter: &SpendMeter, day: i64) -> Verdict {
        self.guard.check(input, meter.spent_on(day, input.country), &self.limits)
    }
}

#[test]
fn spend_caps_stop_new_requests_for_the_day_and_reset_at_midnight() {
    let guard = guard("[spend]\ndaily_cap = 10.0\ncountry_daily_caps = { GB = 2.0 }");
    let meter = SpendMeter::default();
    let today = crate::clock::WallClock::System.today();
    let gb = input(Channel::Sms, "GB", 1, 1);
    meter.record(today, Country::parse("GB").unwrap(), 1.5);
    assert!(!guard.check(&gb, &meter, today).is_blocked);
    meter.record(today, Country::parse("GB").unwrap(), 0.5);
    assert_eq!(guard.check(&gb, &meter, today).blocked_by, Some(Rule::CountrySpendCap));
    assert!(!guard.check(&input(Channel::Sms, "US", 2, 2), &meter, today).is_blocked);
    meter.record(today, Country::parse("US").unwrap(), 8.0);
    assert_eq!(
        guard.check(&input(Channel::Sms, "US", 3, 3), &meter, today).blocked_by,
        Some(Rule::SpendCap)
    );
    // A new UTC day starts from zero.
    let SpentToday { total, .. } = meter.spent_on(today + 1, Country::parse("GB").unwrap());
    assert_eq!(total, 0.0);
    let error = Guard::try_new(&toml::from_str("[spend]\ndaily_cap = -1.0").unwrap()).unwrap_err();
    assert!(error.to_string().starts_with("guard.spend.daily_cap: "), "{error}");
}

fn guard(toml_text: &str) -> Tested {
    let config: GuardConfig = toml::from_str(toml_text).unwrap();
    let guard = Guard::try_new(&config).unwrap();
    let limits = GuardLimits::new(guard.quotas());
    Tested { guard, limits }
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
    assert_eq!(parse_rate("5/1h"), Some((NonZeroU32::new(5).unwrap(), Duration::from_secs(3600))));
    assert_eq!(parse_rate("1/30s"), Some((NonZeroU32::new(1).unwrap(), Duration::from_secs(30))));
    assert_eq!(parse_rate("10/m"), Some((NonZeroU32::new(10).unwrap(), Duration::from_secs(60))));
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
        assert!(!limited.check_fresh(&input(Channel::Sms, "unknown", number, number)).is_blocked);
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

#[tokio::test(start_paused = true)]
async fn a_limit_refills_as_tokio_time_advances() {
    // Two a minute: a burst of two, then one every 30 s, on tokio's (here paused) clock.
    let guard = guard("[sms]\nper_number = \"2/1m\"\nper_prefix = \"off\"");
    let request = input(Channel::Sms, "GB", 1, 1);
    assert!(!guard.check_fresh(&request).is_blocked);
    assert!(!guard.check_fresh(&request).is_blocked);
    assert_eq!(guard.check_fresh(&request).blocked_by, Some(Rule::PerNumber));
    tokio::time::advance(Duration::from_secs(29)).await;
    assert_eq!(guard.check_fresh(&request).blocked_by, Some(Rule::PerNumber), "not yet");
    tokio::time::advance(Duration::from_secs(1)).await;
    assert!(!guard.check_fresh(&request).is_blocked, "one request refilled");
    assert_eq!(guard.check_fresh(&request).blocked_by, Some(Rule::PerNumber));
}

#[test]
fn counters_survive_a_reload_where_the_quota_is_unchanged() {
    let tested = guard("[sms]\nper_number = \"1/1h\"\nper_prefix = \"5/1h\"");
    let request = input(Channel::Sms, "GB", 1, 1);
    assert!(!tested.check_fresh(&request).is_blocked);
    assert_eq!(tested.check_fresh(&request).blocked_by, Some(Rule::PerNumber));
    // The same quotas: the number stays blocked.
    let same = guard("[sms]\nper_number = \"1/1h\"\nper_prefix = \"5/1h\"").guard;
    tested.limits.configure(same.quotas());
    let tested = Tested { guard: same, limits: tested.limits };
    assert_eq!(tested.check_fresh(&request).blocked_by, Some(Rule::PerNumber));
    // A new quota starts afresh.
    let changed = guard("[sms]\nper_number = \"2/1h\"\nper_prefix = \"5/1h\"").guard;
    tested.limits.configure(changed.quotas());
    let tested = Tested { guard: changed, limits: tested.limits };
    assert!(!tested.check_fresh(&request).is_blocked);
}

#[tokio::test(start_paused = true)]
async fn a_replicas_share_of_a_limit_is_the_quota_divided_and_follows_the_count() {
    let tested = guard("[sms]\nper_number = \"4/1h\"");
    let (_, rule, quota) =
        tested.guard.quotas().into_iter().find(|q| q.1 == Rule::PerNumber).unwrap();
    let key = LimitKey::Digest([7; 32]);
    let take = |replicas| tested.limits.take_share(Channel::Sms, rule, &key, quota, replicas);
    assert_eq!(take(2), Take::Allowed);
    assert_eq!(take(2), Take::NearLimit, "two of four: the last of this replica's share");
    assert_eq!(take(2), Take::Over);
    assert_eq!(
        take(3),
        Take::NearLimit,
        "a new count makes a new bucket: one of four (rounded down)"
    );
    assert_eq!(take(3), Take::Over);
    assert_eq!(take(8), Take::Over, "never less than one: the same share keeps its bucket");
    // The shares are apart from this replica's own counters.
    assert!(!tested.check_fresh(&input(Channel::Sms, "US", 7, 7)).is_blocked);
    tested.limits.configure(tested.guard.quotas());
    assert_eq!(take(8), Take::Over, "a reload that keeps the quota keeps the share");
    tested.limits.configure(Vec::new());
    assert_eq!(take(8), Take::NearLimit, "a removed limit's share goes with it");
}
