//! Validation of `[okta]` and `[okta.auth]` (shared-secret header or OAuth 2.0); `[okta.events]`
//! and `[okta.system_log]` are in `events.rs`.

use std::time::Duration;

use switchboard_core::{ConfigError, Country};

use super::events::{validate_events, validate_system_log};
use super::{
    AuthMode, DEFAULT_JWKS_COOLDOWN_S, DEFAULT_JWKS_TIMEOUT_MS, DEFAULT_LEEWAY_S, OktaAuthConfig,
    OktaConfig, OktaSettings, check_https_url, check_path, header_secrets,
};
use crate::auth::{CachePolicy, OAuthSettings, OAuthVerifier, OktaAuth};

pub(super) fn validate_okta(okta: &OktaConfig) -> Result<OktaSettings, ConfigError> {
    check_path("okta.path", &okta.path)?;
    if !(100..=2_900).contains(&okta.deadline_ms) {
        return Err(ConfigError::invalid(
            "okta.deadline_ms",
            "must be between 100 and 2900: Okta gives up after 3000 ms, including network time",
        ));
    }
    let default_region = match &okta.default_region {
        Some(text) => Some(Country::parse(text).ok_or_else(|| {
            ConfigError::invalid(
                "okta.default_region",
                format!("`{text}` is not an ISO 3166-1 alpha-2 code"),
            )
        })?),
        None => None,
    };
    if !(30..=3_600).contains(&okta.event_time_tolerance_s) {
        return Err(ConfigError::invalid(
            "okta.event_time_tolerance_s",
            "must be between 30 and 3600",
        ));
    }
    Ok(OktaSettings {
        path: okta.path.clone(),
        deadline: Duration::from_millis(okta.deadline_ms),
        report: okta.report,
        default_region,
        event_time_tolerance: Duration::from_secs(okta.event_time_tolerance_s),
        shed_answer: okta.shed_answer,
        auth: validate_okta_auth(&okta.auth)?,
        events: okta
            .events
            .as_ref()
            .map(|events| validate_events(events, &okta.path))
            .transpose()?,
        system_log: okta.system_log.as_ref().map(validate_system_log).transpose()?,
    })
}

fn validate_okta_auth(auth: &OktaAuthConfig) -> Result<OktaAuth, ConfigError> {
    let header_keys = [("header", auth.header.is_some()), ("secrets", !auth.secrets.is_empty())];
    let oauth_keys = [
        ("issuer", auth.issuer.is_some()),
        ("audience", auth.audience.is_some()),
        ("scope", auth.scope.is_some()),
        ("client_id", auth.client_id.is_some()),
        ("jwks_uri", auth.jwks_uri.is_some()),
        ("leeway_s", auth.leeway_s.is_some()),
        ("jwks_cooldown_s", auth.jwks_cooldown_s.is_some()),
        ("jwks_timeout_ms", auth.jwks_timeout_ms.is_some()),
    ];
    let (mode, other_keys) = match auth.mode {
        AuthMode::Header => ("header", &oauth_keys[..]),
        AuthMode::OAuth2 => ("oauth2", &header_keys[..]),
    };
    if let Some((key, _)) = other_keys.iter().find(|(_, is_set)| *is_set) {
        return Err(ConfigError::invalid(
            format!("okta.auth.{key}"),
            format!("is not used with mode = \"{mode}\""),
        ));
    }
    match auth.mode {
        AuthMode::Header => {
            header_secrets("okta.auth", auth.header.as_deref(), &auth.secrets).map(OktaAuth::Header)
        }
        AuthMode::OAuth2 => {
            let settings = validate_oauth(auth)?;
            let verifier = OAuthVerifier::try_new(settings).map_err(|error| {
                ConfigError::invalid("okta.auth", format!("http client: {error}"))
            })?;
            Ok(OktaAuth::OAuth2(std::sync::Arc::new(verifier)))
        }
    }
}

fn validate_oauth(auth: &OktaAuthConfig) -> Result<OAuthSettings, ConfigError> {
    fn required<'a>(key: &str, value: &'a Option<String>) -> Result<&'a str, ConfigError> {
        match value.as_deref().map(str::trim) {
            Some(text) if !text.is_empty() => Ok(text),
            Some(_) => Err(ConfigError::invalid(format!("okta.auth.{key}"), "must not be empty")),
            None => Err(ConfigError::invalid(
                format!("okta.auth.{key}"),
                "is required with mode = \"oauth2\"",
            )),
        }
    }
    let issuer = required("issuer", &auth.issuer)?;
    check_https_url("okta.auth.issuer", issuer)?;
    let audience = required("audience", &auth.audience)?;
    let scope = required("scope", &auth.scope)?;
    if scope.contains(char::is_whitespace) {
        return Err(ConfigError::invalid("okta.auth.scope", "must be one scope, without spaces"));
    }
    let client_id = match &auth.client_id {
        Some(_) => Some(required("client_id", &auth.client_id)?.to_owned()),
        None => None,
    };
    let jwks_uri = match &auth.jwks_uri {
        Some(_) => {
            let uri = required("jwks_uri", &auth.jwks_uri)?;
            check_https_url("okta.auth.jwks_uri", uri)?;
            Some(uri.to_owned())
        }
        None => None,
    };
    let leeway_s = auth.leeway_s.unwrap_or(DEFAULT_LEEWAY_S);
    if leeway_s > 300 {
        return Err(ConfigError::invalid("okta.auth.leeway_s", "must be between 0 and 300"));
    }
    let cooldown_s = auth.jwks_cooldown_s.unwrap_or(DEFAULT_JWKS_COOLDOWN_S);
    if !(10..=3_600).contains(&cooldown_s) {
        return Err(ConfigError::invalid(
            "okta.auth.jwks_cooldown_s",
            "must be between 10 and 3600 (it bounds the key fetches a flood of unknown kids causes)",
        ));
    }
    let timeout_ms = auth.jwks_timeout_ms.unwrap_or(DEFAULT_JWKS_TIMEOUT_MS);
    if !(100..=5_000).contains(&timeout_ms) {
        return Err(ConfigError::invalid(
            "okta.auth.jwks_timeout_ms",
            "must be between 100 and 5000: a request waiting for keys still has Okta's 3 s to meet",
        ));
    }
    Ok(OAuthSettings {
        issuer: issuer.to_owned(),
        audience: audience.to_owned(),
        scope: scope.to_owned(),
        client_id,
        jwks_uri,
        leeway: Duration::from_secs(leeway_s),
        policy: CachePolicy {
            cooldown: Duration::from_secs(cooldown_s),
            timeout: Duration::from_millis(timeout_ms),
        },
    })
}
