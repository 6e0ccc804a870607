//! The JSON lines between the parent and its workers, and the tallies the
//! workers report, which the parent adds up.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::histogram::{Buckets, Recorder, Summary};
use crate::sequence::SequenceCounts;
use crate::server::Server;

/// What one worker is to do.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerSpec {
    pub index: usize,
    /// The server's base URL (checked for loopback again by the worker).
    pub url: String,
    pub server: Server,
    /// The subscribers' bearer token, if the server takes one.
    pub token: Option<String>,
    pub topic: String,
    pub sse: u32,
    pub ws: u32,
    /// The global number of this worker's first connection, so that source
    /// addresses rotate evenly across workers.
    pub first_connection: usize,
    pub source_ips: Vec<IpAddr>,
    pub connect_concurrency: u32,
    pub connect_timeout_ms: u64,
    /// The worker exits after this long whatever happens.
    pub lifetime_ms: u64,
}

/// Parent → worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Command {
    /// Connect every subscriber; reply once all are live or have failed.
    Start(WorkerSpec),
    /// Wait until every live subscriber has every event up to `last_seq`.
    Drain { last_seq: u64, timeout_ms: u64 },
    /// Close every connection, keeping each subscriber's cursor.
    Drop,
    /// Reconnect every subscriber from its cursor, all at once (or
    /// `concurrency` at a time); wait until each has received `target_id`.
    Reconnect {
        target_id: u64,
        concurrency: u32,
        timeout_ms: u64,
    },
    /// Report and exit. `last_seq`: the last event published, if any, to
    /// count events never received.
    Finish { last_seq: Option<u64> },
}

/// Worker → parent: one per command.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    Report(Report),
    Failed { error: String },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub pid: u32,
    /// Whether the phase ended by its timeout rather than by completing.
    pub timed_out: bool,
    pub waited_ms: u64,
    /// Keyed by transport name.
    pub tallies: BTreeMap<String, Tally>,
}

/// Everything known about one worker's subscribers of one transport.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Tally {
    pub subscribers: u64,
    /// Connected right now.
    pub live: u64,
    /// Failed connection attempts, by kind, over the whole run.
    pub connect_failures: BTreeMap<String, u64>,
    /// Live connections the server ended, by kind, over the whole run.
    pub unexpected_ends: BTreeMap<String, u64>,
    pub heartbeats: u64,
    pub sequence: SequenceCounts,
    pub missing_events: u64,
    pub subscribers_with_problems: u64,
    pub foreign_events: u64,
    pub unreadable: u64,
    pub caught_up: u64,
    pub latency_us: Buckets,
    pub connect_us: Buckets,
    pub catch_up_us: Buckets,
    pub first_receive_unix_us: Option<u64>,
    pub last_receive_unix_us: Option<u64>,
}

impl Tally {
    pub fn add(&mut self, other: &Tally) {
        self.subscribers += other.subscribers;
        self.live += other.live;
        add_counts(&mut self.connect_failures, &other.connect_failures);
        add_counts(&mut self.unexpected_ends, &other.unexpected_ends);
        self.heartbeats += other.heartbeats;
        self.sequence.add(&other.sequence);
        self.missing_events += other.missing_events;
        self.subscribers_with_problems += other.subscribers_with_problems;
        self.foreign_events += other.foreign_events;
        self.unreadable += other.unreadable;
        self.caught_up += other.caught_up;
        self.latency_us = merged(&self.latency_us, &other.latency_us);
        self.connect_us = merged(&self.connect_us, &other.connect_us);
        self.catch_up_us = merged(&self.catch_up_us, &other.catch_up_us);
        self.first_receive_unix_us =
            min_some(self.first_receive_unix_us, other.first_receive_unix_us);
        self.last_receive_unix_us = self.last_receive_unix_us.max(other.last_receive_unix_us);
    }

    pub fn connect_failure_count(&self) -> u64 {
        self.connect_failures.values().sum()
    }

