//! The authorization server emulator over real loopback sockets, driven by a plain HTTP client
//! and checked with a real JWT library.

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};
use switchboard_sim::oauth::{OAuthEmulator, SigningKey};
use switchboard_sim::{Fault, Faults};

async fn get(url: &str) -> (u16, reqwest::header::HeaderMap, Value) {
    let response = reqwest::Client::new().get(url).send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn metadata_names_the_issuer_and_its_key_set() {
    let okta = OAuthEmulator::start().await.unwrap();
    for document in ["oauth-authorization-server", "openid-configuration"] {
        let (status, _, metadata) = get(&format!("{}/.well-known/{document}", okta.issuer())).await;
        assert_eq!(status, 200);
        assert_eq!(metadata["issuer"], okta.issuer());
        assert_eq!(metadata["jwks_uri"], okta.jwks_uri());
    }
    let (status, _, _) = get(&format!("{}/v1/nothing", okta.issuer())).await;
    assert_eq!(status, 404);
    assert_eq!(okta.key_fetches(), 0, "metadata fetches are not key fetches");
    assert_eq!(okta.received().len(), 2);
}

#[tokio::test]
async fn minted_tokens_verify_against_the_published_keys() {
    let okta = OAuthEmulator::start().await.unwrap();
    let claims = json!({"iss": okta.issuer(), "aud": "api://default", "exp": 4_000_000_000u64});
    let token = okta.mint(&claims);

    let (status, headers, jwks) = get(&okta.jwks_uri()).await;
    assert_eq!(status, 200);
    assert!(headers.get("cache-control").is_none());
    assert_eq!(okta.key_fetches(), 1);
    let jwk = &jwks["keys"][0];
    assert_eq!(jwk["kid"], "sim-key-1");
    assert_eq!(jsonwebtoken::decode_header(&token).unwrap().kid.as_deref(), Some("sim-key-1"));
    let key =
        DecodingKey::from_rsa_components(jwk["n"].as_str().unwrap(), jwk["e"].as_str().unwrap())
            .unwrap();
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&["api://default"]);
    let decoded = jsonwebtoken::decode::<Value>(&token, &key, &validation).unwrap();
    assert_eq!(decoded.claims["iss"], okta.issuer());

    // Another fixture key does not verify it.
    let other = SigningKey::fixture(2, "x").public_jwk();
    let other = DecodingKey::from_rsa_components(
        other["n"].as_str().unwrap(),
        other["e"].as_str().unwrap(),
    )
    .unwrap();
    assert!(jsonwebtoken::decode::<Value>(&token, &other, &validation).is_err());
}

#[tokio::test]
async fn rotation_publishes_the_new_key_beside_the_old_and_withdraw_removes_one() {
    let okta = OAuthEmulator::start().await.unwrap();
    okta.rotate_to(SigningKey::fixture(1, "sim-key-2"));
    okta.set_max_age(Some(600));
    let (_, headers, jwks) = get(&okta.jwks_uri()).await;
    let kids: Vec<_> = jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].clone()).collect();
    assert_eq!(kids, [json!("sim-key-1"), json!("sim-key-2")]);
    assert_eq!(headers["cache-control"], "max-age=600, must-revalidate");
    let token = okta.mint(&json!({}));
    assert_eq!(jsonwebtoken::decode_header(&token).unwrap().kid.as_deref(), Some("sim-key-2"));

    okta.withdraw("sim-key-1");
    let (_, _, jwks) = get(&okta.jwks_uri()).await;
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);
    assert_eq!(okta.key_fetches(), 2);
}

#[tokio::test]
async fn faults_fail_fetches_with_oktas_error_body_and_are_still_counted() {
    let okta = OAuthEmulator::start().await.unwrap();
    okta.set_faults(Faults::always(Fault::Status { status: 503, code: Some(9) }));
    let (status, _, body) = get(&okta.jwks_uri()).await;
    assert_eq!(status, 503);
    assert_eq!(body["errorCode"], "E0000009");
    okta.set_faults(Faults::always(Fault::RateLimit { retry_after_s: 7 }));
    let (status, headers, body) = get(&okta.jwks_uri()).await;
    assert_eq!(status, 429);
    assert_eq!(headers["retry-after"], "7");
    assert_eq!(body["errorCode"], "E0000047");
    okta.set_faults(Faults::none());
    let (status, _, _) = get(&okta.jwks_uri()).await;
    assert_eq!(status, 200);
    assert_eq!(okta.key_fetches(), 3);
    okta.wait_for_fetches(3).await;
}
