//! The single writer: group commit, id assignment, idempotency, pruning.
//!
//! Every publish request queues here. The writer takes all requests waiting
//! at that moment, decides each one in memory (ids, idempotency), writes them
//! in one transaction and fsyncs once. Under load a commit carries hundreds of
//! requests, so the fsync cost is shared; when idle, a lone request commits at
//! once, with no timer adding latency.
//!
//! Ids are assigned inside the append transaction, under the log's write lock
//! (SQLite's `BEGIN IMMEDIATE`; on PostgreSQL the row lock on `log_head`,
//! which the writers of every node share), and the lock is held until commit.
//! So transactions commit in id order, no reader can ever see id N+1 before
//! N, and the idempotency check sees every key committed before it. On one
//! node the writer is also the only one, so the lock is never contended.

use crate::metrics::Metrics;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{Notify, mpsc, oneshot};

use super::backend::{Locked, LogBackend, PruneScope, Pruned, stored};
use super::position::LogPosition;
use super::{AppendError, Retention, StoreError, now_millis};
use crate::domain::event::{Event, EventId, NewEvent};

/// Most publish requests waiting to be decided. Publishers beyond it wait
/// for room (back-pressure) rather than growing memory.
const COMMAND_QUEUE: usize = 4096;
/// Most events in one transaction: large enough to amortise the fsync, small
/// enough that one commit never stalls the log for long.
const MAX_EVENTS_PER_COMMIT: usize = 20_000;

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
        reply: oneshot::Sender<Result<Pruned, StoreError>>,
    },
    /// Move the outbox's committed rows into the log (shared logs only).
    Relay,
    /// Answer whether the log can write now (see [`WriteHealth`]).
    Probe { reply: oneshot::Sender<bool> },
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
            timestamp: crate::domain::event::format_timestamp(&event.timestamp),
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

/// Whether the log's last write failed: set by the writer when a commit
/// fails, cleared by the next one that succeeds. Readiness reads it, since
/// the read that answers `readyz` otherwise goes on succeeding on a full
/// disk or read-only files while every publish is refused. While it is set,
/// a readiness check has the writer probe with a write of its own (see
/// `LogBackend::probe`), so readiness turns green again by itself once the
/// disk accepts writes, without waiting for a publish to try.
#[derive(Debug, Default)]
pub(crate) struct WriteHealth {
    failing: AtomicBool,
}

impl WriteHealth {
    pub(crate) fn is_failing(&self) -> bool {
        self.failing.load(Ordering::Relaxed)
    }

    /// One relaxed store per commit: the flag orders nothing else, and a
    /// reader that sees it a moment late only probes once more.
    fn record(&self, failed: bool) {
        self.failing.store(failed, Ordering::Relaxed);
    }
}

/// Starts the writer on `backend`. `poke` is notified after each commit a
/// backend does not announce itself, for the follower that reads it back.
pub(super) fn spawn<B: LogBackend>(
    backend: B,
    position: Arc<LogPosition>,
    poke: Arc<Notify>,
    announce: mpsc::Sender<Arc<[Event]>>,
    metrics: Arc<Metrics>,
    health: Arc<WriteHealth>,
) -> (mpsc::Sender<Command>, tokio::task::JoinHandle<()>) {
    let (commands, inbox) = mpsc::channel(COMMAND_QUEUE);
    let task = tokio::spawn(async move {
        let writer = Writer {
            backend,
            position,
            announce,
            poke,
            metrics,
            health,
        };
        writer.run(inbox).await;
    });
    (commands, task)
}

struct Writer<B> {
    backend: B,
    position: Arc<LogPosition>,
    announce: mpsc::Sender<Arc<[Event]>>,
    poke: Arc<Notify>,
    metrics: Arc<Metrics>,
    health: Arc<WriteHealth>,
}

/// One request's decision: new events to insert, and the answer it gets once
/// they commit.
struct Decided {
    reply: AppendReply,
    answer: Vec<Event>,
    created: bool,
}

