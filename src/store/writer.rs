//! The single writer: group commit, id assignment, idempotency, pruning.
//!
//! Every publish request queues here. The writer takes all requests waiting
//! at that moment, decides each one in memory (ids, idempotency), writes them
//! in one transaction and fsyncs once. Under load a commit carries hundreds of
//! requests, so the fsync cost is shared; when idle, a lone request commits at
//! once, with no timer adding latency.
//!
//! Being the only writer is what makes ids safe cursors: ids are assigned
//! here, in the order transactions commit, so no reader can ever see id N+1
//! before N. It also makes idempotency checks race-free without locks.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;
use sqlx::Connection;
use sqlx::sqlite::SqliteConnection;
use tokio::sync::{mpsc, oneshot};

use super::position::LogPosition;
use super::{AppendError, Retention, StoreError, millis_to_datetime, now_millis, sqlite};
use crate::event::{Event, EventId, NewEvent};

/// Most publish requests waiting to be decided. Publishers beyond it wait
/// for room (back-pressure) rather than growing memory.
const COMMAND_QUEUE: usize = 4096;
/// Most events in one transaction: large enough to amortise the fsync, small
/// enough that one commit never stalls the log for long.
const MAX_EVENTS_PER_COMMIT: usize = 20_000;
/// Committed batches the hub may fall behind by before the writer waits.
const COMMITTED_QUEUE: usize = 1024;

type AppendReply = oneshot::Sender<Result<Appended, AppendError>>;
type PendingAppend = (Vec<NewEvent>, AppendReply);

pub(super) enum Command {
    Append {
        events: Vec<NewEvent>,
        reply: AppendReply,
    },
    Prune {
        retention: Retention,
        batch: u32,
        reply: oneshot::Sender<Result<u64, StoreError>>,
    },
    /// Finish what was queued before this, then stop.
    Stop,
}

/// The log's announcements of what it has committed, in id order.
pub type CommittedEvents = mpsc::Receiver<Arc<[Event]>>;

/// What a publisher gets back for each event.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PublishedEvent {
    pub id: EventId,
    pub topic: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub timestamp: String,
}

impl From<&Event> for PublishedEvent {
    fn from(event: &Event) -> Self {
        PublishedEvent {
            id: event.id,
            topic: event.topic.as_str().to_owned(),
            kind: event.kind.clone(),
            timestamp: crate::event::format_timestamp(&event.timestamp),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    pub events: Vec<PublishedEvent>,
    /// False when every event was already in the log under its key (a retry).
    pub created: bool,
}

/// Why a publish was refused as a whole. Nothing of it is appended.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum AppendRejected {
    #[error("events[{index}]: idempotency key {key:?} appears twice in this request")]
    DuplicateKey { index: usize, key: String },
    #[error(
        "events[{index}]: idempotency key {key:?} was already used for a different event (id {existing})"
    )]
    KeyConflict {
        index: usize,
        key: String,
        existing: EventId,
    },
}

pub(super) fn spawn(
    conn: SqliteConnection,
    position: Arc<LogPosition>,
) -> (
    mpsc::Sender<Command>,
    CommittedEvents,
    tokio::task::JoinHandle<()>,
) {
    let (commands, inbox) = mpsc::channel(COMMAND_QUEUE);
    let (announce, committed) = mpsc::channel(COMMITTED_QUEUE);
    let task = tokio::spawn(async move {
        let writer = Writer {
            conn,
            position,
            announce,
            last_timestamp: 0,
        };
        writer.run(inbox).await;
    });
    (commands, committed, task)
}

struct Writer {
    conn: SqliteConnection,
    position: Arc<LogPosition>,
    announce: mpsc::Sender<Arc<[Event]>>,
    last_timestamp: i64,
}

/// One request's decision: new events to insert, and the answer it gets once
/// they commit.
struct Decided {
    reply: AppendReply,
    answer: Vec<Event>,
    created: bool,
}

impl Writer {
    async fn run(mut self, mut inbox: mpsc::Receiver<Command>) {
        match sqlite::last_timestamp(&mut self.conn).await {
            Ok(ts) => self.last_timestamp = ts,
            Err(error) => tracing::error!(error = %error, "could not read the last timestamp"),
        }
        let mut pending = Vec::new();
        let mut stopping = false;
        // Ends on `Stop` or when every `EventLog` handle is gone. Commands
        // queue in order, so every request sent before `Stop` is answered.
        while let Some(first) = inbox.recv().await {
            let mut appends = Vec::new();
            let mut events = 0;
            let mut next = Some(first);
            while let Some(command) = next.take() {
                match command {
                    Command::Append {
                        events: batch,
                        reply,
                    } => {
                        events += batch.len();
                        appends.push((batch, reply));
                    }
                    Command::Prune {
                        retention,
                        batch,
                        reply,
                    } => pending.push((retention, batch, reply)),
                    Command::Stop => stopping = true,
                }
                if stopping {
                    break;
                }
                if events < MAX_EVENTS_PER_COMMIT {
                    next = inbox.try_recv().ok();
                }
            }
            if !appends.is_empty() {
                self.commit_group(appends).await;
            }
            for (retention, batch, reply) in pending.drain(..) {
                let _ = reply.send(self.prune(retention, batch).await);
            }
            if stopping {
                break;
            }
        }
        tracing::debug!("log writer stopped");
    }

