use super::*;

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

#[test]
fn minimal_config_takes_documented_defaults() {
    let settings = Settings::parse(MINIMAL, test_env).unwrap();
    assert_eq!(settings.okta.path, "/okta/telephony");
    assert_eq!(settings.okta.deadline, Duration::from_millis(2500));
    assert_eq!(settings.okta.report, Report::AlwaysSuccess);
    assert_eq!(settings.okta.auth.header().as_str(), "authorization");
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

#[test]
fn reads_secrets_from_files_and_remembers_them() {
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
        settings.okta.auth.verify(&headers).is_ok(),
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

#[test]
fn secrets_never_appear_in_debug_output() {
    let settings = Settings::parse(MINIMAL, test_env).unwrap();
    let printed = format!("{settings:?}");
    assert!(!printed.contains("test-value-for-OKTA_HOOK_SECRET"), "{printed}");
    assert!(!printed.contains("test-value-for-TWILIO_AUTH_TOKEN"), "{printed}");
}
