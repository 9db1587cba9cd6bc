//! The routes: Okta's metadata documents and key set, with Okta's error bodies for faults.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use super::{FetchKind, OAuthEmulator, ReceivedFetch, SERVER_PATH};
use crate::faults::InjectedAnswer;
use crate::server::Connection;

pub(super) fn routes(emulator: OAuthEmulator) -> Router {
    Router::new()
        .route(&format!("{SERVER_PATH}/.well-known/oauth-authorization-server"), get(metadata))
        .route(&format!("{SERVER_PATH}/.well-known/openid-configuration"), get(metadata))
        .route(&format!("{SERVER_PATH}/v1/keys"), get(keys))
        .with_state(emulator)
}

async fn metadata(
    State(emulator): State<OAuthEmulator>,
    connection: Connection,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if let Err(response) = gate(&emulator, connection, FetchKind::Metadata, &uri).await {
        return response;
    }
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("localhost");
    let issuer = format!("http://{host}{SERVER_PATH}");
    // The fields Okta publishes that a resource server might read; the rest are omitted.
    Json(serde_json::json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/v1/authorize"),
        "token_endpoint": format!("{issuer}/v1/token"),
        "jwks_uri": format!("{issuer}/v1/keys"),
        "response_types_supported": ["code", "token", "id_token"],
        "grant_types_supported": ["authorization_code", "client_credentials", "refresh_token"],
        "token_endpoint_auth_methods_supported":
            ["client_secret_basic", "client_secret_post", "client_secret_jwt", "private_key_jwt", "none"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "id_token_signing_alg_values_supported": ["RS256"],
    }))
    .into_response()
}

async fn keys(State(emulator): State<OAuthEmulator>, connection: Connection, uri: Uri) -> Response {
    if let Err(response) = gate(&emulator, connection, FetchKind::Keys, &uri).await {
        return response;
    }
    let (jwks, max_age_s) = {
        let ring = emulator.keys();
        let keys: Vec<_> = ring.published.iter().map(super::SigningKey::public_jwk).collect();
        (serde_json::json!({ "keys": keys }), ring.max_age_s)
    };
    let mut response = Json(jwks).into_response();
    if let Some(seconds) = max_age_s {
        let value = format!("max-age={seconds}, must-revalidate");
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(header::CACHE_CONTROL, value);
        }
    }
    response
}

/// Records the fetch, then plays the faults.
async fn gate(
    emulator: &OAuthEmulator,
    connection: Connection,
    kind: FetchKind,
    uri: &Uri,
) -> Result<(), Response> {
    emulator.record(|received_at| ReceivedFetch { kind, path: uri.path().to_owned(), received_at });
    match emulator.play_faults(connection).await {
        Some(answer) => Err(injected_response(answer)),
        None => Ok(()),
    }
}

/// Okta's error body (`errorCode` E0000009 for a server error, E0000047 for a rate limit), or
/// an HTML page without a code, as a load balancer would answer.
fn injected_response(answer: InjectedAnswer) -> Response {
    let okta_error = |status: StatusCode, code: &str, summary: &str| {
        let body = serde_json::json!({
            "errorCode": code,
            "errorSummary": summary,
            "errorLink": code,
            "errorId": "oaeSimulatedFault",
            "errorCauses": [],
        });
        (status, Json(body)).into_response()
    };
    let error = |status: StatusCode, code| {
        let reason = status.canonical_reason().unwrap_or("Injected error");
        okta_error(status, &format!("E{code:07}"), reason)
    };
    answer.render(error, || {
        okta_error(
            StatusCode::TOO_MANY_REQUESTS,
            "E0000047",
            "API call exceeded rate limit due to too many requests.",
        )
    })
}
