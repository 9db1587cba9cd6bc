use super::*;
use crate::auth::OAuthSettings;

const MINIMAL: &str = r#"
[server]
listen = "127.0.0.1:8080"

[okta.auth]
secrets = ["${OKTA_HOOK_SECRET}"]

[providers.twilio-us]
kind = "twilio"
account_sid = "AC0123456789abcdef0123456789abcdef"
auth_token = "${TWILIO_AUTH_TOKEN}"
from = "+15005550006"

[[routes]]
countries = ["*"]
providers = ["twilio-us"]
"#;

fn test_env(name: &str) -> Option<String> {
    Some(format!("test-value-for-{name}"))
}

fn error_of(text: &str) -> String {
    Settings::parse(text, test_env).unwrap_err().to_string()
}

#[test]
fn every_shipped_config_file_is_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|ext| ext == "toml") {
            let text = std::fs::read_to_string(&path).unwrap();
            if let Err(error) = Settings::parse(&text, test_env) {
                panic!("{}: {error}", path.display());
            }
            checked += 1;
        }
    }
    assert!(checked >= 2, "expected demo.toml and example.toml");
}

/// The commented `mode = "oauth2"` block of example.toml, uncommented, is a valid config.
#[test]
fn example_oauth2_alternative_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/example.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let section = text.find("[okta.auth]").unwrap();
    let next_section = section + text[section..].find("\n# Conversion from Okta").unwrap();
    let block = &text[section..next_section];
    let oauth = &block[block.find("# mode = \"oauth2\"").expect("the oauth2 alternative")..];
    let keys: Vec<&str> = oauth
        .lines()
        .filter_map(|line| line.strip_prefix("# "))
        .filter(|line| !line.starts_with('#'))
        .collect();
    assert_eq!(keys.len(), 9, "every oauth2 key is documented: {keys:?}");
    let uncommented =
        format!("{}[okta.auth]\n{}\n{}", &text[..section], keys.join("\n"), &text[next_section..]);
    let settings = Settings::parse(&uncommented, test_env).unwrap();
    assert_eq!(settings.okta.auth.mode(), "oauth2");
}

/// The commented `[okta.events]` and `[okta.system_log]` tables of example.toml, uncommented,
/// are a valid config with the documented defaults.
#[test]
fn example_conversion_tables_are_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/example.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let start = text.find("# [okta.events]\n").expect("the event hook's table");
    let end = start + text[start..].find("\n[delivery]").unwrap();
    let uncommented: Vec<&str> = text[start..end]
        .lines()
        .map(|line| line.strip_prefix("# ").unwrap_or(if line == "#" { "" } else { line }))
        .collect();
    let keys = uncommented.iter().filter(|line| line.contains(" = ")).count();
    assert_eq!(keys, 6, "every key is documented: {uncommented:?}");
    let text = format!("{}{}{}", &text[..start], uncommented.join("\n"), &text[end..]);
    let settings = Settings::parse(&text, test_env).unwrap();
    let events = settings.okta.events.expect("[okta.events]");
    assert_eq!(events.path, "/okta/events");
    let log = settings.okta.system_log.expect("[okta.system_log]");
    assert_eq!(log.org_url, "https://example.okta.com");
    assert_eq!(log.interval, Duration::from_secs(60));
}

#[test]
fn minimal_config_takes_documented_defaults() {
    let settings = Settings::parse(MINIMAL, test_env).unwrap();
    assert_eq!(settings.okta.path, "/okta/telephony");
    assert_eq!(settings.okta.deadline, Duration::from_millis(2500));
    assert_eq!(settings.okta.report, Report::AlwaysSuccess);
    assert_eq!(settings.okta.auth.mode(), "header");
    assert_eq!(settings.okta.auth.header(), "authorization");
    assert_eq!(settings.admin_listen.to_string(), "127.0.0.1:9090");
    assert_eq!(settings.providers.len(), 1);
}

#[test]
fn substitutes_environment_variables_and_names_missing_ones() {
    let error =
        Settings::parse(MINIMAL, |name| (name == "OKTA_HOOK_SECRET").then(|| "x".repeat(20)))
            .unwrap_err();
    assert_eq!(
        error.to_string(),
        "providers.twilio-us.auth_token: environment variable TWILIO_AUTH_TOKEN is not set"
    );
    let mut files = Vec::new();
    assert_eq!(expand("a$${b}c", "k", &test_env, &mut files).unwrap(), "a${b}c");
    assert_eq!(expand("cost $5", "k", &test_env, &mut files).unwrap(), "cost $5");
    let lower = |n: &str| Some(n.to_lowercase());
    assert_eq!(expand("${A}-${B}", "k", &lower, &mut files).unwrap(), "a-b");
    let error = expand("${9X}", "k", &test_env, &mut files).unwrap_err().to_string();
    assert!(error.contains("not an environment variable name"), "{error}");
    let error = expand("${OPEN", "k", &test_env, &mut files).unwrap_err().to_string();
    assert!(error.contains("unterminated"), "{error}");
    assert!(files.is_empty());
}

