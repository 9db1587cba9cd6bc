use std::time::Duration;

use serde::Deserialize;

use super::config::validate_countries;
use super::*;
use crate::config::ConfigError;
use crate::domain::{Channel, Country, ProviderId, Purpose};
use crate::price::PriceConfig;
use crate::query::{NumberDigits, RouteQuery};

/// The shape the server embeds: `[[routes]]` at the top of the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    routes: Vec<RouteConfig>,
}

fn catalog() -> ProviderCatalog {
    let both = vec![Channel::Sms, Channel::Voice];
    ProviderCatalog::new([
        (ProviderId::parse("twilio-us").unwrap(), both.clone()),
        (ProviderId::parse("twilio-backup").unwrap(), both),
        (ProviderId::parse("textonly").unwrap(), vec![Channel::Sms]),
        (ProviderId::parse("callonly").unwrap(), vec![Channel::Voice]),
    ])
}

fn routes(toml_text: &str) -> Vec<RouteConfig> {
    toml::from_str::<File>(toml_text).unwrap().routes
}

fn table(toml_text: &str) -> Result<RouteTable, ConfigError> {
    RouteTable::try_new(&routes(toml_text), &PriceConfig::empty(), &catalog())
}

fn error(toml_text: &str) -> String {
    table(toml_text).unwrap_err().to_string()
}

fn country(code: &str) -> Country {
    Country::parse(code).unwrap()
}

const EXAMPLE: &str = r#"
[[routes]]
name = "north-america"
countries = ["US", "CA"]
channels = ["sms", "voice"]
providers = ["twilio-us", "twilio-backup"]

[[routes]]
countries = ["GB"]
channels = ["sms"]
providers = ["textonly", "twilio-backup"]

[[routes]]
countries = ["*"]
providers = ["twilio-backup", "callonly"]
"#;

#[test]
fn reads_the_documented_toml() {
    let routes = routes(EXAMPLE);
    assert_eq!(
        routes[0],
        RouteConfig {
            name: Some("north-america".into()),
            ..RouteConfig::new(
                vec!["US".into(), "CA".into()],
                vec!["sms".into(), "voice".into()],
                vec!["twilio-us".into(), "twilio-backup".into()],
            )
        }
    );
    assert_eq!(routes[2].name, None);
    assert_eq!(routes[2].channels, ["sms", "voice"], "channels default to both");
    let table = table(EXAMPLE).unwrap();
    let rule = &table.rules()[0];
    assert_eq!(rule.optimize(), Optimize::Priority, "a rule without ranking keys keeps its order");
    assert_eq!(rule.strategy(), StrategyPolicy::Cascade);
    assert_eq!((rule.exploration(), rule.purposes(), rule.prefixes()), (0.0, None, &[][..]));
}

#[test]
fn reads_the_ranking_and_strategy_keys() {
    let table = table(
        r#"
[[routes]]
name = "us-mobile-hedged"
countries = ["US"]
channels = ["sms"]
request_types = ["verification", "password_reset"]
prefixes = ["+1415", "1628"]
providers = ["twilio-us", "twilio-backup", "textonly"]
strategy = "hedge"
hedge_delay = "auto"
hedge_quantile = 0.95
hedge_delay_min_ms = 150
hedge_delay_max_ms = 900
optimize = "cost"
weights = { twilio-backup = 0.5 }
exploration = 0.05

[[routes]]
countries = ["US"]
providers = ["twilio-us", "twilio-backup"]
strategy = "race"
race_width = 2
optimize = "latency"

[[routes]]
countries = ["*"]
providers = ["twilio-us", "twilio-backup"]
strategy = "hedge"
hedge_delay_ms = 400
"#,
    )
    .unwrap();
    let [hedged, raced, fixed] = table.rules() else { panic!("three rules") };
    assert_eq!(hedged.purposes(), Some(&[Purpose::Verification, Purpose::PasswordReset][..]));
    assert_eq!(hedged.prefixes(), ["1415", "1628"]);
    assert_eq!(
        hedged.strategy(),
        StrategyPolicy::Hedge(HedgeDelay::Learned {
            quantile: 0.95,
            floor: Duration::from_millis(150),
            ceiling: Duration::from_millis(900),
        })
    );
    assert_eq!((hedged.optimize(), hedged.exploration()), (Optimize::Cost, 0.05));
    assert_eq!((hedged.weight(0), hedged.weight(1), hedged.weight(2)), (1.0, 0.5, 1.0));
    assert_eq!(raced.strategy(), StrategyPolicy::Race { width: 2 });
    assert_eq!(raced.exploration(), 0.02, "scored rules explore 2 % by default");
    assert_eq!(
        fixed.strategy(),
        StrategyPolicy::Hedge(HedgeDelay::Fixed(Duration::from_millis(400)))
    );
    // Purpose and prefix decide which rule matches.
    let query = |number: &str, purpose| {
        let query = RouteQuery::new(country("US"), Channel::Sms).with_purpose(purpose);
        let query = RouteQuery { number: NumberDigits::parse(number), ..query };
        table.find(&query).map(|found| found.index)
    };
    assert_eq!(query("+14155550100", Purpose::Verification), Some(0));
    assert_eq!(query("+14155550100", Purpose::Enrollment), Some(1));
    assert_eq!(query("+12125550100", Purpose::Verification), Some(1));
    assert_eq!(
        hedged.mismatch(&RouteQuery::new(country("US"), Channel::Sms)),
        Some(Mismatch::Purpose)
    );
}

