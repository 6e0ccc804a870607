//! Publishing: the request bodies loadgen sends, and the probe publisher
//! that feeds `fanout` and `storm`. pushlog takes a JSON array of events per
//! request; nchan one message per request, which loadgen shapes like a
//! pushlog event (see [`crate::server`]).
//!
//! The probe publisher has exactly one request in flight: ids are assigned
//! at commit, so a second concurrent request could commit first and make
//! seq order differ from id order, which would turn into false
//! out-of-order reports at every subscriber.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use crate::cli::Pace;
use crate::histogram::Recorder;
use crate::http::{HttpClient, HttpError, Response};
use crate::probe::unix_micros;
use crate::server::Server;

/// How long one publish request may take before it counts as failed.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What each published event carries besides its number and send time.
#[derive(Debug, Clone, Copy, Default)]
pub struct Shape<'a> {
    /// Makes payloads bigger.
    pub pad: &'a str,
    /// Adds idempotency keys `<prefix>-<seq>`.
    pub key_prefix: Option<&'a str>,
    /// With `n > 0`, each event changes entity `(seq + entity_offset) % n`
    /// of kind `loadgen`, so the server keeps its entity index as a real
    /// workload would.
    pub entities: u32,
    /// Where this publisher starts among the entities, so that publishers
    /// in step change different ones.
    pub entity_offset: u64,
}

