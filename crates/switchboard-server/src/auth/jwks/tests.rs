use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;

/// What the scripted source answers next; the last answer repeats.
#[derive(Clone)]
enum Answer {
    Keys(&'static [&'static str], Option<Duration>),
    Fail,
    Hang,
}

struct Scripted {
    answers: Mutex<VecDeque<Answer>>,
    n_fetches: AtomicUsize,
    /// How long a fetch takes (paused clock: advanced, not waited).
    latency: Duration,
}

impl KeySource for Scripted {
    async fn fetch(&self) -> Result<FetchedKeys, FetchError> {
        self.n_fetches.fetch_add(1, Ordering::SeqCst);
        let answer = {
            let mut answers = self.answers.lock().unwrap();
            if answers.len() > 1 { answers.pop_front() } else { answers.front().cloned() }
        };
        tokio::time::sleep(self.latency).await;
        match answer.expect("script is not empty") {
            Answer::Keys(kids, max_age) => Ok(FetchedKeys {
                keys: kids
                    .iter()
                    .map(|kid| (kid.to_string(), DecodingKey::from_secret(b"k")))
                    .collect(),
                max_age,
            }),
            Answer::Fail => {
                Err(FetchError::Status { url: "http://127.0.0.1/keys".into(), status: 500 })
            }
            Answer::Hang => std::future::pending().await,
        }
    }
}

const COOLDOWN: Duration = Duration::from_secs(60);

fn cache(script: &[Answer]) -> Arc<JwksCache<Scripted>> {
    let source = Scripted {
        answers: Mutex::new(script.iter().cloned().collect()),
        n_fetches: AtomicUsize::new(0),
        latency: Duration::from_millis(20),
    };
    let policy = CachePolicy { cooldown: COOLDOWN, timeout: Duration::from_secs(1) };
    Arc::new(JwksCache::new(source, policy))
}

fn n_fetches(cache: &JwksCache<Scripted>) -> usize {
    cache.source().n_fetches.load(Ordering::SeqCst)
}

#[tokio::test(start_paused = true)]
async fn concurrent_requests_on_a_cold_cache_share_one_fetch() {
    let cache = cache(&[Answer::Keys(&["k1"], None)]);
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let cache = Arc::clone(&cache);
            tokio::spawn(async move { cache.key_for("k1").await.is_ok() })
        })
        .collect();
    for task in tasks {
        assert!(task.await.unwrap());
    }
    assert_eq!(n_fetches(&cache), 1);
}

#[tokio::test(start_paused = true)]
async fn a_fetch_outlives_the_request_that_started_it() {
    let cache = cache(&[Answer::Keys(&["k1"], None)]);
    let first = {
        let cache = Arc::clone(&cache);
        tokio::spawn(async move { cache.key_for("k1").await.is_ok() })
    };
    tokio::time::sleep(Duration::from_millis(5)).await; // the fetch is under way (20 ms)
    first.abort();
    assert!(cache.key_for("k1").await.is_ok(), "the next request gets the fetch's keys");
    assert_eq!(n_fetches(&cache), 1);
}

#[tokio::test(start_paused = true)]
async fn unknown_kids_refresh_at_most_once_per_cooldown() {
    let cache = cache(&[Answer::Keys(&["k1"], None)]);
    cache.warm_up().await;
    assert_eq!(n_fetches(&cache), 1);

    let flood: Vec<_> = (0..1000)
        .map(|n| {
            let cache = Arc::clone(&cache);
            tokio::spawn(async move { cache.key_for(&format!("forged-{n}")).await })
        })
        .collect();
    for task in flood {
        assert_eq!(task.await.unwrap().err(), Some(KeyError::Unknown));
    }
    assert_eq!(n_fetches(&cache), 2, "one refresh for the whole flood");
    assert!(cache.key_for("k1").await.is_ok(), "known keys still served");

    tokio::time::advance(COOLDOWN - Duration::from_secs(1)).await;
    assert_eq!(cache.key_for("forged").await.err(), Some(KeyError::Unknown));
    assert_eq!(n_fetches(&cache), 2, "still inside the cooldown");
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(cache.key_for("forged").await.err(), Some(KeyError::Unknown));
    assert_eq!(n_fetches(&cache), 3, "one refresh per cooldown");
}

#[tokio::test(start_paused = true)]
async fn a_rotated_key_is_found_with_one_refresh_and_concurrent_askers_share_it() {
    let cache = cache(&[Answer::Keys(&["k1"], None), Answer::Keys(&["k1", "k2"], None)]);
    assert!(cache.key_for("k1").await.is_ok());
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let cache = Arc::clone(&cache);
            tokio::spawn(async move { cache.key_for("k2").await.is_ok() })
        })
        .collect();
    for task in tasks {
        assert!(task.await.unwrap(), "every waiter gets the refreshed key");
    }
    assert_eq!(n_fetches(&cache), 2);
}

