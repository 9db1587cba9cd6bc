//! The operator's switch shared by the fleet: one Redis hash, `{prefix}switches`, one field per
//! provider id (`enabled`, `draining` or `disabled`).
//!
//! The hash is the truth in Redis mode. `PUT /admin/providers/{id}/state` writes it first and
//! changes this replica only once Redis has it, then publishes the change so every replica
//! applies it at once; each sync re-reads the hash (a lost message is repaired within a sync
//! interval), and a replica reads it before it serves, so a drain survives restarts of every
//! replica. If Redis cannot take the write, the admin call answers 503 and nothing changes
//! anywhere: a drain applied to one replica of N moves 1/N of the traffic and is forgotten on
//! restart, and the operator must never believe a fleet-wide drain happened when it did not.
//!
//! The hash has no TTL: it is bounded by the providers ever configured (a handful of small
//! fields), and a switch must outlive any quiet spell. Fields of providers removed from the
//! configuration are ignored, and apply again if the provider comes back under the same id.
//! Should Redis lose the hash (a restart without persistence), a replica that still caches a
//! provider not enabled writes its switches back, never over a field that is there.
//!
//! When Redis is slow or down, each replica keeps the switches it last read (counted as a
//! fallback); one that starts while Redis is unreachable has read none, so every provider is
//! enabled there until Redis answers.

use std::collections::HashMap;
use std::sync::Arc;

use switchboard_core::ProviderId;
use switchboard_core::switch::OperatorState;

use super::{Path, Redis, Unavailable};
use crate::state::Shared;

/// The store's name in keys and metrics.
const STORE: &str = "switches";
/// The bus topic.
pub(crate) const TOPIC: &str = "switch";

/// Sets `provider`'s switch for the fleet: Redis first, then this replica, then the others.
/// Nothing changes anywhere when Redis cannot take it.
pub(crate) async fn set(
    shared: &Shared,
    redis: &Arc<Redis>,
    provider: &ProviderId,
    state: OperatorState,
) -> Result<(), Unavailable> {
    let mut command = redis::cmd("HSET");
    command.arg(redis.key(STORE, &[])).arg(provider.as_str()).arg(state.as_str());
    redis.query::<i64>(STORE, Path::Background, &command).await?;
    shared.switches.set(provider, state, tokio::time::Instant::now().into_std());
    redis.publish(
        TOPIC,
        serde_json::json!({"provider": provider.as_str(), "state": state.as_str()}),
    );
    Ok(())
}

/// A switch set through another replica.
pub(crate) fn receive(shared: &Shared, body: &serde_json::Value) {
    let Some(provider) = body["provider"].as_str().and_then(ProviderId::parse) else { return };
    let Some(state) = body["state"].as_str().and_then(parse) else { return };
    let now = tokio::time::Instant::now().into_std();
    apply(shared, &provider, state, now);
}

/// One round of the sync loop, and the read before serving: every configured provider's
/// switch from the hash (enabled when it has no field). Keeps the cached switches when Redis
/// is unavailable.
pub(crate) async fn sync(shared: &Shared, redis: &Redis) {
    let asked = tokio::time::Instant::now().into_std();
    let mut command = redis::cmd("HGETALL");
    command.arg(redis.key(STORE, &[]));
    let fields =
        match redis.query::<HashMap<String, String>>(STORE, Path::Background, &command).await {
            Ok(fields) => fields,
            Err(why) => {
                redis.fell_back(STORE, why);
                return;
            }
        };
    let runtime = shared.runtime();
    if fields.is_empty() {
        restore(shared, redis, runtime.providers.keys()).await;
        return;
    }
    // A switch set here while the read was under way is newer than what it read.
    if shared.switches.changed_at().is_some_and(|at| at >= asked) {
        return;
    }
    let now = tokio::time::Instant::now().into_std();
    for provider in runtime.providers.keys() {
        let state = fields.get(provider.as_str()).and_then(|text| parse(text));
        apply(shared, provider, state.unwrap_or_default(), now);
    }
}

/// Redis has no switches at all while this replica caches some that are not enabled: Redis
/// lost them (they are never deleted). Writes them back, never over a field set meanwhile.
async fn restore<'p>(
    shared: &Shared,
    redis: &Redis,
    providers: impl Iterator<Item = &'p ProviderId>,
) {
    let cached: Vec<(&ProviderId, OperatorState)> = providers
        .map(|provider| (provider, shared.switches.state(provider)))
        .filter(|(_, state)| !state.is_enabled())
        .collect();
    if cached.is_empty() {
        return;
    }
    let mut pipeline = redis::pipe();
    for (provider, state) in &cached {
        pipeline
            .cmd("HSETNX")
            .arg(redis.key(STORE, &[]))
            .arg(provider.as_str())
            .arg(state.as_str());
    }
    match redis.query::<Vec<i64>>(STORE, Path::Background, &pipeline).await {
        Ok(_) => tracing::warn!(
            providers = cached.len(),
            "operator switches missing from redis: written back from this replica's cache"
        ),
        Err(why) => redis.fell_back(STORE, why),
    }
}

/// Takes a switch from the fleet, for a provider still configured.
fn apply(shared: &Shared, provider: &ProviderId, state: OperatorState, now: std::time::Instant) {
    if !shared.runtime().providers.contains_key(provider) {
        return;
    }
    if shared.switches.state(provider) != state {
        shared.switches.set(provider, state, now);
        tracing::info!(provider = %provider, state = state.as_str(), "operator switch taken from the shared state");
    }
}

/// `enabled`, `draining` or `disabled`.
pub(crate) fn parse(text: &str) -> Option<OperatorState> {
    [OperatorState::Enabled, OperatorState::Draining, OperatorState::Disabled]
        .into_iter()
        .find(|state| state.as_str() == text)
}