impl<B: LogBackend> Writer<B> {
    async fn run(mut self, mut inbox: mpsc::Receiver<Command>) {
        let mut pending = Vec::new();
        let mut probes = Vec::new();
        let mut stopping = false;
        // Ends on `Stop` or when every `EventLog` handle is gone. Commands
        // queue in order, so every request sent before `Stop` is answered.
        while let Some(first) = inbox.recv().await {
            let mut appends = Vec::new();
            let mut relay = false;
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
                    Command::Relay => relay = true,
                    Command::Probe { reply } => probes.push(reply),
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
            if !appends.is_empty() || relay {
                self.commit_group(appends, relay).await;
            }
            for (retention, batch, reply) in pending.drain(..) {
                let pruned = self.prune(retention, batch).await;
                if pruned.is_err() {
                    self.health.record(true);
                }
                let _ = reply.send(pruned);
            }
            if !probes.is_empty() {
                // However many readiness checks queued, one probe answers
                // them all.
                let writable = self.probe().await;
                for reply in probes.drain(..) {
                    let _ = reply.send(writable);
                }
            }
            if stopping {
                break;
            }
        }
        tracing::debug!("log writer stopped");
    }

    /// Commits every request of the group that is valid, and the outbox's
    /// rows when `relay` is set, in one transaction.
    async fn commit_group(&mut self, appends: Vec<PendingAppend>, relay: bool) {
        let keyed = appends
            .iter()
            .any(|(events, _)| events.iter().any(|e| e.key.is_some()));
        if !keyed && !relay {
            return self.commit_new(appends).await;
        }
        let keys: Vec<String> = appends
            .iter()
            .flat_map(|(events, _)| events.iter().filter_map(|e| e.key.clone()))
            .collect();
        let mut undecided = Some(appends);
        let mut decided = Vec::new();
        let mut decide = |locked: Locked| {
            decide_group(undecided.take().unwrap_or_default(), locked, &mut decided)
        };
        let committed = self.backend.append(keys, relay, &mut decide).await;
        let new_events = match committed {
            Ok(events) => events,
            Err(error) => {
                let unanswered = undecided.into_iter().flatten().map(|(_, reply)| reply);
                let decided = decided.into_iter().map(|d| d.reply);
                return self.fail(error, unanswered.chain(decided));
            }
        };
        self.committed(new_events, decided).await;
    }

    /// A group without idempotency keys: every event is new, so the backend
    /// numbers them as it takes the lock (see `LogBackend::append_new`).
    async fn commit_new(&mut self, appends: Vec<PendingAppend>) {
        let (requests, replies): (Vec<Vec<NewEvent>>, Vec<AppendReply>) =
            appends.into_iter().unzip();
        let sizes: Vec<usize> = requests.iter().map(Vec::len).collect();
        let new_events = match self
            .backend
            .append_new(requests.into_iter().flatten().collect())
            .await
        {
            Ok(events) => events,
            Err(error) => return self.fail(error, replies.into_iter()),
        };
        let mut rest = new_events.as_slice();
        let decided = sizes
            .into_iter()
            .zip(replies)
            .map(|(size, reply)| {
                let (answer, tail) = rest.split_at(size.min(rest.len()));
                rest = tail;
                Decided {
                    reply,
                    answer: answer.to_vec(),
                    created: size > 0,
                }
            })
            .collect();
        self.committed(new_events, decided).await;
    }

