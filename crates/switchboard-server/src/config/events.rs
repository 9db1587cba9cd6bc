//! Validation of `[okta.events]` (Okta's event hook) and `[okta.system_log]` (polling the
//! System Log API): where Okta says which codes were entered.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use switchboard_core::ConfigError;

use super::{OktaEventsConfig, SystemLogConfig, check_https_url, check_path, header_secrets};
use crate::auth::HeaderSecretAuth;

/// Validated `[okta.events]`.
#[derive(Debug, Clone)]
pub struct EventsSettings {
    /// The endpoint's path on the hook listener.
    pub path: String,
    pub(crate) auth: HeaderSecretAuth,
}

/// Validated `[okta.system_log]`.
#[derive(Clone)]
pub struct SystemLogSettings {
    /// `https://example.okta.com`, without a trailing slash.
    pub org_url: String,
    /// The API token, without its `SSWS ` prefix.
    pub(crate) api_token: SecretString,
    /// Pause between polls once caught up.
    pub interval: Duration,
}

impl std::fmt::Debug for SystemLogSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SystemLogSettings")
            .field("org_url", &self.org_url)
            .field("api_token", &"***")
            .field("interval", &self.interval)
            .finish()
    }
}

pub(super) fn validate_events(
    events: &OktaEventsConfig,
    hook_path: &str,
) -> Result<EventsSettings, ConfigError> {
    check_path("okta.events.path", &events.path)?;
    if events.path == hook_path {
        return Err(ConfigError::invalid("okta.events.path", "must differ from okta.path"));
    }
    let auth =
        header_secrets("okta.events.auth", events.auth.header.as_deref(), &events.auth.secrets)?;
    Ok(EventsSettings { path: events.path.clone(), auth })
}

pub(super) fn validate_system_log(
    config: &SystemLogConfig,
) -> Result<SystemLogSettings, ConfigError> {
    let org_url = config.org_url.trim_end_matches('/');
    check_https_url("okta.system_log.org_url", org_url)?;
    // Written with or without the scheme Okta's documentation shows it with.
    let token = match config.api_token.expose_secret().trim() {
        scheme if scheme.eq_ignore_ascii_case("SSWS") => "",
        token => match token.split_once(char::is_whitespace) {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("SSWS") => rest.trim(),
            _ => token,
        },
    };
    if token.is_empty() {
        return Err(ConfigError::invalid("okta.system_log.api_token", "must not be empty"));
    }
    if !token.bytes().all(|byte| byte.is_ascii_graphic()) {
        return Err(ConfigError::invalid(
            "okta.system_log.api_token",
            "must be printable ASCII without spaces (an Okta API token)",
        ));
    }
    if !(10..=3_600).contains(&config.interval_s) {
        return Err(ConfigError::invalid(
            "okta.system_log.interval_s",
            "must be between 10 and 3600 (Okta rate-limits /api/v1/logs per org)",
        ));
    }
    Ok(SystemLogSettings {
        org_url: org_url.to_owned(),
        api_token: SecretString::from(token.to_owned()),
        interval: Duration::from_secs(config.interval_s),
    })
}

#[cfg(test)]
mod tests {
    use super::super::Settings;

    const BASE: &str = r#"
[server]
listen = "127.0.0.1:8080"

[okta.auth]
secrets = ["hook-secret-0123456789"]

[providers.twilio-us]
kind = "twilio"
account_sid = "AC0123456789abcdef0123456789abcdef"
auth_token = "token"
from = "+15005550006"

[[routes]]
countries = ["*"]
providers = ["twilio-us"]
"#;

    const EVENTS: &str = r#"
[okta.events.auth]
secrets = ["events-secret-0123456789"]
"#;

    const SYSTEM_LOG: &str = r#"
[okta.system_log]
org_url = "https://example.okta.com/"
api_token = "00abcdefghijklmnopqrstuvwxyz0123456789AB"
"#;

    fn parse(extra: &str) -> Result<Settings, String> {
        Settings::parse(&format!("{BASE}{extra}"), |_| None).map_err(|error| error.to_string())
    }

    #[test]
    fn both_are_off_unless_configured() {
        let settings = parse("").unwrap();
        assert!(settings.okta.events.is_none() && settings.okta.system_log.is_none());
        assert!(!settings.okta.reports_conversions());
    }