#[tokio::test]
async fn reads_secrets_from_files_and_remembers_them() {
    let dir = std::env::temp_dir().join(format!("switchboard-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let secret = dir.join("okta-secret");
    std::fs::write(&secret, "a-mounted-secret-0123456789\n").unwrap();
    let text = MINIMAL.replace("${OKTA_HOOK_SECRET}", &format!("${{file:{}}}", secret.display()));
    let settings = Settings::parse(&text, test_env).unwrap();
    assert_eq!(settings.secret_files, std::slice::from_ref(&secret));
    let mut headers = axum::http::HeaderMap::new();
    headers.insert("authorization", "a-mounted-secret-0123456789".parse().unwrap());
    assert!(
        settings.okta.auth.verify(&headers).await.is_ok(),
        "the trailing newline is not part of the secret"
    );

    let missing = MINIMAL.replace("${OKTA_HOOK_SECRET}", "${file:/nonexistent/secret}");
    let error = Settings::parse(&missing, test_env).unwrap_err().to_string();
    assert!(
        error.starts_with("okta.auth.secrets[0]: cannot read secret file /nonexistent/secret"),
        "{error}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn errors_name_the_offending_key() {
    let cases = [
        (MINIMAL.replace("listen = \"127.0.0.1:8080\"", "listen = \"nowhere\""), "server.listen"),
        (
            MINIMAL.replace("[okta.auth]", "[okta]\ndeadline_ms = 3500\n[okta.auth]"),
            "okta.deadline_ms",
        ),
        (
            MINIMAL.replace("[okta.auth]", "[okta]\nreport = \"sometimes\"\n[okta.auth]"),
            "okta.report",
        ),
        (
            MINIMAL.replace("[okta.auth]", "[okta]\ndefault_region = \"USA\"\n[okta.auth]"),
            "okta.default_region",
        ),
        (MINIMAL.replace("[okta.auth]", "[okta]\npathh = \"/x\"\n[okta.auth]"), "okta"),
        (
            MINIMAL.replace("secrets = [\"${OKTA_HOOK_SECRET}\"]", "secrets = [\"short\"]"),
            "okta.auth.secrets[0]",
        ),
        (
            MINIMAL.replace("secrets = [\"${OKTA_HOOK_SECRET}\"]", "secrets = []"),
            "okta.auth.secrets",
        ),
        (
            MINIMAL.replace("providers = [\"twilio-us\"]", "providers = [\"nobody\"]"),
            "routes[0].providers[0]",
        ),
        (
            MINIMAL.replace(
                "account_sid = \"AC0123456789abcdef0123456789abcdef\"",
                "account_sid = \"nope\"",
            ),
            "providers.twilio-us",
        ),
        (
            MINIMAL.replace("[providers.twilio-us]", "[providers.\"twilio us\"]"),
            "providers.twilio us",
        ),
    ];
    for (text, key) in cases {
        let error = error_of(&text);
        assert!(error.starts_with(key), "expected an error about `{key}`, got: {error}");
    }
}

const OAUTH_AUTH: &str = r#"[okta.auth]
mode = "oauth2"
issuer = "https://example.okta.com/oauth2/default"
audience = "api://default"
scope = "switchboard.hook"
"#;

fn oauth_config(extra: &str) -> String {
    MINIMAL.replace(
        "[okta.auth]\nsecrets = [\"${OKTA_HOOK_SECRET}\"]\n",
        &format!("{OAUTH_AUTH}{extra}\n"),
    )
}

fn oauth_settings(auth: &crate::auth::OktaAuth) -> &OAuthSettings {
    match auth {
        crate::auth::OktaAuth::OAuth2(verifier) => verifier.settings(),
        crate::auth::OktaAuth::Header(_) => panic!("expected oauth2 mode"),
    }
}

#[test]
fn oauth2_mode_takes_documented_defaults() {
    let settings = Settings::parse(&oauth_config(""), test_env).unwrap();
    assert_eq!(settings.okta.auth.mode(), "oauth2");
    let oauth = oauth_settings(&settings.okta.auth);
    assert_eq!(oauth.issuer, "https://example.okta.com/oauth2/default");
    assert_eq!(oauth.audience, "api://default");
    assert_eq!(oauth.scope, "switchboard.hook");
    assert_eq!(oauth.client_id, None);
    assert_eq!(oauth.jwks_uri, None);
    assert_eq!(oauth.leeway, Duration::from_secs(60));
    assert_eq!(oauth.policy.cooldown, Duration::from_secs(60));
    assert_eq!(oauth.policy.timeout, Duration::from_millis(1000));

    let text = oauth_config(
        "client_id = \"0oa1b2c3\"\njwks_uri = \"http://127.0.0.1:9/keys\"\nleeway_s = 0\njwks_cooldown_s = 300\njwks_timeout_ms = 500",
    );
    let settings = Settings::parse(&text, test_env).unwrap();
    let oauth = oauth_settings(&settings.okta.auth);
    assert_eq!(oauth.client_id.as_deref(), Some("0oa1b2c3"));
    assert_eq!(oauth.jwks_uri.as_deref(), Some("http://127.0.0.1:9/keys"));
    assert_eq!(oauth.leeway, Duration::ZERO);
    assert_eq!(oauth.policy.cooldown, Duration::from_secs(300));
    assert_eq!(oauth.policy.timeout, Duration::from_millis(500));
}

#[test]
fn oauth2_errors_name_the_offending_key() {
    let issuer = "issuer = \"https://example.okta.com/oauth2/default\"";
    let cases = [
        (oauth_config("").replace(issuer, ""), "okta.auth.issuer: is required"),
        (
            oauth_config("").replace(issuer, "issuer = \"http://example.okta.com\""),
            "okta.auth.issuer: must use https",
        ),
        (
            oauth_config("").replace(issuer, "issuer = \"example.okta.com\""),
            "okta.auth.issuer: must start with https://",
        ),
        (
            oauth_config("").replace(issuer, "issuer = \"https://x.okta.com?a=b\""),
            "okta.auth.issuer: must be a host",
        ),
        (
            oauth_config("").replace("audience = \"api://default\"", "audience = \" \""),
            "okta.auth.audience: must not be empty",
        ),
        (
            oauth_config("").replace("audience = \"api://default\"", ""),
            "okta.auth.audience: is required",
        ),
        (
            oauth_config("").replace("scope = \"switchboard.hook\"", ""),
            "okta.auth.scope: is required",
        ),
        (
            oauth_config("").replace("scope = \"switchboard.hook\"", "scope = \"a b\""),
            "okta.auth.scope: must be one scope",
        ),
        (oauth_config("client_id = \"\""), "okta.auth.client_id: must not be empty"),
        (
            oauth_config("jwks_uri = \"http://keys.example.com/keys\""),
            "okta.auth.jwks_uri: must use https",
        ),
        (oauth_config("leeway_s = 301"), "okta.auth.leeway_s: must be between 0 and 300"),
        (
            oauth_config("jwks_cooldown_s = 5"),
            "okta.auth.jwks_cooldown_s: must be between 10 and 3600",
        ),
        (
            oauth_config("jwks_timeout_ms = 50"),
            "okta.auth.jwks_timeout_ms: must be between 100 and 5000",
        ),
        (
            oauth_config("secrets = [\"a-long-enough-secret\"]"),
            "okta.auth.secrets: is not used with mode = \"oauth2\"",
        ),
        (
            oauth_config("header = \"X-Okta\""),
            "okta.auth.header: is not used with mode = \"oauth2\"",
        ),
        (oauth_config("").replace("mode = \"oauth2\"", "mode = \"jwt\""), "okta.auth.mode"),
        (
            MINIMAL.replace("[okta.auth]", "[okta.auth]\nissuer = \"https://x.okta.com\""),
            "okta.auth.issuer: is not used with mode = \"header\"",
        ),
        (
            MINIMAL.replace("[okta.auth]", "[okta.auth]\nleeway_s = 10"),
            "okta.auth.leeway_s: is not used with mode = \"header\"",
        ),
        (
            MINIMAL.replace("secrets = [\"${OKTA_HOOK_SECRET}\"]", ""),
            "okta.auth.secrets: give one secret",
        ),
    ];
    for (text, expected) in cases {
        let error = error_of(&text);
        assert!(error.starts_with(expected), "expected `{expected}...`, got: {error}");
    }
}

#[test]
fn secrets_never_appear_in_debug_output() {
    let settings = Settings::parse(MINIMAL, test_env).unwrap();
    let printed = format!("{settings:?}");
    assert!(!printed.contains("test-value-for-OKTA_HOOK_SECRET"), "{printed}");
    assert!(!printed.contains("test-value-for-TWILIO_AUTH_TOKEN"), "{printed}");
}

/// example.toml's `[state]` switched to Redis with its commented `url` is a valid config, and
/// every documented key is one the loader reads (a typo would be refused as unknown).
#[test]
fn example_state_table_switched_to_redis_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/example.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let start = text.find("\n[state]\n").expect("the [state] table");
    let end = start + 1 + text[start + 1..].find("\n[").unwrap();
    let block = text[start..end].replace("backend = \"memory\"", "backend = \"redis\"").replace(
        "# url = \"${file:/run/secrets/switchboard-redis-url}\"",
        "url = \"redis://redis:6379/0\"",
    );
    assert!(block.contains("url = \"redis://"), "the url line is documented");
    let switched = format!("{}{}{}", &text[..start], block, &text[end..]);
    let settings = Settings::parse(&switched, test_env).unwrap();
    let crate::config::StateSettings::Redis(redis) = settings.state else {
        panic!("redis settings");
    };
    assert_eq!(redis.key_prefix, "switchboard:");
    assert_eq!(redis.command_timeout, std::time::Duration::from_millis(50));
    let unknown = switched.replace("breaker_open_ms = 1000", "breaker_open = 1000");
    assert!(error_of(&unknown).contains("state"), "{}", error_of(&unknown));
}
