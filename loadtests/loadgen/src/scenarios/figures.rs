//! The pieces of a result line that more than one scenario writes the same
//! way: the parameters every line repeats, per-transport tallies, and how
//! rates and per-item costs are rounded.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::setup::Setup;
use crate::procstat::round1;
use crate::worker::protocol::Tally;

/// The flags every result line repeats, so a line stands on its own.
pub fn common_params(setup: &Setup) -> Map<String, Value> {
    let mut params = Map::new();
    params.insert("server".into(), setup.common.server.name().into());
    params.insert("url".into(), setup.common.url.to_string().into());
    params.insert("topic".into(), setup.topic.clone().into());
    params.insert("source_ips".into(), setup.common.source_ips.into());
    params.insert("per_worker".into(), setup.common.per_worker.into());
    params.insert(
        "connect_concurrency".into(),
        setup.common.connect_concurrency.into(),
    );
    params.insert("max_failed_pct".into(), setup.common.max_failed_pct.into());
    params
}

/// Each transport's tally as figures, keyed by transport name.
pub fn transport_figures(per_transport: &BTreeMap<String, Tally>) -> Value {
    per_transport
        .iter()
        .map(|(name, tally)| (name.clone(), json!(tally.view())))
        .collect::<Map<String, Value>>()
        .into()
}

/// Microseconds per item, to two decimals; `None` without items.
pub fn per_item(micros: Option<u64>, items: u64) -> Option<f64> {
    micros
        .filter(|_| items > 0)
        .map(|us| (us as f64 / items as f64 * 100.0).round() / 100.0)
}

/// Rounds a rate for the result line.
pub fn rate(count: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        round1(count as f64 / secs)
    } else {
        0.0
    }
}
