//! The sent-message index, shared: which (provider, message id) was sent on which health key,
//! so a receipt posted to any replica finds its send, and each message's final receipt counts
//! once fleet-wide.
//!
//! - A send is written in the background (`SET {p}sent:msg:<provider>:<digest> … PX 6h` on the
//!   background timeout): the hook never waits for it. The value is the health key's labels,
//!   Okta's `eventId` and the sending replica: no number, code or text. The message id is
//!   digested only to keep keys short and free of a provider's odd characters.
//! - A final receipt settles with one script: the record (when the receiving replica has none
//!   of its own) and `SET {p}sent:settled:<provider>:<digest> NX PX 6h`, so the first final
//!   receipt anywhere counts and every later one (a provider retrying, a replay) does not.
//! - A receipt can beat its send record (the provider's callback races the background write,
//!   Jasmin's #423): a receipt found nowhere is looked up once more after
//!   [`RETRY_AFTER`].
//! - A settled receipt is announced on the bus (topic [`TOPIC`]), so the replica that sent the
//!   message marks it and never counts it missing, and every replica learns that the provider
//!   reports on that channel (see `sent.rs` on which messages are expected to have receipts).
//!
//! When Redis is slow or down the receiving replica uses its own index only (a receipt for
//! another replica's message is dropped as unknown, counted in
//! `switchboard_state_fallbacks_total{store="sent"}`); a send written while Redis was down is
//! only in its replica's index.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use switchboard_core::health::HealthKey;
use switchboard_core::{Channel, Country, ProviderId};

use super::{Path, Redis, Unavailable};

/// The store's name in keys and metrics.
const STORE: &str = "sent";
/// The bus topic for settled receipts.
pub(crate) const TOPIC: &str = "sent";
/// How long a send's record and its settled flag are kept (as in the local index).
const TTL: Duration = Duration::from_secs(6 * 3600);
/// How long a receipt found nowhere waits before the one second look.
pub(crate) const RETRY_AFTER: Duration = Duration::from_secs(1);

/// A send's record, as another replica finds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) key: HealthKey,
    pub(crate) event_id: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Stored {
    provider: String,
    country: String,
    channel: String,
    event_id: String,
}

impl Stored {
    fn read(self) -> Option<Record> {
        let key = HealthKey::new(
            ProviderId::parse(&self.provider)?,
            Country::parse(&self.country)?,
            Channel::parse(&self.channel)?,
        );
        Some(Record { key, event_id: self.event_id })
    }
}

/// Writes an accepted send's record, in the background.
pub(crate) fn remember(redis: &Arc<Redis>, message_id: &str, key: &HealthKey, event_id: &str) {
    let stored = Stored {
        provider: key.provider().as_str().to_owned(),
        country: key.country().as_str().to_owned(),
        channel: key.channel().as_str().to_owned(),
        event_id: event_id.to_owned(),
    };
    let Ok(value) = serde_json::to_string(&stored) else { return };
    let record_key =
        redis.key(STORE, &["msg", key.provider().as_str(), &super::short_digest(message_id)]);
    let redis = Arc::clone(redis);
    tokio::spawn(async move {
        let mut command = redis::cmd("SET");
        command.arg(record_key).arg(value).arg("PX").arg(TTL.as_millis() as u64);
        if let Err(why) = redis.query::<()>(STORE, Path::Background, &command).await {
            // Only the sending replica can match this message's receipts now.
            redis.fell_back(STORE, why);
        }
    });
}

/// What the shared index said about a final receipt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Settled {
    /// No record anywhere (nothing was settled).
    Unknown,
    /// Settled; `record` is the shared one (`None` when the caller said it knows the send), and
    /// `is_first` whether this was the first final receipt fleet-wide.
    Found { record: Option<Record>, is_first: bool },
}

/// Settles a final receipt fleet-wide. `is_known` when this replica has the send in its own
/// index (the flag is set even if the shared record is missing).
pub(crate) async fn settle(
    redis: &Redis,
    provider: &ProviderId,
    message_id: &str,
    is_known: bool,
) -> Result<Settled, Unavailable> {
    let digest = super::short_digest(message_id);
    let mut invocation = SETTLE.key(redis.key(STORE, &["msg", provider.as_str(), &digest]));
    invocation
        .key(redis.key(STORE, &["settled", provider.as_str(), &digest]))
        .arg(redis.replica())
        .arg(TTL.as_millis() as u64)
        .arg(if is_known { "1" } else { "0" });
    let (found, is_first, value): (i64, i64, String) =
        redis.query(STORE, Path::Background, &invocation).await?;
    if found == 0 {
        return Ok(Settled::Unknown);
    }
    let record = serde_json::from_str::<Stored>(&value).ok().and_then(Stored::read);
    Ok(Settled::Found { record, is_first: is_first == 1 })
}

/// Looks a send up without settling it (an intermediate receipt).
pub(crate) async fn find(
    redis: &Redis,
    provider: &ProviderId,
    message_id: &str,
) -> Result<Option<Record>, Unavailable> {
    let mut command = redis::cmd("GET");
    command.arg(redis.key(STORE, &["msg", provider.as_str(), &super::short_digest(message_id)]));
    let value: Option<String> = redis.query(STORE, Path::Background, &command).await?;
    Ok(value.and_then(|value| serde_json::from_str::<Stored>(&value).ok()).and_then(Stored::read))
}

/// The bus message announcing a settled receipt.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Announcement {
    pub(crate) provider: String,
    pub(crate) message_id: String,
    pub(crate) channel: String,
}

impl Announcement {
    pub(crate) fn read(&self) -> Option<(ProviderId, &str, Channel)> {
        Some((
            ProviderId::parse(&self.provider)?,
            self.message_id.as_str(),
            Channel::parse(&self.channel)?,
        ))
    }
}

/// Announces a settled receipt to the other replicas.
pub(crate) fn announce(
    redis: &Arc<Redis>,
    provider: &ProviderId,
    message_id: &str,
    channel: Channel,
) {
    let announcement = Announcement {
        provider: provider.as_str().to_owned(),
        message_id: message_id.to_owned(),
        channel: channel.as_str().to_owned(),
    };
    redis.publish(TOPIC, serde_json::to_value(announcement).unwrap_or_default());
}

/// The record (unless the caller knows the send) and the settled flag, in one step: returns
/// `{found, is_first, record or ''}`. A receipt for a send known nowhere settles nothing, so a
/// receipt that beat its record can still count once the record is written.
static SETTLE: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r"
local record = redis.call('GET', KEYS[1])
if not record and ARGV[3] ~= '1' then
  return {0, 0, ''}
end
local first = redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', tonumber(ARGV[2]))
return {1, first and 1 or 0, record or ''}
",
    )
});

/// A receipt another replica settled: marks this replica's entry (see the module docs).
pub(crate) fn apply(shared: &crate::state::Shared, body: serde_json::Value) {
    let Ok(announcement) = serde_json::from_value::<Announcement>(body) else {
        tracing::warn!("unreadable settled receipt on the shared-state bus");
        return;
    };
    let Some((provider, message_id, channel)) = announcement.read() else { return };
    shared.sent.note_settled(&provider, message_id, channel, tokio::time::Instant::now());
}
