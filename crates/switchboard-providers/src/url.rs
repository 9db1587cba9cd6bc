//! URL settings: a provider's base URL and the callback base the server hands over.

use switchboard_core::ConfigError;

/// Checks `{key_prefix}.base_url` and returns it without a trailing `/`.
pub(crate) fn base_url(key_prefix: &str, url: &str) -> Result<String, ConfigError> {
    check_base_url(&format!("{key_prefix}.base_url"), url)
}

/// Checks a base URL setting at `key`; returns it without a trailing `/`.
pub(crate) fn check_base_url(key: &str, url: &str) -> Result<String, ConfigError> {
    let invalid = |reason: &str| ConfigError::invalid(key, reason);
    let parsed = reqwest::Url::parse(url).map_err(|_| invalid("must be a URL"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
        return Err(invalid("must be an http or https URL with a host"));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(invalid("must not have a query or fragment"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(invalid("must not carry credentials"));
    }
    Ok(url.trim_end_matches('/').to_owned())
}

/// Checks a callback base URL handed over by the server (`{public_base_url}/callbacks/{id}`).
pub(crate) fn callback_base(key_prefix: &str, base: &str) -> Result<String, ConfigError> {
    let parsed = reqwest::Url::parse(base).map_err(|_| {
        ConfigError::invalid(format!("{key_prefix} callback base"), "must be a URL")
    })?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.query().is_some() {
        return Err(ConfigError::invalid(
            format!("{key_prefix} callback base"),
            "must be an http or https URL without a query",
        ));
    }
    Ok(base.trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_checked_and_trimmed() {
        assert_eq!(check_base_url("k", "http://127.0.0.1:1/").unwrap(), "http://127.0.0.1:1");
        for bad in ["ftp://x", "https://u:p@x", "https://x/?a=1", "not a url"] {
            assert!(
                check_base_url("k.base_url", bad)
                    .unwrap_err()
                    .to_string()
                    .starts_with("k.base_url: ")
            );
        }
    }

    #[test]
    fn base_url_rules() {
        assert_eq!(base_url("p", "http://127.0.0.1:8080/").unwrap(), "http://127.0.0.1:8080");
        for bad in ["ftp://x", "https://u:p@x", "https://x?a=1", "not a url"] {
            let error = base_url("providers.p", bad).unwrap_err().to_string();
            assert!(error.starts_with("providers.p.base_url: "), "{error}");
        }
    }
}
