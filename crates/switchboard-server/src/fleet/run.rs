//! The fleet's background tasks, in Redis mode: the bus subscriber and the sync loop. Apart
//! from `fleet.rs` because they reach into every store through `Shared`, which itself owns the
//! `Fleet`: the connection knows nothing of the stores.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::{Redis, bus, health, ledger, spend, switches};
use crate::state::Shared;

/// Starts the bus subscriber and the sync loop, in Redis mode; both end with `stopped`, and the
/// replica leaves the membership set.
pub(crate) fn spawn(shared: &Arc<Shared>, stopped: CancellationToken) {
    let Some(redis) = shared.fleet.redis().cloned() else { return };
    tracing::info!(
        url = %redis.settings.redacted_url(),
        replica = %redis.replica,
        prefix = %redis.settings.key_prefix,
        "shared state in redis"
    );
    tokio::spawn(bus::subscribe(Arc::clone(shared), Arc::clone(&redis), stopped.clone()));
    health::spawn(shared, &redis, stopped.clone());
    let shared = Arc::clone(shared);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(redis.settings.sync_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stopped.cancelled() => break,
                _ = tick.tick() => sync(&shared, &redis).await,
            }
        }
        redis.leave().await;
    });
}

/// Reads what a replica must have before it serves, in Redis mode: its membership, the operator's switches (so
/// that a drain survives restarts) and the ejections in force (so that a new replica does not
/// rediscover a dead provider with users' codes). With Redis unavailable it starts without
/// them (counted), after one background timeout at most.
pub(crate) async fn prime(shared: &Arc<Shared>) {
    let Some(redis) = shared.fleet.redis() else { return };
    // And its share of each throughput cap, so a replica joining a fleet does not send at the
    // whole cap until its first sync.
    let (membership, (), ()) = tokio::join!(
        redis.renew_membership(),
        switches::sync(shared, redis),
        health::sync(shared, redis)
    );
    if membership.is_ok() {
        shared.throughput.share(redis.replicas());
    }
}

/// One round of the sync loop: membership, then each store's refresh of what it caches.
async fn sync(shared: &Arc<Shared>, redis: &Arc<Redis>) {
    let _ = redis.renew_membership().await;
    health::sync(shared, redis).await;
    switches::sync(shared, redis).await;
    // Throughput caps are shared as local shares of the last known count (throughput.rs).
    shared.throughput.share(redis.replicas());
    spend::sync(shared, redis).await;
    ledger::judge_unresent(shared, redis).await;
}
