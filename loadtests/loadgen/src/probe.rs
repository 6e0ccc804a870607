//! What loadgen puts in an event's payload and reads back out of it: the
//! publisher's sequence number and the wall-clock send time. Subscribers in
//! other processes on the same machine share the clock, so
//! `receive time − sent_us` is the publish→receive latency.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// Microseconds since the Unix epoch, by the wall clock all processes share.
pub fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// The payload of every event loadgen publishes.
///
/// `seq` counts this run's events from 0 in publish order. The publisher has
/// one request in flight at a time, so seq order is commit order is id
/// order, and a subscriber can tell gaps, duplicates and reordering from seq
/// alone, even though ids are shared with every other topic in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probe {
    pub seq: u64,
    pub sent_us: u64,
}

/// The parts of a pushed event that loadgen reads. The payload is kept as
/// raw JSON and read as a probe only on request: one pass over the event,
/// with no intermediate tree, which matters at tens of thousands of
/// deliveries per second on a loaded two-core machine.
#[derive(Debug, Deserialize)]
pub struct ReceivedEvent {
    pub id: u64,
    #[serde(default)]
    pub payload: Option<Box<RawValue>>,
}

impl ReceivedEvent {
    /// The probe in the payload; `None` for someone else's event.
    pub fn probe(&self) -> Option<Probe> {
        serde_json::from_str(self.payload.as_ref()?.get()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_are_read_from_a_pushed_event() {
        let event: ReceivedEvent = serde_json::from_str(
            r#"{"id":7,"topic":"t","type":"x","payload":{"seq":3,"sent_us":99,"pad":"…"},"timestamp":"…"}"#,
        )
        .unwrap();
        assert_eq!(event.id, 7);
        assert_eq!(
            event.probe(),
            Some(Probe {
                seq: 3,
                sent_us: 99
            })
        );
    }

    #[test]
    fn other_payloads_are_not_probes() {
        for json in [
            r#"{"id":1,"payload":{"status":"x"}}"#,
            r#"{"id":1,"payload":"text"}"#,
            r#"{"id":1,"payload":null}"#,
            r#"{"id":1}"#,
        ] {
            let event: ReceivedEvent = serde_json::from_str(json).unwrap();
            assert_eq!(event.probe(), None, "{json}");
        }
    }
}