    /// Announces what committed (or has the follower read it back) and
    /// answers each request.
    async fn committed(&mut self, new_events: Vec<Event>, decided: Vec<Decided>) {
        if let Some(last) = new_events.last() {
            self.health.record(false);
            self.metrics
                .commit_batch_events
                .observe(new_events.len() as f64);
            if B::ANNOUNCES_COMMITS {
                self.position.advance_head(last.id.get());
                // The hub may be gone during shutdown; the events are
                // committed regardless, and readers will find them in the log.
                let _ = self.announce.send(new_events.into()).await;
            } else {
                self.poke.notify_one();
            }
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

    /// Whether the log can write: yes at once while no write has failed
    /// since the last success (a commit in this very group may just have
    /// cleared the flag); otherwise what a probe write says.
    async fn probe(&mut self) -> bool {
        if !self.health.is_failing() {
            return true;
        }
        match self.backend.probe().await {
            Ok(()) => {
                self.health.record(false);
                tracing::info!("the log accepts writes again");
                true
            }
            Err(error) => {
                tracing::warn!(error = %error, cause = ?error, "the log still cannot write");
                false
            }
        }
    }

    /// Answers every request of a group that did not commit: nothing of it
    /// was committed (the group is one transaction, and the ids and keys
    /// decided for it live only in that transaction), so every publisher
    /// may safely retry, and a retry under the same key is appended anew.
    fn fail(&self, error: StoreError, replies: impl Iterator<Item = AppendReply>) {
        self.health.record(true);
        tracing::error!(error = %error, cause = ?error, "group commit failed");
        for reply in replies {
            let _ = reply.send(Err(AppendError::Store(StoreError::CommitFailed)));
        }
    }

    async fn prune(&mut self, retention: Retention, batch: u32) -> Result<Pruned, StoreError> {
        let before =
            |age: Duration| now_millis() - i64::try_from(age.as_millis()).unwrap_or(i64::MAX);
        let scope = PruneScope {
            max_events: retention.max_events,
            keep_after_ms: retention.max_age.map(before),
            entity_keep_after_ms: retention.entity_max_age.map(before),
            batch,
        };
        self.backend.prune(scope, &self.position).await
    }
}

/// Decides a group under the log's write lock: staged outbox events first,
/// then each request, answered with a rejection at once or joining
/// `decided` with its events. Returns the new events, ids assigned
/// from the locked head.
fn decide_group(
    appends: Vec<PendingAppend>,
    locked: Locked,
    decided: &mut Vec<Decided>,
) -> Vec<Event> {
    let Locked {
        head,
        last_timestamp,
        known,
        staged,
    } = locked;
    let mut known: HashMap<String, Event> = known
        .into_iter()
        .filter_map(|event| Some((event.key.clone()?, event)))
        .collect();
    let mut next_id = head + 1;
    let timestamp = now_millis().max(last_timestamp);
    let mut new_events: Vec<Event> = Vec::new();
    let mut take =
        |events: Vec<NewEvent>, known: &mut HashMap<String, Event>, new_events: &mut Vec<Event>| {
            let (answer, fresh) = decide(events, known, &mut next_id, timestamp)?;
            for event in &fresh {
                if let Some(key) = &event.key {
                    // A later request in this group with the same key is a
                    // retry of this one.
                    known.insert(key.clone(), event.clone());
                }
            }
            let created = !fresh.is_empty();
            new_events.extend(fresh);
            Ok::<_, AppendRejected>((answer, created))
        };
    for event in staged {
        // Staged events come first: their transactions committed before
        // this group was decided, and nobody waits for their answer. A key
        // already in the log is a retry; a conflicting one was refused by
        // `pushlog.publish`, which checks the log and the outbox.
        if let Err(rejected) = take(vec![event], &mut known, &mut new_events) {
            tracing::warn!(%rejected, "an outbox event was dropped");
        }
    }
    for (events, reply) in appends {
        match take(events, &mut known, &mut new_events) {
            Ok((answer, created)) => decided.push(Decided {
                reply,
                answer,
                created,
            }),
            Err(rejected) => {
                let _ = reply.send(Err(AppendError::Rejected(rejected)));
            }
        }
    }
    new_events
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
        let event = stored(event, *next_id, timestamp);
        *next_id += 1;
        answer.push(event.clone());
        fresh.push(event);
    }
    Ok((answer, fresh))
}