#[test]
fn rules_narrowed_by_purpose_or_prefix_do_not_shadow() {
    let narrow_first = "[[routes]]\ncountries = [\"*\"]\npurposes = [\"enrollment\"]\nproviders = [\"twilio-us\"]\n\n\
                        [[routes]]\ncountries = [\"*\"]\nprefixes = [\"44\"]\nproviders = [\"twilio-us\"]\n\n\
                        [[routes]]\ncountries = [\"*\"]\nproviders = [\"twilio-backup\"]\n";
    assert!(table(narrow_first).is_ok());
    let covered = "[[routes]]\ncountries = [\"*\"]\nprefixes = [\"44\"]\nproviders = [\"twilio-us\"]\n\n\
                   [[routes]]\ncountries = [\"GB\"]\nprefixes = [\"447\"]\npurposes = [\"other\"]\nproviders = [\"twilio-backup\"]\n";
    assert!(error(covered).starts_with("routes[1]: never matches"));
}

#[test]
fn ranking_and_strategy_validation_names_the_key() {
    let rule = |body: &str| {
        format!(
            "[[routes]]\ncountries = [\"US\"]\nproviders = [\"twilio-us\", \"twilio-backup\"]\n{body}\n"
        )
    };
    let cases: &[(&str, &str)] = &[
        (
            "purposes = [\"login\"]",
            "routes[0].purposes[0]: unknown purpose \"login\" (expected one of enrollment, verification, account_unlock, password_reset, other)",
        ),
        (
            "purposes = []",
            "routes[0].purposes: must list at least one purpose, or be left out for all",
        ),
        (
            "prefixes = [\"1-415\"]",
            "routes[0].prefixes[0]: \"1-415\" is not an E.164 prefix (1 to 15 digits, country code first)",
        ),
        ("prefixes = [\"1415\", \"+1415\"]", "routes[0].prefixes[1]: 1415 is listed twice"),
        ("hedge_delay_ms = 300", "routes[0].hedge_delay_ms: only applies to strategy = \"hedge\""),
        ("race_width = 2", "routes[0].race_width: only applies to strategy = \"race\""),
        (
            "strategy = \"race\"\nrace_width = 3",
            "routes[0].race_width: must be between 2 and the number of providers (2)",
        ),
        (
            "strategy = \"hedge\"\nhedge_delay_ms = 0",
            "routes[0].hedge_delay_ms: must be between 1 and 3000",
        ),
        (
            "strategy = \"hedge\"\nhedge_delay_ms = 300\nhedge_quantile = 0.5",
            "routes[0].hedge_quantile: applies to a learned delay, and hedge_delay_ms fixes it",
        ),
        (
            "strategy = \"hedge\"\nhedge_quantile = 1.0",
            "routes[0].hedge_quantile: must be between 0 and 1, exclusive",
        ),
        (
            "strategy = \"hedge\"\nhedge_delay_min_ms = 500\nhedge_delay_max_ms = 400",
            "routes[0].hedge_delay_max_ms: must be at least hedge_delay_min_ms (500)",
        ),
        (
            "exploration = 0.1",
            "routes[0].exploration: needs optimize = \"reliability\", \"latency\" or \"cost\"",
        ),
        (
            "optimize = \"cost\"\nexploration = 0.9",
            "routes[0].exploration: must be between 0 and 0.5",
        ),
        (
            "weights = { twilio-us = 2.0 }",
            "routes[0].weights: needs optimize = \"reliability\", \"latency\" or \"cost\" (priority follows the provider order)",
        ),
        (
            "optimize = \"cost\"\nweights = { textonly = 2.0 }",
            "routes[0].weights.textonly: `textonly` is not one of this rule's providers",
        ),
        (
            "optimize = \"cost\"\nweights = { twilio-us = 0.0 }",
            "routes[0].weights.twilio-us: must be a number above 0 and at most 1000",
        ),
    ];
    for (body, expected) in cases {
        assert_eq!(error(&rule(body)), *expected, "{body}");
    }
    let one =
        "[[routes]]\ncountries = [\"US\"]\nproviders = [\"twilio-us\"]\nstrategy = \"hedge\"\n";
    assert_eq!(error(one), "routes[0].strategy: hedge needs at least two providers");
    for (body, field) in [
        ("strategy = \"fastest\"", "strategy"),
        ("optimize = \"speed\"", "optimize"),
        ("hedge_delay = \"soon\"", "hedge_delay"),
    ] {
        let result = toml::from_str::<File>(&rule(body));
        assert!(result.is_err(), "{field}");
    }
}

