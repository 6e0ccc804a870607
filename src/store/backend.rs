//! What the writer asks of a database. The writer's logic (group commit,
//! idempotency, id assignment, retention arithmetic) is written once in
//! `writer`; each backend supplies the transactions that carry it out.

use std::future::Future;

use super::position::LogPosition;
use super::{StoreError, millis_to_datetime, now_millis};
use crate::domain::event::{Event, EventId, NewEvent};

/// The state of the log as seen under its write lock, handed to the writer's
/// decision while the transaction is open.
pub(super) struct Locked {
    /// The last id assigned: new events continue from here.
    pub head: i64,
    /// `created_at` of the newest event, so timestamps never go backwards.
    pub last_timestamp: i64,
    /// Stored events carrying any of the keys asked for.
    pub known: Vec<Event>,
    /// Events an application staged in the outbox, in the order they were
    /// staged (PostgreSQL only), to be appended with the others.
    pub staged: Vec<NewEvent>,
}

/// The writer's decision: the events to insert, ids assigned, in id order.
pub(super) type Decide<'a> = dyn FnMut(Locked) -> Vec<Event> + Send + 'a;

/// Which events retention no longer keeps, as the writer computed it.
#[derive(Debug, Clone, Copy)]
pub(super) struct PruneScope {
    /// How many of the newest events the count bound keeps.
    pub max_events: Option<u64>,
    /// Events created before this (Unix ms) are beyond the age bound.
    pub keep_after_ms: Option<i64>,
    /// Entity index rows created before this (Unix ms) have aged out.
    pub entity_keep_after_ms: Option<i64>,
    /// Most rows deleted in one transaction.
    pub batch: u32,
}

impl PruneScope {
    /// Events with an id at or below this are beyond the count bound, for a
    /// log whose newest id is `head` (read under the write lock: on a shared
    /// log this node's own idea of the head may lag).
    pub fn keep_after_id(&self, head: i64) -> i64 {
        self.max_events
            .map(|max| head.saturating_sub(i64::try_from(max).unwrap_or(i64::MAX)))
            .unwrap_or(0)
    }
}

/// What one prune step did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Events of the log the entity index took in.
    pub indexed: u64,
    /// The index is still behind the log by more than a batch: it took in
    /// a whole batch and deleted nothing.
    pub index_behind: bool,
    /// Rows deleted: events, and entity index rows that aged out.
    pub deleted: u64,
}

impl Pruned {
    /// Whether another step has work: a backlog to index, or more to
    /// delete. An index that merely took in what was appended since the
    /// last step is not a reason for another step (under steady publishing
    /// there always is some, and each step is a commit).
    pub fn more_to_do(&self) -> bool {
        self.index_behind || self.deleted > 0
    }
}

/// The SQL side of the single writer.
pub(super) trait LogBackend: Send + 'static {
    /// Whether commits reach the hub from the writer itself (this node owns
    /// the log) rather than from a follower reading the shared log back.
    const ANNOUNCES_COMMITS: bool;

    /// One append transaction: takes the log's write lock, looks up `keys`,
    /// takes the outbox's committed rows when `relay` is set, calls `decide`
    /// exactly once (unless the transaction fails before it), inserts the
    /// events it returns and commits. Returns those events once committed.
    fn append(
        &mut self,
        keys: Vec<String>,
        relay: bool,
        decide: &mut Decide<'_>,
    ) -> impl Future<Output = Result<Vec<Event>, StoreError>> + Send;

    /// Appends events that carry no idempotency key, so that every one of
    /// them is new: ids follow the head, in order, with one timestamp. A
    /// backend whose lock other nodes wait for overrides this to take the
    /// lock, assign the ids and commit in one statement.
    fn append_new(
        &mut self,
        events: Vec<NewEvent>,
    ) -> impl Future<Output = Result<Vec<Event>, StoreError>> + Send {
        async move {
            let mut events = Some(events);
            let mut number = |locked: Locked| {
                let timestamp = now_millis().max(locked.last_timestamp);
                numbered(events.take().unwrap_or_default(), locked.head, timestamp)
            };
            self.append(Vec::new(), false, &mut number).await
        }
    }

    /// One durable write that changes nothing of the log: a transaction
    /// under the write lock that dirties a page and commits (with the
    /// fsync). Succeeds only when the database accepts writes, which a
    /// read (`SELECT 1`) cannot tell: on a full disk or read-only files
    /// reads go on working. Asked for only after a write failed, to learn
    /// when the log can write again.
    fn probe(&mut self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Brings the entity index up to date with the log (so that nothing is
    /// pruned before it is indexed), then deletes the oldest batch of events
    /// within `scope`, under the write lock, raising `position`'s pruned
    /// mark before the deletes commit; and the oldest batch of entity index
    /// rows that aged out, raising the index's own mark in the same
    /// transaction.
    fn prune(
        &mut self,
        scope: PruneScope,
        position: &LogPosition,
    ) -> impl Future<Output = Result<Pruned, StoreError>> + Send;
}

/// `events` as stored after `head`: ids `head + 1`, `head + 2`, …, all at
/// `timestamp` (Unix ms).
pub(super) fn numbered(events: Vec<NewEvent>, head: i64, timestamp: i64) -> Vec<Event> {
    (head + 1..)
        .zip(events)
        .map(|(id, event)| stored(event, id, timestamp))
        .collect()
}

/// One event as the log stores it.
pub(super) fn stored(event: NewEvent, id: i64, timestamp: i64) -> Event {
    Event {
        id: EventId::new(id).unwrap_or(EventId::ZERO),
        topic: event.topic,
        kind: event.kind,
        entity: event.entity,
        payload: event.payload,
        audience: event.audience,
        timestamp: millis_to_datetime(timestamp),
        key: event.key,
    }
}
