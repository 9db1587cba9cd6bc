//! OAuth 2.0 authentication end to end: the real server verifying tokens minted by the
//! authorization server emulator, whose keys it fetches over loopback. Every refused token gets
//! a 401 and causes no provider call; key fetches are counted at the emulator.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use switchboard_sim::oauth::{OAuthEmulator, RunningOAuth, Signer, SigningKey};
use switchboard_sim::{Fault, Faults};
use tokio::task::JoinSet;

use crate::helpers::{AppOptions, TestApp, action, okta_request, spawn_app_with, within};

const AUDIENCE: &str = "api://switchboard";
const SCOPE: &str = "switchboard.hook";
const CLIENT_ID: &str = "0oaHookClient4Okta";

/// `[okta.auth]` in OAuth mode against `okta`, plus `extra` lines.
fn oauth_auth(issuer: &str, extra: &str) -> String {
    format!(
        r#"[okta.auth]
mode = "oauth2"
issuer = "{issuer}"
audience = "{AUDIENCE}"
scope = "{SCOPE}"
client_id = "{CLIENT_ID}"
{extra}"#
    )
}

/// An app in OAuth mode whose start-up key fetch is done: key fetches counted from here on are
/// the ones requests caused.
async fn spawn_warm_app(okta: &RunningOAuth, extra: &str) -> TestApp {
    let app = spawn_cold_app(okta, extra).await;
    within(5, okta.wait_for_fetches(2)).await; // metadata, then keys
    // One request through the cache: it waits for the warm-up fetch if that is still running.
    let (status, _) = send(&app, Some(&okta.mint(&claims(okta))), "evt-warm").await;
    assert_eq!(status, 200);
    assert_eq!(okta.key_fetches(), 1);
    app
}

async fn spawn_cold_app(okta: &RunningOAuth, extra: &str) -> TestApp {
    let options =
        AppOptions { okta_auth: Some(oauth_auth(&okta.issuer(), extra)), ..AppOptions::default() };
    spawn_app_with(options).await
}

fn unix_now() -> i64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    i64::try_from(now).unwrap()
}

/// The claims of an access token Okta's client credentials flow issues for the hook.
fn claims(okta: &RunningOAuth) -> Value {
    let now = unix_now();
    json!({
        "ver": 1,
        "jti": "AT.sim-token-id",
        "iss": okta.issuer(),
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 3600,
        "cid": CLIENT_ID,
        "scp": [SCOPE],
        "sub": CLIENT_ID,
    })
}

fn with(mut claims: Value, changes: Value) -> Value {
    for (key, value) in changes.as_object().unwrap() {
        if value.is_null() {
            claims.as_object_mut().unwrap().remove(key);
        } else {
            claims[key] = value.clone();
        }
    }
    claims
}

/// POSTs Okta's sample with `Authorization: Bearer {token}` (no header without a token).
async fn send(app: &TestApp, token: Option<&str>, event_id: &str) -> (u16, Value) {
    send_authorization(app, token.map(|token| format!("Bearer {token}")).as_deref(), event_id).await
}

