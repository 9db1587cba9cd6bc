//! The bus: one Redis pub/sub channel, `{key_prefix}bus`, that carries small JSON messages
//! between replicas. A message says which replica sent it (its own are ignored) and which store
//! it is for; [`dispatch`] hands it to that store. Pub/sub delivers at most once: nothing here
//! may be the only record of something that matters; the stores whose state must survive a lost
//! message keep it in keys too and re-read them in the sync loop.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::Redis;
use crate::state::Shared;

/// One message.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Envelope {
    pub(crate) from: String,
    pub(crate) topic: String,
    pub(crate) body: serde_json::Value,
}

/// Subscribes to the bus until `stopped`, reconnecting after a pause whenever the connection
/// ends (Redis restarted, the network dropped).
pub(super) async fn subscribe(shared: Arc<Shared>, redis: Arc<Redis>, stopped: CancellationToken) {
    let channel = redis.key("bus", &[]);
    let mut pause = Duration::from_millis(100);
    loop {
        let connected = async {
            let mut pubsub = redis.client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        let connected = tokio::select! {
            () = stopped.cancelled() => return,
            connected = tokio::time::timeout(redis.settings.connect_timeout, connected) => connected,
        };
        if let Ok(Ok(pubsub)) = connected {
            pause = Duration::from_millis(100);
            tracing::debug!("subscribed to the shared-state bus");
            let mut messages = pubsub.into_on_message();
            loop {
                let message = tokio::select! {
                    () = stopped.cancelled() => return,
                    message = messages.next() => message,
                };
                let Some(message) = message else { break };
                let Ok(payload) = message.get_payload::<String>() else { continue };
                match serde_json::from_str::<Envelope>(&payload) {
                    Ok(envelope) if envelope.from == redis.replica => {}
                    Ok(envelope) => dispatch(&shared, &envelope.topic, envelope.body),
                    Err(_) => tracing::warn!("unreadable message on the shared-state bus"),
                }
            }
            tracing::debug!("shared-state bus connection ended; resubscribing");
        }
        tokio::select! {
            () = stopped.cancelled() => return,
            () = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(Duration::from_secs(2));
    }
}

/// Hands a message from another replica to the store it is for.
pub(crate) fn dispatch(shared: &Shared, topic: &str, body: serde_json::Value) {
    match topic {
        super::ledger::TOPIC_ANSWER => super::ledger::on_answer(shared, &body),
        super::evidence::TOPIC => super::evidence::apply(shared, body),
        super::sent::TOPIC => super::sent::apply(shared, body),
        super::events::TOPIC => crate::events::apply_forwarded(shared, body),
        super::health::TOPIC => super::health::receive(shared, &body),
        super::switches::TOPIC => super::switches::receive(shared, &body),
        _ => tracing::debug!(topic, "message for no store on the shared-state bus"),
    }
}
