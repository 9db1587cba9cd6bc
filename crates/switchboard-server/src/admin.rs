//! The admin listener: `/metrics`, `/healthz`, `/readyz` for Prometheus and the orchestrator, and
//! the admin API under `/admin/` for operators.
//!
//! The admin listener is separate from the hook listener and binds to loopback by default. The
//! admin API requires `Authorization: Bearer <admin.token>` (compared in constant time); without
//! a configured token it is off. Its endpoints:
//! - `POST /admin/reload`: re-read the configuration (and the secret files it reads); a bad file
//!   is refused, naming the key, and the running configuration stays;
//! - `GET /admin/providers`: each provider's kind, channels, operator state and health, and per
//!   route (country, channel) with delivery evidence: receipts and conversions with the bar they
//!   were judged against, receipt coverage, and the `route_problem` and `receipts_stopped` flags;
//! - `PUT /admin/providers/{id}/state` with `{"state": "enabled" | "draining" | "disabled"}`: the
//!   operator switch, kept apart from observed health. In Redis mode it is the fleet's (the
//!   answer says `"scope": "fleet"`), or 503 and no change anywhere when Redis is unavailable;
//!   in memory mode this replica's (`"scope": "replica"`).

use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use switchboard_core::health::{HealthStatus, OperatorState};
use switchboard_core::{Channel, ProviderId};

use crate::health::{RouteEvidence, delivery_json};
use crate::state::Shared;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let api = Router::new()
        .route("/admin/reload", post(reload))
        .route("/admin/providers", get(providers))
        .route("/admin/providers/{id}/state", put(set_state))
        .route("/admin/explain", get(explain))
        .route("/admin/state", get(state))
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(&shared),
            require_admin_token,
        ));
    Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .merge(api)
        .with_state(shared)
}

async fn require_admin_token(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    let runtime = shared.runtime();
    let Some(auth) = &runtime.admin_auth else {
        return (
            StatusCode::FORBIDDEN,
            Json(serde_json::json!({"error": "the admin API is off: set [admin] token"})),
        )
            .into_response();
    };
    match auth.verify(request.headers()) {
        Ok(()) => next.run(request).await,
        Err(failure) => {
            tracing::warn!(reason = failure.as_str(), "admin request refused");
            (
                StatusCode::UNAUTHORIZED,
                Json(serde_json::json!({"error": "a valid bearer token is required"})),
            )
                .into_response()
        }
    }
}

async fn reload(State(shared): State<Arc<Shared>>) -> Response {
    match shared.reload_from_source() {
        Ok(()) => Json(serde_json::json!({"status": "reloaded"})).into_response(),
        Err(error) => {
            (StatusCode::BAD_REQUEST, Json(serde_json::json!({"error": error}))).into_response()
        }
    }
}

async fn providers(State(shared): State<Arc<Shared>>) -> Json<serde_json::Value> {
    let runtime = shared.runtime();
    let now = tokio::time::Instant::now().into_std();
    let health = shared.health.providers(runtime.providers.keys(), now);
    let routes = shared.health.routes(now);
    let mut rows: Vec<_> = runtime
        .providers
        .values()
        .filter_map(|provider| {
            let id = provider.id();
            let health = health.iter().find(|row| &row.id == id)?;
            let channels: Vec<&str> = Channel::ALL
                .into_iter()
                .filter(|c| provider.supports(*c))
                .map(Channel::as_str)
                .collect();
            Some(serde_json::json!({
                "id": id.as_str(),
                "kind": provider.kind(),
                "channels": channels,
                "operator_state": shared.switches.state(id).as_str(),
                "health": health_json(&health.status, now),
                "routes": routes
                    .iter()
                    .filter(|route| route.key.provider() == id)
                    .map(|route| route_json(route, now))
                    .collect::<Vec<_>>(),
            }))
        })
        .collect();
    rows.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    Json(serde_json::json!({ "providers": rows }))
}

fn health_json(status: &HealthStatus, now: std::time::Instant) -> serde_json::Value {
    let ms = |until: &std::time::Instant| until.saturating_duration_since(now).as_millis() as u64;
    match status {
        HealthStatus::Healthy => serde_json::json!({"state": "healthy"}),
        HealthStatus::Ejected { until, times } => {
            serde_json::json!({"state": "ejected", "remaining_ms": ms(until), "times_ejected": times})
        }
        HealthStatus::Probation { trial_in_flight } => {
            serde_json::json!({"state": "probation", "trial_in_flight": trial_in_flight})
        }
        HealthStatus::RateLimited { until } => {
            serde_json::json!({"state": "rate_limited", "remaining_ms": ms(until)})
        }
    }
}