    pub fn unexpected_end_count(&self) -> u64 {
        self.unexpected_ends.values().sum()
    }

    /// The same figures with histograms summarised, for the result line.
    pub fn view(&self) -> TallyView {
        let summary = |buckets: &Buckets| {
            let mut recorder = Recorder::new();
            recorder.add(buckets);
            recorder.summary()
        };
        TallyView {
            subscribers: self.subscribers,
            live: self.live,
            connect_failures: self.connect_failures.clone(),
            unexpected_ends: self.unexpected_ends.clone(),
            heartbeats: self.heartbeats,
            events_received: self.sequence.received,
            gaps: self.sequence.gaps,
            missing_events: self.missing_events,
            duplicates: self.sequence.duplicates,
            out_of_order: self.sequence.out_of_order,
            subscribers_with_problems: self.subscribers_with_problems,
            foreign_events: self.foreign_events,
            unreadable: self.unreadable,
            caught_up: self.caught_up,
            latency_us: summary(&self.latency_us),
            connect_us: summary(&self.connect_us),
            catch_up_us: summary(&self.catch_up_us),
        }
    }
}

/// A [`Tally`] as it appears in the result line.
#[derive(Debug, Clone, Serialize)]
pub struct TallyView {
    pub subscribers: u64,
    pub live: u64,
    pub connect_failures: BTreeMap<String, u64>,
    pub unexpected_ends: BTreeMap<String, u64>,
    pub heartbeats: u64,
    pub events_received: u64,
    pub gaps: u64,
    pub missing_events: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
    pub subscribers_with_problems: u64,
    pub foreign_events: u64,
    pub unreadable: u64,
    pub caught_up: u64,
    pub latency_us: Summary,
    pub connect_us: Summary,
    pub catch_up_us: Summary,
}

fn add_counts(into: &mut BTreeMap<String, u64>, from: &BTreeMap<String, u64>) {
    for (kind, count) in from {
        *into.entry(kind.clone()).or_default() += count;
    }
}

fn merged(a: &Buckets, b: &Buckets) -> Buckets {
    if a.0.is_empty() {
        return b.clone();
    }
    if b.0.is_empty() {
        return a.clone();
    }
    let mut recorder = Recorder::new();
    recorder.add(a);
    recorder.add(b);
    recorder.buckets()
}

fn min_some(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Adds up reports per transport; `all` is every transport together.
pub fn combine(reports: &[Report]) -> (BTreeMap<String, Tally>, Tally) {
    let mut per_transport: BTreeMap<String, Tally> = BTreeMap::new();
    let mut all = Tally::default();
    for report in reports {
        for (transport, tally) in &report.tallies {
            per_transport
                .entry(transport.clone())
                .or_default()
                .add(tally);
            all.add(tally);
        }
    }
    (per_transport, all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_one_json_object_each() {
        let line = serde_json::to_string(&Command::Drain {
            last_seq: 9,
            timeout_ms: 100,
        })
        .unwrap();
        assert_eq!(line, r#"{"cmd":"drain","last_seq":9,"timeout_ms":100}"#);
        let back: Command = serde_json::from_str(&line).unwrap();
        assert!(matches!(back, Command::Drain { last_seq: 9, .. }));
    }

    #[test]
    fn tallies_add_up() {
        let mut a = Tally {
            subscribers: 2,
            connect_failures: [("timeout".to_string(), 1)].into(),
            first_receive_unix_us: Some(10),
            ..Tally::default()
        };
        let b = Tally {
            subscribers: 3,
            connect_failures: [("timeout".to_string(), 2)].into(),
            first_receive_unix_us: Some(5),
            ..Tally::default()
        };
        a.add(&b);
        assert_eq!(a.subscribers, 5);
        assert_eq!(a.connect_failure_count(), 3);
        assert_eq!(a.first_receive_unix_us, Some(5));
    }
}