#[test]
fn refuses_unknown_keys() {
    let result = toml::from_str::<File>(
        "[[routes]]\ncountries = [\"US\"]\nprovider = [\"twilio-us\"]\nproviders = [\"twilio-us\"]\n",
    );
    assert!(result.unwrap_err().to_string().contains("unknown field `provider`"));
}

#[test]
fn first_match_in_config_order_wins() {
    let table = table(EXAMPLE).unwrap();
    let found = |code: &str, channel| {
        table
            .find(&RouteQuery::new(country(code), channel))
            .map(|found| found.rule.id().to_string())
    };
    assert_eq!(found("US", Channel::Sms).as_deref(), Some("north-america"));
    assert_eq!(found("CA", Channel::Voice).as_deref(), Some("north-america"));
    assert_eq!(found("GB", Channel::Sms).as_deref(), Some("routes[1]"));
    // GB voice is not in routes[1], so it falls through to the catch-all.
    assert_eq!(found("GB", Channel::Voice).as_deref(), Some("routes[2]"));
    assert_eq!(found("FR", Channel::Sms).as_deref(), Some("routes[2]"));
    let matched = table.find(&RouteQuery::new(country("GB"), Channel::Sms)).unwrap();
    assert_eq!(matched.index, 1);
    assert_eq!(matched.rule.providers()[0].as_str(), "textonly");
    assert_eq!(table.rules().len(), 3);
}

#[test]
fn no_match_without_a_catch_all() {
    let table = table(
        "[[routes]]\ncountries = [\"us\"]\nchannels = [\"SMS\"]\nproviders = [\"twilio-us\"]\n",
    )
    .unwrap();
    assert!(
        table.find(&RouteQuery::new(country("US"), Channel::Sms)).is_some(),
        "codes and channels are case-insensitive"
    );
    assert!(table.find(&RouteQuery::new(country("US"), Channel::Voice)).is_none());
    assert!(table.find(&RouteQuery::new(country("CA"), Channel::Sms)).is_none());
}

#[test]
fn validation_names_the_key() {
    let rule = |body: &str| format!("[[routes]]\n{body}\n");
    let cases: &[(&str, &str)] = &[
        (
            "countries = [\"US\"]\nproviders = [\"twilio-us\", \"nexmo\"]",
            "routes[0].providers[1]: unknown provider `nexmo` (not under [providers])",
        ),
        (
            "countries = [\"US\", \"CA\", \"USA\"]\nproviders = [\"twilio-us\"]",
            "routes[0].countries[2]: \"USA\" is not an ISO 3166-1 alpha-2 code",
        ),
        (
            "countries = [\"ZZ\"]\nproviders = [\"twilio-us\"]",
            "routes[0].countries[0]: \"ZZ\" is not an ISO 3166-1 alpha-2 code",
        ),
        (
            "countries = [\"US\", \"us\"]\nproviders = [\"twilio-us\"]",
            "routes[0].countries[1]: US is listed twice (first at countries[0])",
        ),
        (
            "countries = []\nproviders = [\"twilio-us\"]",
            "routes[0].countries: must list at least one country code, or \"*\" for every country",
        ),
        (
            "countries = [\"US\", \"*\"]\nproviders = [\"twilio-us\"]",
            "routes[0].countries: \"*\" already covers every country and cannot be combined with codes",
        ),
        (
            "countries = [\"US\"]\nproviders = []",
            "routes[0].providers: must list at least one provider",
        ),
        (
            "countries = [\"US\"]\nproviders = [\"twilio-us\", \"twilio-backup\", \"twilio-us\"]",
            "routes[0].providers[2]: `twilio-us` is listed twice (first at providers[0])",
        ),
        (
            "countries = [\"US\"]\nchannels = [\"sms\", \"fax\"]\nproviders = [\"twilio-us\"]",
            "routes[0].channels[1]: unknown channel \"fax\" (expected \"sms\" or \"voice\")",
        ),
        (
            "countries = [\"US\"]\nchannels = [\"sms\", \"sms\"]\nproviders = [\"twilio-us\"]",
            "routes[0].channels[1]: sms is listed twice",
        ),
        (
            "countries = [\"US\"]\nchannels = []\nproviders = [\"twilio-us\"]",
            "routes[0].channels: must list at least one channel (\"sms\", \"voice\"), or be left out for both",
        ),
        (
            "countries = [\"US\"]\nchannels = [\"voice\"]\nproviders = [\"twilio-us\", \"textonly\"]",
            "routes[0].providers[1]: `textonly` supports none of this rule's channels (voice)",
        ),
        (
            "name = \" \"\ncountries = [\"US\"]\nproviders = [\"twilio-us\"]",
            "routes[0].name: must not be blank",
        ),
    ];
    for (body, expected) in cases {
        assert_eq!(error(&rule(body)), *expected, "{body}");
    }
}

