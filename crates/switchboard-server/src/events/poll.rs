//! Polling Okta's System Log (`[okta.system_log]`) for the events the event hook would deliver,
//! fed to the same processing (and deduplicated with it by `uuid`).
//!
//! The first request asks for `GET {org_url}/api/v1/logs?since=...&sortOrder=ASCENDING&filter=...`
//! with `Authorization: SSWS <token>`; every later one follows the `Link: <...>; rel="next"`
//! Okta returns, and nothing else: in this polling mode Okta always returns a next link, the
//! cursor past the last event. A page with events is followed at once; an empty page (caught
//! up) waits `interval_s`. A 429 waits until `X-Rate-Limit-Reset`; any other failure waits
//! `interval_s` and asks again for the same page. A next link to another origin is never
//! followed: the token goes to the configured org only. See
//! <https://developer.okta.com/docs/reference/api/system-log/>.
//!
//! The task reads the configuration at every request, so a reload that adds, changes or
//! removes `[okta.system_log]` takes effect without a restart.

use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, HeaderValue, LINK};
use secrecy::ExposeSecret;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use super::process::{Source, process};
use crate::config::SystemLogSettings;
use crate::fleet::events as shared_events;
use crate::okta::events::{FACTOR_ACTIVATION, MFA_VERIFICATION, parse_log_page};
use crate::state::Shared;

/// Largest page read (a page is at most 1,000 events of a few KiB; the default 100).
const MAX_PAGE_BYTES: usize = 8 * 1024 * 1024;
/// Bound on one request, body included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// How often a server without `[okta.system_log]` looks whether a reload added it.
const IDLE_CHECK: Duration = Duration::from_secs(30);
/// Longest wait a 429's `X-Rate-Limit-Reset` can impose (Okta's windows are a minute).
const MAX_RATE_LIMIT_WAIT: Duration = Duration::from_secs(300);

/// Where the next request goes.
struct Cursor {
    org_url: String,
    next: Url,
}

/// Why a page could not be had.
enum Failure {
    /// 429: wait until this Unix time (when Okta said).
    RateLimited { reset: Option<i64> },
    /// Anything else, in words safe to log (never the token).
    Other(String),
}

/// A page of events and the link to the next.
struct Page {
    events: Vec<serde_json::Value>,
    next: Option<Url>,
}

/// Polls until `stop` is cancelled; in Redis mode, only while this replica holds the poller's
/// lease (see `fleet::events`), which it gives up on the way out.
pub(crate) async fn run(shared: Arc<Shared>, stop: CancellationToken) {
    poll(&shared, &stop).await;
    if let Some(redis) = shared.fleet.redis() {
        shared_events::release_lease(redis).await;
    }
}

/// Whether this replica may poll now: always in memory mode, and in Redis mode while it holds
/// the lease, or when Redis cannot say (each replica then polls for its own sends).
async fn may_poll(shared: &Shared, settings: &SystemLogSettings) -> bool {
    let Some(redis) = shared.fleet.redis() else { return true };
    // Renewed before every request; the holder waits at most an interval between requests.
    let lease = settings.interval * 2 + REQUEST_TIMEOUT;
    match shared_events::hold_lease(redis, lease).await {
        Ok(held) => held,
        Err(why) => {
            redis.fell_back("events", why);
            true
        }
    }
}

async fn poll(shared: &Arc<Shared>, stop: &CancellationToken) {
    let client = match reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(Duration::from_secs(5))
        .build()
    {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "okta system log polling is off: no http client");
            return;
        }
    };
    let mut cursor: Option<Cursor> = None;
    loop {
        let Some(settings) = shared.runtime().okta.system_log.clone() else {
            cursor = None;
            if !pause(stop, IDLE_CHECK).await {
                return;
            }
            continue;
        };
        let url = match cursor.take() {
            Some(cursor) if cursor.org_url == settings.org_url => cursor.next,
            _ => match first_page(&settings, OffsetDateTime::now_utc()) {
                Ok(url) => url,
                Err(error) => {
                    tracing::error!(%error, "okta system log polling: org_url is not a URL");
                    if !pause(stop, settings.interval).await {
                        return;
                    }
                    continue;
                }
            },
        };
        if !may_poll(shared, &settings).await {
            // Another replica polls; if it stops, this one starts afresh from a little before
            // now (the overlap is deduplicated by uuid, fleet-wide).
            shared.metrics.system_log_poll("standby");
            if !pause(stop, settings.interval).await {
                return;
            }
            continue;
        }
        let fetched = tokio::select! {
            biased;
            () = stop.cancelled() => return,
            fetched = fetch(&client, &settings, &url) => fetched,
        };
        let wait = match fetched {
            Ok(page) => {
                shared.metrics.system_log_poll("ok");
                let n_events = page.events.len();
                process(shared, Source::SystemLog, "system_log_page", page.events).await;
                match page.next.filter(|next| is_same_origin(next, &settings.org_url)) {
                    Some(next) => {
                        cursor = Some(Cursor { org_url: settings.org_url.clone(), next });
                        if n_events == 0 { settings.interval } else { Duration::ZERO }
                    }
                    None => {
                        // No usable cursor: start again from a little before now next time (the
                        // overlap is deduplicated by uuid).
                        tracing::warn!(
                            "okta system log page without a next link to the org; polling afresh"
                        );
                        settings.interval
                    }
                }
            }
            Err(failure) => {
                cursor = Some(Cursor { org_url: settings.org_url.clone(), next: url });
                match failure {
                    Failure::RateLimited { reset } => {
                        shared.metrics.system_log_poll("rate_limited");
                        let wait =
                            rate_limit_wait(reset, OffsetDateTime::now_utc(), settings.interval);
                        tracing::warn!(
                            wait_ms = wait.as_millis() as u64,
                            "okta system log rate-limited; waiting for its reset"
                        );
                        wait
                    }
                    Failure::Other(reason) => {
                        shared.metrics.system_log_poll("error");
                        tracing::warn!(%reason, "okta system log poll failed; asking again after the interval");
                        settings.interval
                    }
                }
            }
        };
        if !pause(stop, wait).await {
            return;
        }
    }
}

