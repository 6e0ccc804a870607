//! In-process fan-out of committed events to live subscribers.
//!
//! The hub listens to the log's stream of committed events and hands each one
//! to every subscriber whose [`Filter`] admits it. Each subscriber has its own
//! bounded queue; the hub never waits for one. A subscriber whose queue is
//! full is dropped and marked lagged, so one slow client can neither slow the
//! others down nor make the server's memory grow: it must resume from its
//! cursor, which the log still serves.

mod index;
mod recent;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

use crate::auth::Principal;
use crate::event::{Event, EventId, TopicPattern};
use crate::metrics::Metrics;
use crate::store::CommittedEvents;
use crate::wire::SharedEvent;
use index::TopicIndex;
use recent::RecentEvents;

/// Which events a subscriber receives: the topics it asked for, narrowed by
/// what its token may read (topic claim and audience).
#[derive(Debug, Clone)]
pub struct Filter {
    pub patterns: Vec<TopicPattern>,
    pub principal: Principal,
}

impl Filter {
    pub fn admits(&self, event: &Event) -> bool {
        self.patterns.iter().any(|p| p.matches(&event.topic)) && self.principal.may_read(event)
    }
}

pub(crate) type SubscriberId = u64;

/// The byte bound of the recent events kept for replays (payloads may be up
/// to 64 KiB each, so a count alone would not bound memory).
const RECENT_BYTES: usize = 64 * 1024 * 1024;

struct Subscriber {
    filter: Arc<Filter>,
    queue: mpsc::Sender<Arc<SharedEvent>>,
    lagged: Arc<AtomicBool>,
    /// The last event handed over, so a subscriber reached through two of
    /// its patterns gets the event once.
    last_delivered: i64,
}

#[derive(Default)]
struct Registry {
    next_id: SubscriberId,
    subscribers: HashMap<SubscriberId, Subscriber>,
    index: TopicIndex,
}

struct Inner {
    // A std Mutex, not a Tokio one: it is never held across an `.await`, and
    // registering a subscriber is ordered with dispatch by taking it (see
    // `replay`, which relies on that order).
    registry: Mutex<Registry>,
    /// Appended under the registry lock, so its order is dispatch order.
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

/// A live registration; dropping it unsubscribes.
pub struct Subscription {
    id: SubscriberId,
    queue: mpsc::Receiver<Arc<SharedEvent>>,
    lagged: Arc<AtomicBool>,
    hub: Hub,
}

impl Subscription {
    pub async fn recv(&mut self) -> Received {
        match self.queue.recv().await {
            Some(event) => Received::Event(event),
            None => self.end(),
        }
    }

    /// Like `recv`, but `None` when the queue is momentarily empty.
    pub fn try_recv(&mut self) -> Option<Received> {
        match self.queue.try_recv() {
            Ok(event) => Some(Received::Event(event)),
            Err(mpsc::error::TryRecvError::Empty) => None,
            Err(mpsc::error::TryRecvError::Disconnected) => Some(self.end()),
        }
    }

    pub fn is_lagged(&self) -> bool {
        self.lagged.load(Ordering::Acquire)
    }

    fn end(&self) -> Received {
        if self.is_lagged() {
            Received::Lagged
        } else {
            Received::Closed
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.remove(self.id);
    }
}

impl Hub {
    /// `queue_capacity` bounds each subscriber's backlog, in events;
    /// `recent_events` is how many recent events are kept in memory for
    /// replays (0: replays always read the log).
    pub fn new(queue_capacity: usize, recent_events: usize, metrics: Arc<Metrics>) -> Hub {
        Hub {
            inner: Arc::new(Inner {
                registry: Mutex::new(Registry::default()),
                recent: Mutex::new(RecentEvents::new(recent_events, RECENT_BYTES)),
                queue_capacity: queue_capacity.max(1),
                metrics,
            }),
        }
    }

    fn registry(&self) -> MutexGuard<'_, Registry> {
        // A panic while holding the lock cannot leave the registry half
        // updated in a way that matters more than losing the whole hub.
        self.inner
            .registry
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Registers a subscriber. Every event dispatched after this returns is
    /// offered to it.
    pub fn subscribe(&self, filter: Arc<Filter>) -> Subscription {
        let (queue_tx, queue_rx) = mpsc::channel(self.inner.queue_capacity);
        let lagged = Arc::new(AtomicBool::new(false));
        let mut registry = self.registry();
        let id = registry.next_id;
        registry.next_id += 1;
        registry.index.insert(id, &filter.patterns);
        registry.subscribers.insert(
            id,
            Subscriber {
                filter,
                queue: queue_tx,
                lagged: lagged.clone(),
                last_delivered: 0,
            },
        );
        self.inner
            .metrics
            .subscribers
            .set(registry.subscribers.len() as i64);
        Subscription {
            id,
            queue: queue_rx,
            lagged,
            hub: self.clone(),
        }
    }