#[test]
fn a_provider_needs_only_one_of_the_rules_channels() {
    // textonly cannot call, but the rule also covers sms: planning excludes it for voice only.
    let table =
        table("[[routes]]\ncountries = [\"*\"]\nproviders = [\"textonly\", \"callonly\"]\n")
            .unwrap();
    assert_eq!(table.rules()[0].providers().len(), 2);
    assert!(table.catalog().supports(&ProviderId::parse("textonly").unwrap(), Channel::Sms));
    assert!(!table.catalog().supports(&ProviderId::parse("textonly").unwrap(), Channel::Voice));
}

#[test]
fn refuses_rules_that_can_never_match() {
    let catch_all_first = "[[routes]]\ncountries = [\"*\"]\nproviders = [\"twilio-us\"]\n\n\
                           [[routes]]\ncountries = [\"US\"]\nproviders = [\"twilio-backup\"]\n";
    assert_eq!(
        error(catch_all_first),
        "routes[1]: never matches: earlier rules already cover all of its countries and channels"
    );
    let covered_piecewise = "[[routes]]\ncountries = [\"US\"]\nproviders = [\"twilio-us\"]\n\n\
                             [[routes]]\ncountries = [\"CA\"]\nchannels = [\"sms\"]\nproviders = [\"twilio-us\"]\n\n\
                             [[routes]]\ncountries = [\"US\", \"CA\"]\nchannels = [\"sms\"]\nproviders = [\"twilio-backup\"]\n";
    assert!(error(covered_piecewise).starts_with("routes[2]: never matches"));
    // Partly covered is fine: CA voice still reaches the second rule.
    let partly = "[[routes]]\ncountries = [\"CA\"]\nchannels = [\"sms\"]\nproviders = [\"twilio-us\"]\n\n\
                  [[routes]]\ncountries = [\"CA\"]\nproviders = [\"twilio-backup\"]\n";
    assert!(table(partly).is_ok());
}

#[test]
fn refuses_duplicate_names_and_an_empty_list() {
    let twice = "[[routes]]\nname = \"eu\"\ncountries = [\"FR\"]\nproviders = [\"twilio-us\"]\n\n\
                 [[routes]]\nname = \"eu\"\ncountries = [\"DE\"]\nproviders = [\"twilio-us\"]\n";
    assert_eq!(error(twice), "routes[1].name: \"eu\" is already the name of routes[0]");
    assert_eq!(
        RouteTable::try_new(&[], &PriceConfig::empty(), &catalog()).unwrap_err().to_string(),
        "routes: at least one [[routes]] rule is required"
    );
}

#[test]
fn catalog_answers_channel_questions() {
    let catalog = catalog();
    let callonly = ProviderId::parse("callonly").unwrap();
    assert_eq!(catalog.channels(&callonly), Some(&[Channel::Voice][..]));
    assert!(!catalog.supports(&ProviderId::parse("nobody").unwrap(), Channel::Sms));
    assert_eq!(catalog.providers().count(), 4);
}

#[test]
fn only_a_star_rule_matches_a_number_of_unknown_country() {
    let any = validate_countries("routes[0]", &["*".to_owned()]).unwrap();
    let listed = validate_countries("routes[1]", &["US".to_owned(), "JM".to_owned()]).unwrap();
    assert!(any.contains(Country::UNKNOWN));
    assert!(!listed.contains(Country::UNKNOWN));
    assert!(validate_countries("routes[2]", &["unknown".to_owned()]).is_err());
}