/// Waits `wait` (on tokio's clock); false when stopped first.
async fn pause(stop: &CancellationToken, wait: Duration) -> bool {
    tokio::select! {
        biased;
        () = stop.cancelled() => false,
        () = tokio::time::sleep(wait) => true,
    }
}

/// The first request: events since two intervals ago (sends made before this process started
/// cannot be matched anyway), oldest first, of the two types read.
fn first_page(settings: &SystemLogSettings, now: OffsetDateTime) -> Result<Url, String> {
    let mut url = Url::parse(&format!("{}/api/v1/logs", settings.org_url))
        .map_err(|error| error.to_string())?;
    let since = now - settings.interval * 2;
    let filter =
        format!("eventType eq \"{MFA_VERIFICATION}\" or eventType eq \"{FACTOR_ACTIVATION}\"");
    url.query_pairs_mut()
        .append_pair("since", &crate::okta::okta_time(since))
        .append_pair("sortOrder", "ASCENDING")
        .append_pair("filter", &filter);
    Ok(url)
}

async fn fetch(
    client: &reqwest::Client,
    settings: &SystemLogSettings,
    url: &Url,
) -> Result<Page, Failure> {
    let mut token =
        HeaderValue::try_from(format!("SSWS {}", settings.api_token.expose_secret()))
            .map_err(|_| Failure::Other("the api token is not a valid header value".into()))?;
    token.set_sensitive(true);
    let mut response = client
        .get(url.clone())
        .header(AUTHORIZATION, token)
        .header(ACCEPT, "application/json")
        .send()
        .await
        .map_err(|error| Failure::Other(describe(error)))?;
    let status = response.status();
    if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
        let reset =
            header_text(response.headers(), "x-rate-limit-reset").and_then(|t| t.parse().ok());
        return Err(Failure::RateLimited { reset });
    }
    if !status.is_success() {
        return Err(Failure::Other(format!("okta answered {}", status.as_u16())));
    }
    let next = next_link(response.headers(), url);
    let mut body = Vec::new();
    while let Some(chunk) =
        response.chunk().await.map_err(|error| Failure::Other(describe(error)))?
    {
        if body.len() + chunk.len() > MAX_PAGE_BYTES {
            return Err(Failure::Other(format!("page larger than {MAX_PAGE_BYTES} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    let events = parse_log_page(&body).map_err(|error| {
        Failure::Other(format!("page is not a JSON array of events: {}", error.summary))
    })?;
    Ok(Page { events, next })
}

/// A transport error in words: its kind and reqwest's text without the URL, never a header.
fn describe(error: reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    format!("{kind}: {}", error.without_url())
}

fn header_text<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|value| value.to_str().ok()).map(str::trim)
}

/// The `rel="next"` target among the `Link` headers (one per link, or several comma-separated
/// in one), resolved against the request's URL.
fn next_link(headers: &HeaderMap, base: &Url) -> Option<Url> {
    headers
        .get_all(LINK)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(split_links)
        .find(|(_, params)| is_next(params))
        .and_then(|(target, _)| base.join(target).ok())
}

/// `<target>; params` items of a `Link` value; commas inside `<...>` do not split.
fn split_links(value: &str) -> Vec<(&str, &str)> {
    let mut links = Vec::new();
    let mut rest = value;
    while let Some(open) = rest.find('<') {
        let Some(close) = rest[open..].find('>') else { break };
        let target = &rest[open + 1..open + close];
        let after = &rest[open + close + 1..];
        let end = after.find(",").unwrap_or(after.len());
        // A parameter may itself contain a comma only inside quotes; Okta's do not.
        links.push((target, &after[..end]));
        rest = &after[end..];
    }
    links
}