#[tokio::test(start_paused = true)]
async fn failed_fetches_keep_the_last_good_keys() {
    let cache = cache(&[Answer::Keys(&["k1"], Some(Duration::from_secs(120))), Answer::Fail]);
    assert!(cache.key_for("k1").await.is_ok());
    assert_eq!(cache.key_for("k2").await.err(), Some(KeyError::Unknown));
    assert_eq!(n_fetches(&cache), 2, "the refresh was tried and failed");
    assert!(cache.key_for("k1").await.is_ok());

    // Past max-age: served from the cache while a background refresh fails.
    tokio::time::advance(Duration::from_secs(121)).await;
    assert!(cache.key_for("k1").await.is_ok());
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(n_fetches(&cache), 3);
    assert!(cache.key_for("k1").await.is_ok(), "expired keys still serve during an outage");
    assert_eq!(n_fetches(&cache), 3, "a failing endpoint is retried once per cooldown");
}

#[tokio::test(start_paused = true)]
async fn max_age_refresh_drops_a_withdrawn_key() {
    let cache = cache(&[
        Answer::Keys(&["k1"], Some(Duration::from_secs(300))),
        Answer::Keys(&["k2"], None),
    ]);
    assert!(cache.key_for("k1").await.is_ok());
    tokio::time::advance(Duration::from_secs(299)).await;
    assert!(cache.key_for("k1").await.is_ok());
    assert_eq!(n_fetches(&cache), 1, "fresh for max-age");
    tokio::time::advance(Duration::from_secs(1)).await;
    assert!(cache.key_for("k1").await.is_ok(), "answered from the cache, refreshed behind");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(n_fetches(&cache), 2);
    assert!(cache.key_for("k2").await.is_ok());
    assert!(cache.key_for("k1").await.is_err(), "withdrawn by the issuer");
}

#[tokio::test(start_paused = true)]
async fn max_age_below_the_cooldown_is_raised_to_it() {
    let cache = cache(&[Answer::Keys(&["k1"], Some(Duration::ZERO))]);
    assert!(cache.key_for("k1").await.is_ok());
    tokio::time::advance(COOLDOWN - Duration::from_secs(1)).await;
    assert!(cache.key_for("k1").await.is_ok());
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(n_fetches(&cache), 1);
}

#[tokio::test(start_paused = true)]
async fn a_cold_cache_with_a_failing_endpoint_retries_every_few_seconds() {
    let cache = cache(&[Answer::Fail, Answer::Keys(&["k1"], None)]);
    assert_eq!(cache.key_for("k1").await.err(), Some(KeyError::Unavailable));
    assert_eq!(cache.key_for("k1").await.err(), Some(KeyError::Unavailable));
    assert_eq!(n_fetches(&cache), 1);
    tokio::time::advance(COLD_RETRY).await;
    assert!(cache.key_for("k1").await.is_ok());
    assert_eq!(n_fetches(&cache), 2);
}

#[tokio::test(start_paused = true)]
async fn a_hanging_endpoint_is_cut_at_the_timeout() {
    let cache = cache(&[Answer::Hang]);
    let started = Instant::now();
    assert_eq!(cache.key_for("k1").await.err(), Some(KeyError::Unavailable));
    assert_eq!(started.elapsed(), Duration::from_secs(1));
}

#[test]
fn jwks_parsing_keeps_only_rs256_signing_keys_with_a_kid() {
    let body = br#"{"keys":[
        {"kty":"RSA","kid":"good","use":"sig","alg":"RS256","n":"AQAB","e":"AQAB"},
        {"kty":"RSA","kid":"bare","n":"AQAB","e":"AQAB"},
        {"kty":"RSA","kid":"enc","use":"enc","n":"AQAB","e":"AQAB"},
        {"kty":"RSA","kid":"ps","alg":"PS256","n":"AQAB","e":"AQAB"},
        {"kty":"EC","kid":"ec","crv":"P-256","x":"AQAB","y":"AQAB"},
        {"kty":"RSA","n":"AQAB","e":"AQAB"}
    ]}"#;
    let mut kids: Vec<_> = parse_jwks(body).unwrap().into_keys().collect();
    kids.sort();
    assert_eq!(kids, ["bare", "good"]);
    assert!(parse_jwks(b"<html>").is_err());
}

#[test]
fn max_age_parsing() {
    assert_eq!(parse_max_age("max-age=3600, must-revalidate"), Some(Duration::from_secs(3600)));
    assert_eq!(parse_max_age("public, MAX-AGE=60"), Some(Duration::from_secs(60)));
    assert_eq!(parse_max_age("no-store"), Some(Duration::ZERO));
    assert_eq!(parse_max_age("max-age=soon"), None);
    assert_eq!(parse_max_age("public"), None);
}

#[test]
fn loopback_urls() {
    for url in
        ["http://127.0.0.1:8080/x", "http://localhost", "http://[::1]:9/", "http://127.1.2.3"]
    {
        assert!(is_loopback_url(url), "{url}");
    }
    for url in ["http://127.evil.example/", "http://10.0.0.1", "https://127.0.0.1", "http://[::2]"]
    {
        assert!(!is_loopback_url(url), "{url}");
    }
    assert!(is_https_or_loopback("https://example.okta.com/oauth2/v1/keys"));
}