    fn remove(&self, id: SubscriberId) {
        let mut registry = self.registry();
        if let Some(subscriber) = registry.subscribers.remove(&id) {
            registry.index.remove(id, &subscriber.filter.patterns);
        }
        self.inner
            .metrics
            .subscribers
            .set(registry.subscribers.len() as i64);
    }

    /// Consumes the log's committed events until the log closes.
    pub async fn run(self, mut committed: CommittedEvents) {
        while let Some(batch) = committed.recv().await {
            for event in batch.iter() {
                self.dispatch(Arc::new(SharedEvent::new(event.clone())));
            }
        }
        // The log is gone: end every subscription so sessions can finish.
        let mut registry = self.registry();
        registry.subscribers.clear();
        registry.index = TopicIndex::default();
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
        self.inner
            .recent
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .visit(after, until, visit)
    }

    /// Offers one event to every subscriber that admits it.
    pub fn dispatch(&self, event: Arc<SharedEvent>) {
        let id = event.id().get();
        let mut lagged = Vec::new();
        let mut delivered = 0u64;
        let mut registry = self.registry();
        self.inner
            .recent
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(event.clone());
        let Registry {
            subscribers, index, ..
        } = &mut *registry;
        index.for_each_candidate(&event.event().topic, |subscriber_id| {
            let Some(subscriber) = subscribers.get_mut(&subscriber_id) else {
                return;
            };
            if subscriber.last_delivered == id || !subscriber.filter.admits(event.event()) {
                return;
            }
            subscriber.last_delivered = id;
            match subscriber.queue.try_send(event.clone()) {
                Ok(()) => delivered += 1,
                Err(TrySendError::Full(_)) => lagged.push(subscriber_id),
                // The session ended and its `Subscription` is being dropped.
                Err(TrySendError::Closed(_)) => {}
            }
        });
        for subscriber_id in lagged {
            if let Some(subscriber) = subscribers.remove(&subscriber_id) {
                subscriber.lagged.store(true, Ordering::Release);
                index.remove(subscriber_id, &subscriber.filter.patterns);
                self.inner.metrics.lagged_total.inc();
                // Dropping `subscriber.queue` closes the queue: the session
                // drains what it holds, then learns it lagged.
            }
        }
        self.inner.metrics.subscribers.set(subscribers.len() as i64);
        self.inner.metrics.deliveries_total.add(delivered);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Topic;

    fn reader(user: &str) -> Principal {
        Principal {
            user: user.into(),
            roles: vec![],
            readable: None,
            expires_at: u64::MAX,
        }
    }

    fn event(id: i64, topic: &str) -> Arc<SharedEvent> {
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

    fn filter(patterns: &[&str]) -> Arc<Filter> {
        Arc::new(Filter {
            patterns: patterns
                .iter()
                .map(|p| TopicPattern::parse(p).unwrap())
                .collect(),
            principal: reader("alice"),
        })
    }

    fn hub(capacity: usize) -> Hub {
        Hub::new(capacity, 16, Arc::new(Metrics::default()))
    }

    fn received_id(received: Option<Received>) -> Option<i64> {
        match received {
            Some(Received::Event(e)) => Some(e.id().get()),
            _ => None,
        }
    }

    #[test]
    fn subscribers_get_matching_events_once_even_through_two_patterns() {
        let hub = hub(8);
        let mut both = hub.subscribe(filter(&["device:*", "device:1"]));
        let mut other = hub.subscribe(filter(&["alerts"]));
        hub.dispatch(event(1, "device:1"));
        assert_eq!(received_id(both.try_recv()), Some(1));
        assert!(both.try_recv().is_none());
        assert!(other.try_recv().is_none());
    }

    #[test]
    fn a_full_queue_marks_only_that_subscriber_lagged() {
        let hub = hub(2);
        let mut slow = hub.subscribe(filter(&["*"]));
        let mut fast = hub.subscribe(filter(&["*"]));
        for id in 1..=3 {
            hub.dispatch(event(id, "t"));
            assert_eq!(received_id(fast.try_recv()), Some(id));
        }
        assert_eq!(received_id(slow.try_recv()), Some(1));
        assert_eq!(received_id(slow.try_recv()), Some(2));
        assert!(matches!(slow.try_recv(), Some(Received::Lagged)));
        hub.dispatch(event(4, "t"));
        assert_eq!(received_id(fast.try_recv()), Some(4));
    }

    #[test]
    fn dropping_a_subscription_unregisters_it() {
        let hub = hub(2);
        let subscription = hub.subscribe(filter(&["*"]));
        drop(subscription);
        assert!(hub.registry().subscribers.is_empty());
    }
}