/// Whether `params` (`; rel="next"`) name the next page (`rel` may list several relations).
fn is_next(params: &str) -> bool {
    params.split(';').filter_map(|param| param.split_once('=')).any(|(name, value)| {
        name.trim().eq_ignore_ascii_case("rel")
            && value
                .trim()
                .trim_matches('"')
                .split_ascii_whitespace()
                .any(|rel| rel.eq_ignore_ascii_case("next"))
    })
}

/// Whether `url` is on the configured org (scheme, host and port): the token goes nowhere else.
fn is_same_origin(url: &Url, org_url: &str) -> bool {
    Url::parse(org_url).is_ok_and(|org| {
        org.scheme() == url.scheme()
            && org.host_str() == url.host_str()
            && org.port_or_known_default() == url.port_or_known_default()
    })
}

/// How long a 429 asks to wait: until `reset` (Unix seconds), at least a second and at most
/// [`MAX_RATE_LIMIT_WAIT`]; `interval` when Okta did not say.
fn rate_limit_wait(reset: Option<i64>, now: OffsetDateTime, interval: Duration) -> Duration {
    let Some(reset) = reset else { return interval };
    let left_ms =
        reset.saturating_mul(1_000).saturating_sub((now.unix_timestamp_nanos() / 1_000_000) as i64);
    Duration::from_millis(u64::try_from(left_ms).unwrap_or(0))
        .clamp(Duration::from_secs(1), MAX_RATE_LIMIT_WAIT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(LINK, value.parse().unwrap());
        }
        headers
    }

    #[test]
    fn follows_the_next_link_only() {
        let base = Url::parse("https://example.okta.com/api/v1/logs?since=x").unwrap();
        let okta = [
            r#"<https://example.okta.com/api/v1/logs?since=x&sortOrder=ASCENDING>; rel="self""#,
            r#"<https://example.okta.com/api/v1/logs?after=1586,x&sortOrder=ASCENDING>; rel="next""#,
        ];
        let next = next_link(&headers(&okta), &base).unwrap();
        assert_eq!(
            next.as_str(),
            "https://example.okta.com/api/v1/logs?after=1586,x&sortOrder=ASCENDING"
        );
        let joined = okta.join(", ");
        assert_eq!(next_link(&headers(&[&joined]), &base), Some(next));
        let relative = next_link(&headers(&["</api/v1/logs?after=2>; rel=next"]), &base).unwrap();
        assert_eq!(relative.as_str(), "https://example.okta.com/api/v1/logs?after=2");
        assert_eq!(next_link(&headers(&[okta[0]]), &base), None, "self is not followed");
        assert_eq!(next_link(&headers(&["<https://x>; rel=\"prev\""]), &base), None);
        assert_eq!(next_link(&headers(&[]), &base), None);
    }

    #[test]
    fn the_token_goes_to_the_org_only() {
        let org = "https://example.okta.com";
        let url = |text: &str| Url::parse(text).unwrap();
        assert!(is_same_origin(&url("https://example.okta.com/api/v1/logs?after=1"), org));
        assert!(is_same_origin(&url("https://example.okta.com:443/x"), org));
        assert!(!is_same_origin(&url("https://evil.example/api/v1/logs"), org));
        assert!(!is_same_origin(&url("http://example.okta.com/api/v1/logs"), org));
        assert!(!is_same_origin(&url("https://example.okta.com:8443/api/v1/logs"), org));
    }

    #[test]
    fn the_first_page_asks_for_the_two_event_types_oldest_first() {
        let settings = SystemLogSettings {
            org_url: "https://example.okta.com".into(),
            api_token: "token".to_owned().into(),
            interval: Duration::from_secs(60),
        };
        let now = time::macros::datetime!(2026-03-02 10:15:31.092 UTC);
        let url = first_page(&settings, now).unwrap();
        assert_eq!(url.path(), "/api/v1/logs");
        let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        assert_eq!(
            pairs,
            [
                ("since".into(), "2026-03-02T10:13:31.092Z".into()),
                ("sortOrder".into(), "ASCENDING".into()),
                (
                    "filter".into(),
                    "eventType eq \"user.authentication.auth_via_mfa\" or eventType eq \"user.mfa.factor.activate\"".into()
                ),
            ]
        );
    }

    #[test]
    fn a_429_waits_for_its_reset_within_bounds() {
        let now = time::macros::datetime!(2026-03-02 10:00:00 UTC);
        let at = now.unix_timestamp();
        let interval = Duration::from_secs(60);
        assert_eq!(rate_limit_wait(Some(at + 7), now, interval), Duration::from_secs(7));
        assert_eq!(rate_limit_wait(Some(at - 7), now, interval), Duration::from_secs(1));
        assert_eq!(rate_limit_wait(Some(at + 7_200), now, interval), MAX_RATE_LIMIT_WAIT);
        assert_eq!(rate_limit_wait(None, now, interval), interval);
    }
}