async fn send_authorization(
    app: &TestApp,
    authorization: Option<&str>,
    event_id: &str,
) -> (u16, Value) {
    // A number per event: these tests are about authentication, not the guard's per-number limit.
    let phone = format!("+1415555{:04}", event_id.bytes().map(u32::from).sum::<u32>() % 10_000);
    let mut request =
        app.client.post(&app.hook_url).json(&okta_request(event_id, &phone, "482915", "SMS"));
    if let Some(authorization) = authorization {
        request = request.header("Authorization", authorization);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn n_sends(app: &TestApp) -> usize {
    let (primary, backup) = app.sends();
    primary.len() + backup.len()
}

async fn refused_count(app: &TestApp, reason: &str) -> u64 {
    let metrics = app.metrics().await;
    let series = format!("switchboard_hook_refused_total{{reason=\"{reason}\"}} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&series))
        .map_or(0, |value| value.trim().parse().unwrap())
}

fn assert_refused(status: u16, answer: &Value, case: &str) {
    assert_eq!(status, 401, "{case}: {answer}");
    assert_eq!(answer["error"]["errorSummary"], "authentication failed", "{case}");
    assert_eq!(answer["error"]["errorCauses"][0]["reason"], "UNAUTHORIZED", "{case}");
}

#[tokio::test]
async fn a_valid_token_is_accepted_and_the_code_sent() {
    let okta = OAuthEmulator::start().await.unwrap();
    let app = spawn_warm_app(&okta, "").await;
    let now = unix_now();
    let valid = [
        ("scp array", claims(&okta)),
        (
            "scope string",
            with(claims(&okta), json!({"scp": null, "scope": "openid switchboard.hook"})),
        ),
        ("nbf passed", with(claims(&okta), json!({"nbf": now - 10}))),
        ("expired inside the leeway", with(claims(&okta), json!({"exp": now - 30}))),
        ("nbf inside the leeway", with(claims(&okta), json!({"nbf": now + 30}))),
        ("iat inside the leeway", with(claims(&okta), json!({"iat": now + 30}))),
    ];
    for (n, (case, claims)) in valid.iter().enumerate() {
        let (status, answer) = send(&app, Some(&okta.mint(claims)), &format!("evt-ok-{n}")).await;
        assert_eq!(status, 200, "{case}: {answer}");
        assert_eq!(action(&answer)["status"], "SUCCESSFUL", "{case}");
    }
    assert_eq!(n_sends(&app), valid.len() + 1, "one send per accepted request, warm-up included");
    assert_eq!(okta.key_fetches(), 1, "keys are cached");
}

#[tokio::test]
async fn forged_tokens_get_401_and_no_provider_call() {
    let okta = OAuthEmulator::start().await.unwrap();
    let app = spawn_warm_app(&okta, "").await;
    let sends_before = n_sends(&app);
    let now = unix_now();
    let good = claims(&okta);
    let kid = okta.signing_key().kid().to_owned();
    let rs256 = json!({"alg": "RS256", "kid": kid});
    let our_key = okta.signing_key();
    let other_key = SigningKey::fixture(2, kid.clone());
    let public_pem = our_key.public_key_pem();
    let public_n = our_key.public_jwk()["n"].as_str().unwrap().to_owned();
    let valid_token = okta.mint(&good);
    let tampered = {
        let parts: Vec<&str> = valid_token.split('.').collect();
        let forged_claims = with(good.clone(), json!({"scp": [SCOPE, "admin"]}));
        format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode(forged_claims.to_string()), parts[2])
    };
    let oversized = okta.mint(&with(good.clone(), json!({"padding": "x".repeat(9 * 1024)})));

    let cases: Vec<(&str, Option<String>, &str)> = vec![
        ("no header", None, "missing_credentials"),
        (
            "alg none",
            Some(okta.mint_with(&json!({"alg": "none", "kid": kid}), &good, Signer::Unsigned)),
            "algorithm_not_allowed",
        ),
        (
            "alg None, RSA signature kept",
            Some(okta.mint_with(
                &json!({"alg": "None", "kid": kid}),
                &good,
                Signer::Rs256(&our_key),
            )),
            "algorithm_not_allowed",
        ),
        (
            "HS256 with the public key PEM as secret",
            Some(okta.mint_with(
                &json!({"alg": "HS256", "kid": kid}),
                &good,
                Signer::Hs256(public_pem.as_bytes()),
            )),
            "algorithm_not_allowed",
        ),
        (
            "HS256 with the JWK modulus as secret",
            Some(okta.mint_with(
                &json!({"alg": "HS256", "kid": kid}),
                &good,
                Signer::Hs256(public_n.as_bytes()),
            )),
            "algorithm_not_allowed",
        ),
        (
            "PS256",
            Some(okta.mint_with(
                &json!({"alg": "PS256", "kid": kid}),
                &good,
                Signer::Rs256(&our_key),
            )),
            "algorithm_not_allowed",
        ),
        (
            "our kid, another key's signature",
            Some(okta.mint_with(&rs256, &good, Signer::Rs256(&other_key))),
            "bad_signature",
        ),
        ("claims changed after signing", Some(tampered), "bad_signature"),
        (
            "wrong iss",
            Some(
                okta.mint(&with(
                    good.clone(),
                    json!({"iss": "https://evil.example/oauth2/default"}),
                )),
            ),
            "wrong_issuer",
        ),
        (
            "iss with a trailing slash",
            Some(okta.mint(&with(good.clone(), json!({"iss": format!("{}/", okta.issuer())})))),
            "wrong_issuer",
        ),
        (
            "wrong aud",
            Some(okta.mint(&with(good.clone(), json!({"aud": "api://default"})))),
            "wrong_audience",
        ),
        (
            "expired",
            Some(okta.mint(&with(good.clone(), json!({"iat": now - 7200, "exp": now - 3600})))),
            "token_expired",
        ),
        (
            "expired just past the leeway",
            Some(okta.mint(&with(good.clone(), json!({"exp": now - 90})))),
            "token_expired",
        ),
        (
            "nbf in the future",
            Some(okta.mint(&with(good.clone(), json!({"nbf": now + 3600})))),
            "token_not_yet_valid",
        ),
        (
            "iat beyond the leeway in the future",
            Some(okta.mint(&with(good.clone(), json!({"iat": now + 90})))),
            "token_issued_in_future",
        ),
        ("no exp", Some(okta.mint(&with(good.clone(), json!({"exp": null})))), "missing_claim"),
        (
            "scope missing",
            Some(
                okta.mint(&with(good.clone(), json!({"scp": ["openid", "switchboard.hook.read"]}))),
            ),
            "missing_scope",
        ),
        (
            "no scope at all",
            Some(okta.mint(&with(good.clone(), json!({"scp": null})))),
            "missing_scope",
        ),
        (
            "wrong cid",
            Some(okta.mint(&with(good.clone(), json!({"cid": "0oaSomeOtherClient"})))),
            "wrong_client",
        ),
        ("no cid", Some(okta.mint(&with(good.clone(), json!({"cid": null})))), "wrong_client"),
        ("not a JWT", Some("not-a-jwt".to_owned()), "malformed_token"),
        ("two segments", Some("eyJhbGciOiJSUzI1NiJ9.e30".to_owned()), "malformed_token"),
        ("header not JSON", Some("bm90IGpzb24.e30.c2ln".to_owned()), "malformed_token"),
        ("oversized", Some(oversized), "token_too_large"),
    ];
    let mut expected_counts = std::collections::HashMap::new();
    for (n, (case, token, reason)) in cases.iter().enumerate() {
        let (status, answer) = send(&app, token.as_deref(), &format!("evt-forged-{n}")).await;
        assert_refused(status, &answer, case);
        *expected_counts.entry(*reason).or_insert(0) += 1;
    }
    // Schemes other than Bearer, and a valid token under the wrong scheme.
    for (n, authorization) in
        [format!("Basic {valid_token}"), valid_token.clone(), "Bearer ".to_owned()]
            .iter()
            .enumerate()
    {
        let (status, answer) =
            send_authorization(&app, Some(authorization), &format!("evt-scheme-{n}")).await;
        assert_refused(status, &answer, authorization);
        *expected_counts.entry("malformed_token").or_insert(0) += 1;
    }

    assert_eq!(n_sends(&app), sends_before, "no forged token reached a provider");
    assert_eq!(okta.key_fetches(), 1, "no forged token caused a key fetch");
    for (reason, count) in expected_counts {
        assert_eq!(refused_count(&app, reason).await, count, "reason {reason}");
    }
    let logs = app.logs.text();
    let signature = valid_token.rsplit('.').next().unwrap();
    assert!(!logs.contains(signature), "a token reached the logs");
    assert!(logs.contains("\"reason\":\"algorithm_not_allowed\""), "refusals are logged by reason");
}

#[tokio::test]
async fn key_hints_in_the_header_are_never_followed() {
    let okta = OAuthEmulator::start().await.unwrap();
    let attacker =
        OAuthEmulator::with_key(SigningKey::fixture(2, "attacker-key")).spawn().await.unwrap();
    let app = spawn_warm_app(&okta, "").await;
    let attacker_key = attacker.signing_key();
    let good = claims(&okta);
    let hints = json!({
        "jku": attacker.jwks_uri(),
        "x5u": format!("{}/cert.pem", attacker.base_url()),
        "jwk": attacker_key.public_jwk(),
    });
    let headers = [
        // The attacker's kid: unknown to the issuer, whatever the hints say.
        json!({"alg": "RS256", "kid": "attacker-key", "jku": hints["jku"]}),
        json!({"alg": "RS256", "kid": "attacker-key", "x5u": hints["x5u"]}),
        json!({"alg": "RS256", "kid": "attacker-key", "jwk": hints["jwk"]}),
        // The issuer's kid with the attacker's signature and every hint.
        json!({"alg": "RS256", "kid": okta.signing_key().kid(), "jku": hints["jku"],
               "x5u": hints["x5u"], "jwk": hints["jwk"]}),
    ];
    for (n, header) in headers.iter().enumerate() {
        let token = okta.mint_with(header, &good, Signer::Rs256(&attacker_key));
        let (status, answer) = send(&app, Some(&token), &format!("evt-jku-{n}")).await;
        assert_refused(status, &answer, &header.to_string());
    }
    assert!(attacker.received().is_empty(), "the attacker's server saw a request");
    assert_eq!(refused_count(&app, "unknown_key").await, 3);
    assert_eq!(refused_count(&app, "bad_signature").await, 1);
    assert_eq!(n_sends(&app), 1, "the warm-up's send only");
    assert!(okta.key_fetches() <= 2, "only the issuer's keys, once");
}

// Several worker threads, so the cache's locks are contended in parallel, not just interleaved.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_unknown_kids_cause_one_key_fetch() {
    let okta = OAuthEmulator::start().await.unwrap();
    let app = std::sync::Arc::new(spawn_warm_app(&okta, "").await);
    let good = claims(&okta);
    let mut requests = JoinSet::new();
    let mut n_refused = 0;
    for n in 0..1000 {
        // RS256 naming a key id the issuer never published. The signature is junk: an attacker
        // has no valid one, and a token naming an unknown key is refused before it is checked.
        let header = json!({"alg": "RS256", "kid": format!("random-kid-{n}")});
        let token = format!("{}{}", okta.mint_with(&header, &good, Signer::Unsigned), "c2ln");
        let app = std::sync::Arc::clone(&app);
        requests.spawn(async move { send(&app, Some(&token), &format!("evt-flood-{n}")).await });
        if requests.len() == 50 {
            let (status, _) = requests.join_next().await.unwrap().unwrap();
            n_refused += usize::from(status == 401);
        }
    }
    while let Some(result) = requests.join_next().await {
        n_refused += usize::from(result.unwrap().0 == 401);
    }
    assert_eq!(n_refused, 1000);
    assert_eq!(okta.key_fetches(), 2, "the warm-up, then one refresh for the whole flood");
    assert_eq!(refused_count(&app, "unknown_key").await, 1000);
    assert_eq!(n_sends(&app), 1, "the warm-up's send only");
}

#[tokio::test]
async fn concurrent_calls_on_a_cold_start_share_one_key_fetch() {
    let okta = OAuthEmulator::start().await.unwrap();
    let app = std::sync::Arc::new(spawn_cold_app(&okta, "").await);
    let mut requests = JoinSet::new();
    for n in 0..40 {
        let token = okta.mint(&claims(&okta));
        let app = std::sync::Arc::clone(&app);
        requests.spawn(async move { send(&app, Some(&token), &format!("evt-cold-{n}")).await.0 });
    }
    while let Some(status) = requests.join_next().await {
        assert_eq!(status.unwrap(), 200);
    }
    assert_eq!(okta.key_fetches(), 1, "start-up warm-up and requests shared one fetch");
}

#[tokio::test]
async fn a_rotated_key_is_accepted_after_one_refresh_shared_by_concurrent_calls() {
    let okta = OAuthEmulator::start().await.unwrap();
    let app = std::sync::Arc::new(spawn_warm_app(&okta, "").await);
    let old_key = okta.signing_key();
    okta.rotate_to(SigningKey::fixture(1, "sim-key-2"));

    let mut requests = JoinSet::new();
    for n in 0..20 {
        let token = okta.mint(&claims(&okta));
        let app = std::sync::Arc::clone(&app);
        requests
            .spawn(async move { send(&app, Some(&token), &format!("evt-rotated-{n}")).await.0 });
    }
    while let Some(status) = requests.join_next().await {
        assert_eq!(status.unwrap(), 200, "every caller gets the refreshed key");
    }
    assert_eq!(okta.key_fetches(), 2, "one refresh for all of them");

    // The old key is still published, and still accepted; neither needs another fetch.
    let old_token = okta.mint_with(
        &json!({"alg": "RS256", "kid": old_key.kid()}),
        &claims(&okta),
        Signer::Rs256(&old_key),
    );
    assert_eq!(send(&app, Some(&old_token), "evt-old-key").await.0, 200);
    assert_eq!(send(&app, Some(&okta.mint(&claims(&okta))), "evt-new-key").await.0, 200);
    assert_eq!(okta.key_fetches(), 2);
}

#[tokio::test]
async fn cached_keys_keep_working_while_the_key_endpoint_is_down() {
    let okta = OAuthEmulator::start().await.unwrap();
    let app = spawn_warm_app(&okta, "").await;
    okta.set_faults(Faults::always(Fault::Status { status: 503, code: Some(9) }));

    assert_eq!(send(&app, Some(&okta.mint(&claims(&okta))), "evt-down-1").await.0, 200);
    // A new key cannot be fetched: refused, after one failed try.
    okta.rotate_to(SigningKey::fixture(1, "sim-key-2"));
    let (status, answer) = send(&app, Some(&okta.mint(&claims(&okta))), "evt-down-2").await;
    assert_refused(status, &answer, "unknown key while the endpoint is down");
    assert_eq!(okta.key_fetches(), 2);
    // The failed refresh kept the last good keys.
    let old_key = SigningKey::fixture(0, "sim-key-1");
    let old_token = okta.mint_with(
        &json!({"alg": "RS256", "kid": old_key.kid()}),
        &claims(&okta),
        Signer::Rs256(&old_key),
    );
    assert_eq!(send(&app, Some(&old_token), "evt-down-3").await.0, 200);
    assert_eq!(okta.key_fetches(), 2, "no retry inside the cooldown");
    assert!(app.logs.text().contains("keeping the last good keys"));
}

#[tokio::test]
async fn a_hanging_key_endpoint_does_not_hold_up_tokens_with_known_keys() {
    let okta = OAuthEmulator::start().await.unwrap();
    let app = std::sync::Arc::new(spawn_warm_app(&okta, "jwks_timeout_ms = 5000").await);
    okta.set_faults(Faults::always(Fault::Hang));
    let header = json!({"alg": "RS256", "kid": "not-yet-published"});
    let unknown = okta.mint_with(&header, &claims(&okta), Signer::Rs256(&okta.signing_key()));
    let waiting = {
        let app = std::sync::Arc::clone(&app);
        tokio::spawn(async move { send(&app, Some(&unknown), "evt-hang-unknown").await.0 })
    };
    // Metadata and keys at start-up, then the refresh, which hangs.
    within(5, okta.wait_for_fetches(3)).await;
    let (status, _) = send(&app, Some(&okta.mint(&claims(&okta))), "evt-hang-known").await;
    assert_eq!(status, 200);
    assert!(!waiting.is_finished(), "the known key was served while the refresh hung");
    waiting.abort();
}

#[tokio::test]
async fn a_configured_jwks_uri_skips_discovery() {
    let okta = OAuthEmulator::start().await.unwrap();
    let app = spawn_cold_app(&okta, &format!("jwks_uri = \"{}\"", okta.jwks_uri())).await;
    assert_eq!(send(&app, Some(&okta.mint(&claims(&okta))), "evt-jwks-uri").await.0, 200);
    let paths: Vec<_> = okta.received().into_iter().map(|fetch| fetch.path).collect();
    assert_eq!(paths, ["/oauth2/default/v1/keys"]);
}

#[tokio::test]
async fn metadata_naming_another_issuer_is_not_trusted() {
    let okta = OAuthEmulator::start().await.unwrap();
    // One character off: the metadata's issuer does not match, so its jwks_uri is not used.
    let app = spawn_app_with(AppOptions {
        okta_auth: Some(oauth_auth(&format!("{}/", okta.issuer()), "")),
        ..AppOptions::default()
    })
    .await;
    let token = okta.mint(&with(claims(&okta), json!({"iss": format!("{}/", okta.issuer())})));
    let (status, answer) = send(&app, Some(&token), "evt-other-issuer").await;
    assert_refused(status, &answer, "metadata for another issuer");
    assert_eq!(okta.key_fetches(), 0);
    assert_eq!(refused_count(&app, "keys_unavailable").await, 1);
    assert!(app.logs.text().contains("okta.auth.issuer must equal it exactly"));
}