/// The JSON array of `count` events numbered from `first_seq`, each with the
/// send time, shaped by `shape`.
pub fn batch_body(topic: &str, first_seq: u64, count: u32, shape: Shape<'_>) -> Vec<u8> {
    let Shape {
        pad,
        key_prefix,
        entities,
        entity_offset,
    } = shape;
    let sent_us = unix_micros();
    let mut body = String::with_capacity(count as usize * (160 + pad.len()));
    body.push('[');
    for seq in first_seq..first_seq + u64::from(count) {
        if seq != first_seq {
            body.push(',');
        }
        // The topic is ours and made of [A-Za-z0-9_.:/-]; `pad` is ASCII
        // letters, so nothing here needs JSON escaping.
        let _ = write!(
            body,
            r#"{{"topic":"{topic}","type":"loadgen:probe","payload":{{"seq":{seq},"sent_us":{sent_us}"#
        );
        if !pad.is_empty() {
            let _ = write!(body, r#","pad":"{pad}""#);
        }
        body.push('}');
        if entities > 0 {
            let id = seq.wrapping_add(entity_offset) % u64::from(entities);
            let _ = write!(
                body,
                r#","entity":{{"kind":"loadgen","id":"{id}","op":"updated"}}"#
            );
        }
        if let Some(prefix) = key_prefix {
            let _ = write!(body, r#","key":"{prefix}-{seq}""#);
        }
        body.push('}');
    }
    body.push(']');
    body.into_bytes()
}

/// The nchan message for event `seq`: `{"id":<seq+1>,"payload":{…}}`, the
/// id standing in for the one pushlog would assign.
pub fn message_body(seq: u64, pad: &str) -> Vec<u8> {
    let sent_us = unix_micros();
    let id = seq + 1;
    let mut body = format!(r#"{{"id":{id},"payload":{{"seq":{seq},"sent_us":{sent_us}"#);
    if !pad.is_empty() {
        let _ = write!(body, r#","pad":"{pad}""#);
    }
    body.push_str("}}");
    body.into_bytes()
}

/// Where and how loadgen publishes on one topic.
#[derive(Debug, Clone)]
pub struct Channel {
    pub server: Server,
    pub topic: String,
    /// The publisher's bearer token (pushlog); nchan takes none.
    pub token: Option<String>,
}

impl Channel {
    /// The body of one request carrying events `first_seq..first_seq +
    /// count`. nchan takes one message per request: scenarios refuse batches
    /// and keys with it before publishing anything.
    pub fn body(&self, first_seq: u64, count: u32, shape: Shape<'_>) -> Vec<u8> {
        match self.server {
            Server::Pushlog => batch_body(&self.topic, first_seq, count, shape),
            Server::Nchan => {
                debug_assert!(
                    count == 1 && shape.key_prefix.is_none() && shape.entities == 0,
                    "nchan takes single messages"
                );
                message_body(first_seq, shape.pad)
            }
        }
    }

    /// POSTs a [`Channel::body`] that starts at `first_seq` and classifies
    /// the answer.
    pub async fn post(&self, client: &mut HttpClient, first_seq: u64, body: &[u8]) -> Outcome {
        let path = self.server.publish_path(&self.topic);
        let answer = client
            .post_json(&path, self.token.as_deref(), body, REQUEST_TIMEOUT)
            .await;
        match answer {
            Ok(response) => classify(self.server, first_seq, &response),
            Err(HttpError::Timeout(_)) => Outcome::Ambiguous("timeout".into()),
            Err(error) => Outcome::Ambiguous(error.kind()),
        }
    }
}

/// What an answer means. pushlog: `201` with the ids assigned. nchan: `201`
/// (delivered to subscribers) or `202` (queued, nobody subscribed), with
/// the channel's info as text; the id is the one loadgen put in the body.
fn classify(server: Server, first_seq: u64, response: &Response) -> Outcome {
    match (server, response.status) {
        (Server::Pushlog, 200 | 201) => {
            match serde_json::from_slice::<Acknowledged>(&response.body) {
                Ok(acks) => Outcome::Acked {
                    last_id: acks.events.iter().map(|a| a.id).max().unwrap_or(0),
                    events: acks.events.len() as u64,
                },
                Err(_) => Outcome::Rejected(format!("status_{}_unreadable_body", response.status)),
            }
        }
        (Server::Nchan, 201 | 202) => Outcome::Acked {
            last_id: first_seq + 1,
            events: 1,
        },
        (Server::Pushlog, status) => Outcome::Rejected(format!(
            "status_{status}_{}",
            crate::http::error_code(&response.body)
        )),
        (Server::Nchan, status) => Outcome::Rejected(format!("status_{status}")),
    }
}

/// `201 {"events":[{"id":…},…]}`.
#[derive(Deserialize)]
struct Acknowledged {
    events: Vec<Ack>,
}

#[derive(Deserialize)]
struct Ack {
    id: u64,
}

/// How one publish request went.
#[derive(Debug)]
pub enum Outcome {
    /// Committed; the highest id assigned.
    Acked { last_id: u64, events: u64 },
    /// Answered with an error status: nothing was appended (all-or-nothing).
    Rejected(String),
    /// The connection failed mid-request: it may or may not have committed.
    Ambiguous(String),
}

/// What a publisher did.
#[derive(Debug, Default)]
pub struct PublishStats {
    pub requests: u64,
    pub events: u64,
    /// Failed requests by kind.
    pub errors: BTreeMap<String, u64>,
    /// Requests that failed without an answer (the events may exist).
    pub ambiguous: u64,
    pub first_id: Option<u64>,
    pub last_id: Option<u64>,
    /// Request round trips, µs.
    pub latency: Recorder,
    pub busy: Duration,
}

/// Publishes probe events numbered 0, 1, 2, … on one topic, one request at
/// a time.
pub struct ProbePublisher {
    client: HttpClient,
    channel: Channel,
    next_seq: u64,
    pub stats: PublishStats,
}

#[derive(Debug, thiserror::Error)]
#[error(
    "a publish request failed without an answer ({0}); whether it committed is unknown, so publishing stopped"
)]
pub struct AmbiguousPublish(pub String);

impl ProbePublisher {
    pub fn new(client: HttpClient, channel: Channel) -> ProbePublisher {
        ProbePublisher {
            client,
            channel,
            next_seq: 0,
            stats: PublishStats::default(),
        }
    }

    /// The seq of the last event acknowledged.
    pub fn last_seq(&self) -> Option<u64> {
        self.next_seq.checked_sub(1)
    }

    /// Publishes `count` events in one request. A rejected request is
    /// counted and its seqs are reused by the next one; an ambiguous failure
    /// stops the publisher, since the subscribers' checks could no longer
    /// tell a lost event from one that never existed.
    pub async fn publish(&mut self, count: u32) -> Result<bool, AmbiguousPublish> {
        let body = self.channel.body(self.next_seq, count, Shape::default());
        let began = Instant::now();
        let outcome = self
            .channel
            .post(&mut self.client, self.next_seq, &body)
            .await;
        let took = began.elapsed();
        self.stats.requests += 1;
        self.stats.busy += took;
        match outcome {
            Outcome::Acked { last_id, events } => {
                self.stats.latency.record(took.as_micros() as u64);
                self.stats.events += events;
                self.next_seq += u64::from(count);
                self.stats
                    .first_id
                    .get_or_insert(last_id + 1 - events.max(1));
                self.stats.last_id = Some(last_id);
                Ok(true)
            }
            Outcome::Rejected(kind) => {
                *self.stats.errors.entry(kind).or_default() += 1;
                Ok(false)
            }
            Outcome::Ambiguous(kind) => {
                *self.stats.errors.entry(kind.clone()).or_default() += 1;
                self.stats.ambiguous += 1;
                Err(AmbiguousPublish(kind))
            }
        }
    }

    /// Publishes at `pace` in requests of `batch` events until `duration`
    /// has passed or `stop` turns true.
    pub async fn run(
        &mut self,
        pace: Pace,
        batch: u32,
        duration: Duration,
        mut stop: watch::Receiver<bool>,
    ) -> Result<(), AmbiguousPublish> {
        let deadline = tokio::time::Instant::now() + duration;
        let mut ticks = match pace {
            Pace::PerSecond(rate) => {
                let period = Duration::from_secs_f64(f64::from(batch) / rate);
                let mut ticks = tokio::time::interval(period.max(Duration::from_micros(10)));
                // Falling behind shows up as a lower achieved rate, not as
                // a burst that would distort latency.
                ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
                Some(ticks)
            }
            Pace::Max => None,
        };
        loop {
            if *stop.borrow() || tokio::time::Instant::now() >= deadline {
                return Ok(());
            }
            if let Some(ticks) = &mut ticks {
                tokio::select! {
                    _ = ticks.tick() => {}
                    _ = tokio::time::sleep_until(deadline) => return Ok(()),
                    _ = stop.changed() => return Ok(()),
                }
            }
            if !self.publish(batch).await? {
                // The server refused; do not hammer it.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_bodies_are_json_arrays_of_probes() {
        let shape = Shape {
            pad: "xx",
            key_prefix: Some("k"),
            ..Shape::default()
        };
        let body = batch_body("t.1", 5, 2, shape);
        let events: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(events.as_array().unwrap().len(), 2);
        assert_eq!(events[0]["payload"]["seq"], 5);
        assert_eq!(events[1]["payload"]["seq"], 6);
        assert_eq!(events[1]["payload"]["pad"], "xx");
        assert_eq!(events[1]["key"], "k-6");
        assert_eq!(events[0]["topic"], "t.1");
        assert!(events[0].get("entity").is_none());
    }

    #[test]
    fn with_entities_each_event_changes_one_of_them_in_turn() {
        let shape = Shape {
            entities: 3,
            entity_offset: 1,
            ..Shape::default()
        };
        let events: serde_json::Value =
            serde_json::from_slice(&batch_body("t", 2, 3, shape)).unwrap();
        let ids: Vec<&str> = (0..3)
            .map(|i| events[i]["entity"]["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["0", "1", "2"], "seq 2, 3, 4 from offset 1");
        assert_eq!(events[0]["entity"]["kind"], "loadgen");
        assert_eq!(events[0]["entity"]["op"], "updated");
    }

    #[test]
    fn nchan_messages_read_as_pushlog_events() {
        let body = message_body(4, "");
        let event: crate::probe::ReceivedEvent = serde_json::from_slice(&body).unwrap();
        assert_eq!(event.id, 5);
        assert_eq!(event.probe().map(|p| p.seq), Some(4));
        let padded: serde_json::Value = serde_json::from_slice(&message_body(0, "xy")).unwrap();
        assert_eq!(padded["payload"]["pad"], "xy");
        assert_eq!(padded["id"], 1);
    }

    #[test]
    fn answers_are_classified_per_server() {
        let response = |status: u16, body: &str| Response {
            status,
            body: body.as_bytes().to_vec(),
        };
        let nchan_info = "queued messages: 1\nlast requested: 0 sec. ago\nactive subscribers: 2\n";
        for status in [201, 202] {
            assert!(matches!(
                classify(Server::Nchan, 9, &response(status, nchan_info)),
                Outcome::Acked {
                    last_id: 10,
                    events: 1
                }
            ));
        }
        assert!(matches!(
            classify(Server::Nchan, 9, &response(403, "")),
            Outcome::Rejected(kind) if kind == "status_403"
        ));
        assert!(matches!(
            classify(
                Server::Pushlog,
                0,
                &response(201, r#"{"events":[{"id":7},{"id":8}]}"#)
            ),
            Outcome::Acked {
                last_id: 8,
                events: 2
            }
        ));
        // nchan's answer is not pushlog's acknowledgement.
        assert!(matches!(
            classify(Server::Pushlog, 0, &response(201, nchan_info)),
            Outcome::Rejected(kind) if kind == "status_201_unreadable_body"
        ));
        assert!(matches!(
            classify(Server::Pushlog, 0, &response(400, r#"{"error":"invalid_event"}"#)),
            Outcome::Rejected(kind) if kind == "status_400_invalid_event"
        ));
    }
}