    #[test]
    fn events_take_documented_defaults() {
        let settings = parse(EVENTS).unwrap();
        let events = settings.okta.events.as_ref().unwrap();
        assert_eq!(events.path, "/okta/events");
        assert_eq!(events.auth.header().as_str(), "authorization");
        assert!(settings.okta.reports_conversions());
        let mut headers = axum::http::HeaderMap::new();
        headers.insert("authorization", "events-secret-0123456789".parse().unwrap());
        assert!(events.auth.verify(&headers).is_ok());
        headers.insert("authorization", "hook-secret-0123456789".parse().unwrap());
        assert!(events.auth.verify(&headers).is_err(), "the telephony hook's secret is not it");

        let text = r#"
[okta.events]
path = "/hooks/okta-events"
[okta.events.auth]
header = "X-Okta-Events"
secrets = ["${file:/dev/null}new-secret-0123456", "old-secret-0123456789"]
"#;
        let settings = parse(text).unwrap();
        let events = settings.okta.events.as_ref().unwrap();
        assert_eq!(events.path, "/hooks/okta-events");
        assert_eq!(events.auth.header().as_str(), "x-okta-events");
        assert_eq!(settings.secret_files, [std::path::PathBuf::from("/dev/null")]);
    }

    #[test]
    fn system_log_takes_documented_defaults() {
        let settings = parse(SYSTEM_LOG).unwrap();
        let log = settings.okta.system_log.as_ref().unwrap();
        assert_eq!(log.org_url, "https://example.okta.com");
        assert_eq!(log.interval, std::time::Duration::from_secs(60));
        assert!(settings.okta.reports_conversions());
        let printed = format!("{settings:?}");
        assert!(!printed.contains("00abcdefghijklmnop"), "{printed}");
        assert!(!printed.contains("events-secret"), "{printed}");
        let prefixed = SYSTEM_LOG.replace("api_token = \"", "api_token = \"SSWS ");
        let settings = parse(&prefixed).unwrap();
        let token = settings.okta.system_log.unwrap().api_token;
        assert_eq!(
            secrecy::ExposeSecret::expose_secret(&token),
            "00abcdefghijklmnopqrstuvwxyz0123456789AB"
        );
    }

    #[test]
    fn errors_name_the_offending_key_and_never_the_secret() {
        let events = |table: &str, auth: &str| {
            format!("[okta.events]\n{table}\n[okta.events.auth]\n{auth}\n")
        };
        let secrets = "secrets = [\"events-secret-0123456789\"]";
        let cases = [
            (events("path = \"okta/events\"", secrets), "okta.events.path: must start with /"),
            (events("path = \"/okta events\"", secrets), "okta.events.path: must start with /"),
            (events("path = \"/okta/{id}\"", secrets), "okta.events.path: must not contain"),
            (
                events("path = \"/callbacks/okta\"", secrets),
                "okta.events.path: must not be under /callbacks",
            ),
            (
                events("path = \"/okta/telephony\"", secrets),
                "okta.events.path: must differ from okta.path",
            ),
            (events("", ""), "okta.events.auth.secrets: give one secret"),
            ("[okta.events]\n".to_owned(), "okta.events.auth.secrets: give one secret"),
            (
                events(
                    "",
                    "secrets = [\"a-b-c-d-e-f-g-h-1\", \"a-b-c-d-e-f-g-h-2\", \"a-b-c-d-e-f-g-h-3\"]",
                ),
                "okta.events.auth.secrets: give one secret",
            ),
            (
                events("", "secrets = [\"short-secret\"]"),
                "okta.events.auth.secrets[0]: must be at least 16",
            ),
            (
                events("", &format!("header = \"bad header\"\n{secrets}")),
                "okta.events.auth.header: is not a valid HTTP header name",
            ),
            (events("", &format!("mode = \"oauth2\"\n{secrets}")), "okta.events.auth"),
            (events("pathh = \"/x\"", secrets), "okta.events"),
            (
                SYSTEM_LOG.replace("https://example.okta.com/", "http://example.okta.com"),
                "okta.system_log.org_url: must use https",
            ),
            (
                SYSTEM_LOG.replace("https://example.okta.com/", "https://example.okta.com?x=1"),
                "okta.system_log.org_url: must be a host",
            ),
            (
                SYSTEM_LOG.replace("00abcdefghijklmnopqrstuvwxyz0123456789AB", "SSWS "),
                "okta.system_log.api_token: must not be empty",
            ),
            (
                SYSTEM_LOG.replace("00abcdefghijklmnopqrstuvwxyz0123456789AB", "00abc def"),
                "okta.system_log.api_token: must be printable ASCII",
            ),
            (
                format!("{SYSTEM_LOG}interval_s = 9"),
                "okta.system_log.interval_s: must be between 10 and 3600",
            ),
            (
                format!("{SYSTEM_LOG}interval_s = 3601"),
                "okta.system_log.interval_s: must be between 10 and 3600",
            ),
            (
                "[okta.system_log]\norg_url = \"https://example.okta.com\"\n".to_owned(),
                "okta.system_log",
            ),
        ];
        for (text, expected) in cases {
            let error = parse(&text).unwrap_err();
            assert!(error.starts_with(expected), "expected `{expected}...`, got: {error}");
            assert!(!error.contains("secret-0123") && !error.contains("00abc"), "{error}");
        }
    }
}
