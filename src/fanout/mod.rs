//! In-process fan-out of committed events to live subscribers.
//!
//! The hub listens to the log's stream of committed events and hands each
//! batch to every worker's [`Shard`], which offers each event to every
//! subscriber whose [`Filter`](crate::domain::filter::Filter) admits it.
//! Each subscriber has its own bounded queue; nothing waits for one. A subscriber whose queue is full is
//! dropped and marked lagged, so one slow client can neither slow the others
//! down nor make the server's memory grow: it must resume from its cursor,
//! which the log still serves.

mod index;
mod queue;
mod recent;
mod shard;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::domain::event::EventId;
use crate::domain::wire::SharedEvent;
use crate::metrics::Metrics;
use crate::store::CommittedEvents;
use recent::RecentEvents;
use shard::{Batch, ShardLink};

pub use shard::{SHARD_BACKLOG, Shard, Subscription};

pub(crate) type SubscriberId = usize;

/// The byte bound of the recent events kept for replays (payloads may be up
/// to 64 KiB each, so a count alone would not bound memory).
const RECENT_BYTES: usize = 64 * 1024 * 1024;

struct Inner {
    shards: Mutex<Vec<ShardLink>>,
    /// The newest event id handed to the shards.
    dispatched_through: AtomicI64,
    /// Appended before each batch goes to the shards, by the hub's one task,
    /// so its order is dispatch order.
    recent: Mutex<RecentEvents>,
    queue_capacity: usize,
    metrics: Arc<Metrics>,
}

/// Handle to the hub, cheap to clone.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

/// What a subscriber's queue yields.
#[derive(Debug)]
pub enum Received {
    Event(Arc<SharedEvent>),
    /// The queue overflowed; events after the last one received were not
    /// delivered here.
    Lagged,
    /// The hub stopped (shutdown).
    Closed,
}

/// A lock whose holder cannot leave the guarded data half updated in a way
/// that matters more than losing the whole hub.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Hub {
    /// `queue_capacity` bounds each subscriber's backlog, in events;
    /// `recent_events` is how many recent events are kept in memory for
    /// replays (0: replays always read the log).
    pub fn new(queue_capacity: usize, recent_events: usize, metrics: Arc<Metrics>) -> Hub {
        Hub {
            inner: Arc::new(Inner {
                shards: Mutex::new(Vec::new()),
                dispatched_through: AtomicI64::new(0),
                recent: Mutex::new(RecentEvents::new(recent_events, RECENT_BYTES)),
                queue_capacity: queue_capacity.max(1),
                metrics,
            }),
        }
    }

    fn attach(&self, link: ShardLink) {
        lock(&self.inner.shards).push(link);
    }

    /// Lets go of every shard, whose tasks then end their subscriptions.
    fn detach_all(&self) {
        lock(&self.inner.shards).clear();
    }

    /// Consumes the log's committed events until the log closes.
    pub async fn run(self, mut committed: CommittedEvents) {
        while let Some(batch) = committed.recv().await {
            let batch: Vec<Arc<SharedEvent>> = batch
                .iter()
                .map(|event| Arc::new(SharedEvent::new(event.clone())))
                .collect();
            self.dispatch_batch(batch);
        }
        // The log is gone: end every subscription so sessions can finish.
        self.detach_all();
        tracing::debug!("hub stopped");
    }

    /// Visits the committed events with `after < id <= until` in order,
    /// while `visit` returns true, when all of them are still in memory;
    /// returns false (having visited nothing) when they are not.
    pub fn visit_recent(
        &self,
        after: EventId,
        until: EventId,
        visit: impl FnMut(&Arc<SharedEvent>) -> bool,
    ) -> bool {
        lock(&self.inner.recent).visit(after, until, visit)
    }

    /// The newest event id handed to the shards: every event up to it is
    /// committed and at or below the log's head.
    fn dispatched_through(&self) -> i64 {
        self.inner.dispatched_through.load(Ordering::SeqCst)
    }

    /// Hands events, in id order, to every shard.
    pub fn dispatch_batch(&self, events: Vec<Arc<SharedEvent>>) {
        let before = self.dispatched_through();
        if let Some(first) = events.first()
            && before > 0
            && first.id().get() != before + 1
        {
            // Ids are dense, so events in between were committed and never
            // reached this hub (a node whose follower came back after
            // retention passed it): every live subscriber may have wanted
            // them, and is told it lagged rather than skip them silently.
            tracing::warn!(
                after = before,
                next = first.id().get(),
                "events are missing between dispatches; every live subscriber resumes from its cursor"
            );
            lock(&self.inner.shards).retain(ShardLink::lag_all);
        }
        {
            let mut recent = lock(&self.inner.recent);
            for event in &events {
                recent.push(event.clone());
            }
        }
        if let Some(last) = events.last() {
            // Before the shards have the batch: a subscriber that reads this
            // skips what it covers (see `Shard::subscribe`).
            self.inner
                .dispatched_through
                .store(last.id().get(), Ordering::SeqCst);
        }
        let batch: Batch = events.into();
        // A shard whose worker is gone is let go of here.
        lock(&self.inner.shards).retain(|shard| shard.send(&batch));
    }
}

/// What the hub's tests build events and read queues with.
#[cfg(test)]
mod fixtures {
    use super::*;
    use crate::domain::event::{Event, Topic};

    pub fn event(id: i64, topic: &str) -> Arc<SharedEvent> {
        Arc::new(SharedEvent::new(Event {
            id: EventId::new(id).unwrap(),
            topic: Topic::parse(topic).unwrap(),
            kind: "t".into(),
            entity: None,
            payload: None,
            audience: None,
            timestamp: chrono::Utc::now(),
            key: None,
        }))
    }

    /// The id of a received event, if an event was received.
    pub fn received_id(received: Option<Received>) -> Option<i64> {
        match received {
            Some(Received::Event(event)) => Some(event.id().get()),
            _ => None,
        }
    }
}
