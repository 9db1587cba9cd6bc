//! The guard's daily spend caps, shared by the fleet: one hash per UTC day,
//! `{prefix}spend:{day}`, with a field per replica and country (`{replica}:{CC}`) holding that
//! replica's total for the day. Each sync a replica writes its own totals (absolute values, so
//! a write repeated after a timeout counts nothing twice) and reads the whole hash back; the
//! other replicas' fields become its view of what the fleet spent besides itself
//! ([`SpendMeter::set_others`](crate::spend::SpendMeter::set_others), where the bound on
//! overshoot is documented). The hash lives two days (yesterday's stays readable across
//! midnight) and holds replicas × countries fields: a replica restarted under a new name leaves
//! its old fields counted until the day ends, as what they say was spent.

use std::collections::HashMap;
use std::time::Duration;

use super::{Path, Redis};
use crate::state::Shared;

/// How long a day's hash is kept.
const KEPT: Duration = Duration::from_secs(2 * 24 * 60 * 60);

/// Writes this replica's totals for today and reads the other replicas'. On failure the last
/// read stays (for the same day) and the fallback is counted.
pub(crate) async fn sync(shared: &Shared, redis: &Redis) {
    let day = shared.today();
    let key = redis.key("spend", &[&day.to_string()]);
    let own = shared.spend.own_on(day);
    let mut pipeline = redis::pipe();
    if !own.is_empty() {
        let fields: Vec<(String, f64)> = own
            .iter()
            .map(|(country, amount)| (format!("{}:{country}", redis.replica()), *amount))
            .collect();
        pipeline.hset_multiple(&key, &fields).ignore();
        pipeline.pexpire(&key, KEPT.as_millis() as i64).ignore();
    }
    pipeline.hgetall(&key);
    match redis.query::<(HashMap<String, f64>,)>("spend", Path::Background, &pipeline).await {
        Ok((fields,)) => {
            let mine = format!("{}:", redis.replica());
            let mut others: HashMap<String, f64> = HashMap::new();
            for (field, amount) in fields {
                if field.starts_with(&mine) || !amount.is_finite() {
                    continue;
                }
                let Some((_, country)) = field.split_once(':') else { continue };
                *others.entry(country.to_owned()).or_default() += amount;
            }
            shared.spend.set_others(day, others);
        }
        Err(why) => redis.fell_back("spend", why),
    }
}