    async fn commit_group(&mut self, appends: Vec<PendingAppend>) {
        let keys: Vec<&str> = appends
            .iter()
            .flat_map(|(events, _)| events.iter().filter_map(|e| e.key.as_deref()))
            .collect();
        let mut known: HashMap<String, Event> = HashMap::new();
        if !keys.is_empty() {
            match sqlite::find_by_keys(&mut self.conn, &keys).await {
                Ok(found) => {
                    for event in found {
                        if let Some(key) = event.key.clone() {
                            known.insert(key, event);
                        }
                    }
                }
                Err(error) => return fail_all(appends, error),
            }
        }

        let head_before = self.position.bounds().head.get();
        let mut next_id = head_before + 1;
        let timestamp = now_millis().max(self.last_timestamp);
        let mut decided = Vec::with_capacity(appends.len());
        let mut new_events: Vec<Event> = Vec::new();
        for (events, reply) in appends {
            match decide(events, &known, &mut next_id, timestamp) {
                Ok((answer, fresh)) => {
                    for event in &fresh {
                        if let Some(key) = &event.key {
                            // A later request in this group with the same
                            // key is a retry of this one.
                            known.insert(key.clone(), event.clone());
                        }
                    }
                    decided.push(Decided {
                        reply,
                        created: !fresh.is_empty(),
                        answer,
                    });
                    new_events.extend(fresh);
                }
                Err(rejected) => {
                    let _ = reply.send(Err(AppendError::Rejected(rejected)));
                }
            }
        }

        if !new_events.is_empty() {
            if let Err(error) = self.write(&new_events).await {
                tracing::error!(error = %error, events = new_events.len(), "group commit failed");
                return fail_all_decided(decided);
            }
            self.last_timestamp = timestamp;
            self.position.advance_head(next_id - 1);
            let committed: Arc<[Event]> = new_events.into();
            // The hub may be gone during shutdown; the events are committed
            // regardless, and readers will find them in the log.
            let _ = self.announce.send(committed).await;
        }
        for Decided {
            reply,
            answer,
            created,
        } in decided
        {
            let events = answer.iter().map(PublishedEvent::from).collect();
            // A publisher that hung up still had its events committed.
            let _ = reply.send(Ok(Appended { events, created }));
        }
    }

    async fn write(&mut self, events: &[Event]) -> Result<(), StoreError> {
        let rows: Vec<&Event> = events.iter().collect();
        let mut tx = self.conn.begin_with("BEGIN IMMEDIATE").await?;
        sqlite::insert(&mut tx, &rows).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn prune(&mut self, retention: Retention, batch: u32) -> Result<u64, StoreError> {
        let bounds = self.position.bounds();
        let keep_after_id = retention
            .max_events
            .map(|max| {
                bounds
                    .head
                    .get()
                    .saturating_sub(i64::try_from(max).unwrap_or(i64::MAX))
            })
            .unwrap_or(0);
        let keep_after_ms = retention
            .max_age
            .map(|age| now_millis() - i64::try_from(age.as_millis()).unwrap_or(i64::MAX));
        let Some(plan) = sqlite::plan_prune(
            &mut self.conn,
            bounds.pruned_through.get(),
            keep_after_id,
            keep_after_ms,
            batch,
        )
        .await?
        else {
            return Ok(0);
        };
        // Raised before the delete commits; see `LogPosition::raise_pruned`.
        self.position.raise_pruned(plan.through, plan.through_at);
        let mut tx = self.conn.begin_with("BEGIN IMMEDIATE").await?;
        let deleted = sqlite::delete_through(&mut tx, &plan).await?;
        tx.commit().await?;
        tracing::debug!(through = plan.through, deleted, "retention pruned events");
        Ok(deleted)
    }
}

/// Decides one request against the keys already known: every event either
/// reuses the stored one under its key, or gets the next id.
fn decide(
    events: Vec<NewEvent>,
    known: &HashMap<String, Event>,
    next_id: &mut i64,
    timestamp: i64,
) -> Result<(Vec<Event>, Vec<Event>), AppendRejected> {
    let mut seen_keys: HashMap<&str, usize> = HashMap::new();
    for (index, event) in events.iter().enumerate() {
        if let Some(key) = event.key.as_deref() {
            if seen_keys.insert(key, index).is_some() {
                return Err(AppendRejected::DuplicateKey {
                    index,
                    key: key.to_owned(),
                });
            }
            if let Some(existing) = known.get(key)
                && !existing.same_content_as(event)
            {
                return Err(AppendRejected::KeyConflict {
                    index,
                    key: key.to_owned(),
                    existing: existing.id,
                });
            }
        }
    }
    let mut answer = Vec::with_capacity(events.len());
    let mut fresh = Vec::new();
    for event in events {
        if let Some(existing) = event.key.as_deref().and_then(|k| known.get(k)) {
            answer.push(existing.clone());
            continue;
        }
        let stored = Event {
            id: EventId::new(*next_id).unwrap_or(EventId::ZERO),
            topic: event.topic,
            kind: event.kind,
            entity: event.entity,
            payload: event.payload,
            audience: event.audience,
            timestamp: millis_to_datetime(timestamp),
            key: event.key,
        };
        *next_id += 1;
        answer.push(stored.clone());
        fresh.push(stored);
    }
    Ok((answer, fresh))
}

/// Answers every request of a group whose transaction could not be made:
/// nothing of it was committed, so every publisher may safely retry.
fn fail_all(appends: Vec<PendingAppend>, error: StoreError) {
    tracing::error!(error = %error, "could not look up idempotency keys");
    for (_, reply) in appends {
        let _ = reply.send(Err(AppendError::Store(StoreError::CommitFailed)));
    }
}

fn fail_all_decided(decided: Vec<Decided>) {
    for Decided { reply, .. } in decided {
        let _ = reply.send(Err(AppendError::Store(StoreError::CommitFailed)));
    }
}