/// One route's health and delivery evidence.
fn route_json(route: &RouteEvidence, now: std::time::Instant) -> serde_json::Value {
    let mut health = health_json(&route.status, now);
    if let (Some(cause), Some(object)) = (route.ejection_cause, health.as_object_mut()) {
        object.insert("cause".into(), cause.as_str().into());
    }
    let mut row = delivery_json(&route.evidence);
    if let Some(object) = row.as_object_mut() {
        object.insert("country".into(), route.key.country().as_str().into());
        object.insert("channel".into(), route.key.channel().as_str().into());
        object.insert("health".into(), health);
    }
    row
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StateChange {
    state: String,
}

async fn set_state(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    Json(change): Json<StateChange>,
) -> Response {
    let runtime = shared.runtime();
    let Some(id) = ProviderId::parse(&id).filter(|id| runtime.providers.contains_key(id)) else {
        return (StatusCode::NOT_FOUND, Json(serde_json::json!({"error": "no such provider"})))
            .into_response();
    };
    let state = match change.state.as_str() {
        "enabled" => OperatorState::Enabled,
        "draining" => OperatorState::Draining,
        "disabled" => OperatorState::Disabled,
        _ => {
            let error = "state: must be enabled, draining or disabled";
            return (StatusCode::BAD_REQUEST, Json(serde_json::json!({"error": error})))
                .into_response();
        }
    };
    // Redis mode: the fleet's switch, or nothing at all (see `fleet/switches.rs` for why a
    // switch Redis cannot take is not applied to this replica alone).
    let scope = match shared.fleet.redis() {
        Some(redis) => {
            if let Err(why) = crate::fleet::switches::set(&shared, redis, &id, state).await {
                tracing::error!(provider = %id, state = state.as_str(), reason = why.as_str(), "operator switch refused: shared state (redis) unavailable");
                let error = "the shared state (redis) is unavailable: the switch was not changed on any replica; retry when redis is back";
                let body = serde_json::json!({"error": error, "reason": why.as_str()});
                return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
            }
            "fleet"
        }
        None => {
            shared.switches.set(&id, state, tokio::time::Instant::now().into_std());
            "replica"
        }
    };
    tracing::warn!(provider = %id, state = state.as_str(), scope, "operator changed provider state");
    let body =
        serde_json::json!({"id": id.as_str(), "operator_state": state.as_str(), "scope": scope});
    Json(body).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExplainParams {
    number: String,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    request_type: Option<String>,
    #[serde(default)]
    format: Option<String>,
}

/// `GET /admin/explain?number=+447700900123&channel=voice&format=text`.
async fn explain(
    State(shared): State<Arc<Shared>>,
    Query(params): Query<ExplainParams>,
) -> Response {
    let bad = |error: String| {
        (StatusCode::BAD_REQUEST, Json(serde_json::json!({"error": error}))).into_response()
    };
    let channel = match params.channel.as_deref() {
        None => Channel::Sms,
        Some(text) => match Channel::parse(text) {
            Some(channel) => channel,
            None => return bad("channel: must be sms or voice".into()),
        },
    };
    let purpose = match params.request_type.as_deref() {
        None => None,
        Some(text) => match crate::okta::parse_purpose_name(text) {
            Some(purpose) => Some(purpose),
            None => return bad(
                "request_type: must be enrollment, verification, account_unlock or password_reset"
                    .into(),
            ),
        },
    };
    let query = crate::explain::ExplainQuery { number: params.number, channel, purpose };
    match crate::explain::explain_live(&shared, &query) {
        Ok((text, _)) if params.format.as_deref() == Some("text") => text.into_response(),
        Ok((_, json)) => Json(json).into_response(),
        Err(error) => bad(format!("number: {error}")),
    }
}

/// `GET /admin/state`: where shared state lives and how this replica sees it: the backend, in
/// Redis mode this replica's name, how many replicas share the state, and whether Redis answers
/// (its circuit breaker is closed). Never the URL's credentials.
async fn state(State(shared): State<Arc<Shared>>) -> Json<serde_json::Value> {
    let fleet = &shared.fleet;
    Json(match fleet.redis() {
        None => serde_json::json!({ "backend": "memory", "replicas": 1 }),
        Some(redis) => serde_json::json!({
            "backend": "redis",
            "url": redis.settings().redacted_url(),
            "key_prefix": redis.settings().key_prefix,
            "replica": redis.replica(),
            "replicas": fleet.replicas(),
            "reachable": redis.is_reachable(),
        }),
    })
}

async fn metrics_text(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    let snapshot: Vec<_> = {
        let runtime = shared.runtime();
        let now = tokio::time::Instant::now().into_std();
        shared
            .health
            .providers(runtime.providers.keys(), now)
            .into_iter()
            .map(|row| {
                let operator = shared.switches.state(&row.id);
                (row.id, row.status, operator)
            })
            .collect()
    };
    shared.metrics.provider_health(&snapshot);
    let now = tokio::time::Instant::now().into_std();
    shared.metrics.routes(&shared.health.routes(now));
    ([("content-type", "text/plain; version=0.0.4")], shared.metrics.render())
}

async fn ready(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    if shared.is_draining() {
        (StatusCode::SERVICE_UNAVAILABLE, "draining\n")
    } else {
        (StatusCode::OK, "ready\n")
    }
}
