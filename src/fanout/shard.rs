//! One worker thread's share of the subscribers.
//!
//! Every HTTP worker owns a shard, and every session subscribes to the shard
//! of the worker it runs on. The hub hands each committed batch to every
//! shard once; the shard's task, on its own worker, offers each event to its
//! subscribers. So a delivery wakes a task on the thread that already runs
//! it, which costs a push onto that thread's run queue; waking it from the
//! hub's thread would take a lock on the worker's shared queue and a write
//! to its event fd, once per subscriber per event.
//!
//! A shard whose worker falls so far behind that [`SHARD_BACKLOG`] events
//! wait for it is sent no more: its subscribers are all marked lagged, as a
//! slow subscriber is, and resume from their cursors once it catches up.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};

use slab::Slab;
use tokio::sync::mpsc;

use super::index::TopicIndex;
use super::queue::{self, Full};
use super::{Hub, Received, SubscriberId};
use crate::domain::filter::Filter;
use crate::domain::wire::SharedEvent;
use crate::metrics::Metrics;

/// Events waiting for one shard, at most; see the module documentation.
pub const SHARD_BACKLOG: usize = 65_536;

/// Events committed together, shared by every shard.
pub(super) type Batch = Arc<[Arc<SharedEvent>]>;

pub(super) enum Delivery {
    Events(Batch),
    /// Events were left out (by the hub for this shard, or before the hub
    /// got them): lag every subscriber held now.
    Overflowed,
}

/// The hub's end of a shard: where it sends, and how much waits there.
pub(super) struct ShardLink {
    inbox: mpsc::UnboundedSender<Delivery>,
    backlog: Arc<Backlog>,
}

#[derive(Default)]
struct Backlog {
    /// Events sent and not yet delivered.
    events: AtomicUsize,
    /// Set by the hub when it leaves events out, cleared by the shard once
    /// it has lagged every subscriber that might have wanted them.
    overflowed: AtomicBool,
}

impl ShardLink {
    /// Hands `batch` over. False once the shard is gone.
    pub(super) fn send(&self, batch: &Batch) -> bool {
        // SeqCst: the hub's reading of the flag and the shard's clearing it
        // must fall in one order with the shard's registrations.
        if self.backlog.overflowed.load(Ordering::SeqCst) {
            // The shard has not yet lagged its subscribers for the events
            // already left out; these are left out with them.
            return !self.inbox.is_closed();
        }
        let waiting = self.backlog.events.fetch_add(batch.len(), Ordering::AcqRel);
        let delivery = if waiting + batch.len() > SHARD_BACKLOG {
            self.backlog.events.fetch_sub(batch.len(), Ordering::AcqRel);
            self.backlog.overflowed.store(true, Ordering::SeqCst);
            Delivery::Overflowed
        } else {
            Delivery::Events(batch.clone())
        };
        self.inbox.send(delivery).is_ok()
    }
}

impl ShardLink {
    /// Marks every subscriber held now lagged. False once the shard is gone.
    pub(super) fn lag_all(&self) -> bool {
        self.inbox.send(Delivery::Overflowed).is_ok()
    }
}

struct Subscriber {
    filter: Arc<Filter>,
    /// The token limits no topics and the filter no types: an event without
    /// an audience that the topic index offers is admitted without looking
    /// at the filter, which at thousands of subscribers per event saves two
    /// cache misses each.
    admits_whole_topics: bool,
    queue: queue::Sender,
    /// Events up to this id are not offered: the last one handed over, so
    /// a subscriber reached through two of its patterns gets an event once;
    /// at first, the last one the hub had handed to the shards when it
    /// subscribed, which its replay serves (see `Shard::subscribe`).
    offered_through: i64,
}

struct Registry {
    /// By id: a slab, so ids are small and the index's id lists, kept in
    /// subscription order, walk it mostly forwards.
    subscribers: Slab<Subscriber>,
    index: TopicIndex,
    queue_capacity: usize,
    metrics: Arc<Metrics>,
}

impl Registry {
    fn remove(&mut self, id: SubscriberId) -> Option<Subscriber> {
        let subscriber = self.subscribers.try_remove(id)?;
        self.index.remove(id, &subscriber.filter.patterns);
        self.metrics.subscribers.dec();
        Some(subscriber)
    }

    /// Drops a subscriber and marks it lagged: it drains what its queue
    /// holds, then learns it lagged.
    fn lag(&mut self, id: SubscriberId) {
        if let Some(subscriber) = self.remove(id) {
            subscriber.queue.close_lagged();
            self.metrics.lagged.inc();
        }
    }

    /// Lets go of every subscriber: each drains its queue, then ends.
    fn ids(&self) -> Vec<SubscriberId> {
        self.subscribers.iter().map(|(id, _)| id).collect()
    }

    fn clear(&mut self) {
        let ids = self.ids();
        for id in ids {
            self.remove(id);
        }
    }

    fn deliver(&mut self, event: &Arc<SharedEvent>) {
        let id = event.id().get();
        let mut lagged = Vec::new();
        let mut delivered = 0u64;
        let Registry {
            subscribers, index, ..
        } = self;
        index.for_each_candidate(&event.event().topic, |subscriber_id| {
            let Some(subscriber) = subscribers.get_mut(subscriber_id) else {
                return;
            };
            if id <= subscriber.offered_through {
                return;
            }
            // Every candidate has a pattern that matches the topic; what is
            // left to ask is its type filter and whether its token may read
            // the event.
            let open = subscriber.admits_whole_topics && event.event().audience.is_none();
            if !open && !subscriber.filter.admits_on_its_topic(event.event()) {
                return;
            }
            subscriber.offered_through = id;
            match subscriber.queue.push(event.clone()) {
                Ok(()) => delivered += 1,
                Err(Full) => lagged.push(subscriber_id),
            }
        });
        for subscriber_id in lagged {
            self.lag(subscriber_id);
        }
        self.metrics.deliveries.inc_by(delivered);
    }
}

/// A worker's shard; cheap to clone, bound to the thread that made it.
#[derive(Clone)]
pub struct Shard {
    hub: Hub,
    registry: Rc<RefCell<Registry>>,
}

/// A live registration; dropping it unsubscribes.
pub struct Subscription {
    id: SubscriberId,
    queue: queue::Receiver,
    registry: Rc<RefCell<Registry>>,
}

impl Subscription {
    /// The next event; `Pending` only when the queue is empty.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Received> {
        self.queue.poll_recv(cx)
    }

    /// Like `poll_recv`, but `None` when the queue is momentarily empty.
    pub fn try_recv(&mut self) -> Option<Received> {
        self.queue.try_recv()
    }

    pub fn is_lagged(&self) -> bool {
        self.queue.is_lagged()
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        // The registry is borrowed only inside the shard's own synchronous
        // steps, which run no session code, so this never finds it taken.
        match self.registry.try_borrow_mut() {
            Ok(mut registry) => {
                // A lagged subscriber's slot may hold a newer one by now.
                let still_ours = registry
                    .subscribers
                    .get(self.id)
                    .is_some_and(|subscriber| subscriber.queue.feeds(&self.queue));
                if still_ours {
                    registry.remove(self.id);
                }
            }
            Err(_) => debug_assert!(false, "a subscription dropped while its shard delivered"),
        }
    }
}

impl Shard {
    /// A shard for the calling thread, and the task that feeds it, which
    /// must run on this thread too (`spawn_local`). The task ends when the
    /// hub stops, ending every subscription.
    pub fn open(hub: &Hub) -> (Shard, impl std::future::Future<Output = ()> + use<>) {
        let registry = Rc::new(RefCell::new(Registry {
            subscribers: Slab::new(),
            index: TopicIndex::default(),
            queue_capacity: hub.inner.queue_capacity,
            metrics: hub.inner.metrics.clone(),
        }));
        let (inbox_tx, inbox) = mpsc::unbounded_channel();
        let backlog = Arc::new(Backlog::default());
        hub.attach(ShardLink {
            inbox: inbox_tx,
            backlog: backlog.clone(),
        });
        let shard = Shard {
            hub: hub.clone(),
            registry: registry.clone(),
        };
        (shard, feed_shard(inbox, backlog, registry))
    }

    /// The hub this shard belongs to (for its recent events).
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// Registers a subscriber. Every event the hub dispatches after this
    /// returns is offered to it: the shard delivers in the hub's order, and
    /// the subscriber is in its registry before the shard's task next runs.
    ///
    /// Events the hub handed over before, still on their way through the
    /// shard's inbox, are not offered: they are at or below the head the
    /// subscriber reads next, so its replay serves them, and a backlog of
    /// them must not fill a fresh queue.
    pub fn subscribe(&self, filter: Arc<Filter>) -> Subscription {
        let offered_through = self.hub.dispatched_through();
        let mut registry = self.registry.borrow_mut();
        let (queue_tx, queue) = queue::bounded(registry.queue_capacity);
        let patterns = filter.patterns.clone();
        let id = registry.subscribers.insert(Subscriber {
            admits_whole_topics: filter.scope.reads_every_topic() && filter.types.is_any(),
            filter,
            queue: queue_tx,
            offered_through,
        });
        registry.index.insert(id, &patterns);
        registry.metrics.subscribers.inc();
        Subscription {
            id,
            queue,
            registry: self.registry.clone(),
        }
    }

    /// Offers one event to every subscriber of this shard that admits it.
    pub fn deliver(&self, event: &Arc<SharedEvent>) {
        self.registry.borrow_mut().deliver(event);
    }

    #[cfg(test)]
    fn subscriber_count(&self) -> usize {
        self.registry.borrow().subscribers.len()
    }
}

async fn feed_shard(
    mut inbox: mpsc::UnboundedReceiver<Delivery>,
    backlog: Arc<Backlog>,
    registry: Rc<RefCell<Registry>>,
) {
    // However this task ends (the hub stopped, the worker went, a panic),
    // every subscription ends with it instead of waiting forever.
    let _release = Release(registry.clone());
    while let Some(delivery) = inbox.recv().await {
        let mut registry = registry.borrow_mut();
        match delivery {
            Delivery::Events(batch) => {
                for event in batch.iter() {
                    registry.deliver(event);
                }
                backlog.events.fetch_sub(batch.len(), Ordering::AcqRel);
            }
            Delivery::Overflowed => {
                let ids = registry.ids();
                tracing::warn!(
                    subscribers = ids.len(),
                    "a worker fell {SHARD_BACKLOG} events behind; its subscribers resume from their cursors"
                );
                for id in ids {
                    registry.lag(id);
                }
                backlog.overflowed.store(false, Ordering::SeqCst);
            }
        }
    }
}

/// Lets go of every subscriber when dropped.
struct Release(Rc<RefCell<Registry>>);

impl Drop for Release {
    fn drop(&mut self) {
        if let Ok(mut registry) = self.0.try_borrow_mut() {
            registry.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::event::{Event, TopicPattern};
    use crate::domain::read_scope::ReadScope;
    use crate::domain::type_filter::TypeFilter;
    use crate::fanout::fixtures::{event, received_id};

    fn reader(user: &str) -> ReadScope {
        ReadScope {
            user: user.into(),
            roles: vec![],
            topics: None,
        }
    }

    fn filter(patterns: &[&str]) -> Arc<Filter> {
        Arc::new(Filter {
            patterns: patterns
                .iter()
                .map(|p| TopicPattern::parse(p).unwrap())
                .collect(),
            types: TypeFilter::any(),
            scope: reader("alice"),
        })
    }

    /// A shard whose task is never run: tests deliver by hand.
    fn shard(capacity: usize) -> Shard {
        let hub = Hub::new(capacity, 16, Arc::new(Metrics::default()));
        Shard::open(&hub).0
    }

    #[test]
    fn subscribers_get_matching_events_once_even_through_two_patterns() {
        let shard = shard(8);
        let mut both = shard.subscribe(filter(&["device:*", "device:1"]));
        let mut other = shard.subscribe(filter(&["alerts"]));
        shard.deliver(&event(1, "device:1"));
        assert_eq!(received_id(both.try_recv()), Some(1));
        assert!(both.try_recv().is_none());
        assert!(other.try_recv().is_none());
    }

    #[test]
    fn a_full_queue_marks_only_that_subscriber_lagged() {
        let shard = shard(2);
        let mut slow = shard.subscribe(filter(&["*"]));
        let mut fast = shard.subscribe(filter(&["*"]));
        for id in 1..=3 {
            shard.deliver(&event(id, "t"));
            assert_eq!(received_id(fast.try_recv()), Some(id));
        }
        assert_eq!(received_id(slow.try_recv()), Some(1));
        assert_eq!(received_id(slow.try_recv()), Some(2));
        assert!(matches!(slow.try_recv(), Some(Received::Lagged)));
        shard.deliver(&event(4, "t"));
        assert_eq!(received_id(fast.try_recv()), Some(4));
    }

    #[test]
    fn the_token_still_decides_what_each_candidate_reads() {
        let shard = shard(8);
        let mut narrow = shard.subscribe(Arc::new(Filter {
            patterns: vec![TopicPattern::All],
            types: TypeFilter::any(),
            scope: ReadScope {
                topics: Some(vec![TopicPattern::parse("a").unwrap()]),
                ..reader("alice")
            },
        }));
        let mut bob = shard.subscribe(Arc::new(Filter {
            patterns: vec![TopicPattern::All],
            types: TypeFilter::any(),
            scope: reader("bob"),
        }));
        shard.deliver(&event(1, "b"));
        let mut addressed = Event::clone(event(2, "a").event());
        addressed.audience = Some(crate::domain::event::Audience {
            users: vec!["alice".into()],
            roles: vec![],
        });
        shard.deliver(&Arc::new(SharedEvent::new(addressed)));
        assert_eq!(
            received_id(narrow.try_recv()),
            Some(2),
            "topic claim: not b"
        );
        assert!(narrow.try_recv().is_none());
        assert_eq!(received_id(bob.try_recv()), Some(1), "audience: not 2");
        assert!(bob.try_recv().is_none());
    }

    #[test]
    fn a_type_filter_decides_among_the_candidates_of_a_topic() {
        let shard = shard(8);
        let mut notifications = shard.subscribe(Arc::new(Filter {
            types: TypeFilter::parse_list("notification:*", 1).unwrap(),
            ..Filter::clone(&filter(&["device:*"]))
        }));
        let mut everything = shard.subscribe(filter(&["device:*"]));
        let typed = |id, kind: &str| {
            let mut typed = Event::clone(event(id, "device:1").event());
            typed.kind = kind.into();
            Arc::new(SharedEvent::new(typed))
        };

        shard.deliver(&typed(1, "entity:updated"));
        shard.deliver(&typed(2, "notification:battery_low"));

        assert_eq!(received_id(notifications.try_recv()), Some(2));
        assert!(notifications.try_recv().is_none());
        assert_eq!(received_id(everything.try_recv()), Some(1));
        assert_eq!(received_id(everything.try_recv()), Some(2));
    }

    #[test]
    fn a_lagged_subscription_dropped_late_leaves_its_slot_s_new_owner_alone() {
        let shard = shard(1);
        let lagged = shard.subscribe(filter(&["t"]));
        shard.deliver(&event(1, "t"));
        shard.deliver(&event(2, "t"));
        assert!(lagged.is_lagged());
        let mut newer = shard.subscribe(filter(&["t"]));
        drop(lagged);
        assert_eq!(shard.subscriber_count(), 1);
        shard.deliver(&event(3, "t"));
        assert_eq!(received_id(newer.try_recv()), Some(3));
    }

    #[test]
    fn dropping_a_subscription_unregisters_it() {
        let shard = shard(2);
        let subscription = shard.subscribe(filter(&["*"]));
        assert_eq!(shard.subscriber_count(), 1);
        drop(subscription);
        assert_eq!(shard.subscriber_count(), 0);
    }

    fn local_runtime() -> (tokio::runtime::Runtime, tokio::task::LocalSet) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        (runtime, tokio::task::LocalSet::new())
    }

    async fn next(subscription: &mut Subscription) -> Received {
        std::future::poll_fn(|cx| subscription.poll_recv(cx)).await
    }

    async fn expect_event(subscription: &mut Subscription, expected: i64) {
        match next(subscription).await {
            Received::Event(event) => assert_eq!(event.id().get(), expected),
            other => panic!("expected event {expected}, got {other:?}"),
        }
    }

    #[test]
    fn every_shard_gets_what_the_hub_dispatches_in_order() {
        let (runtime, local) = local_runtime();
        local.block_on(&runtime, async {
            let hub = Hub::new(8, 16, Arc::new(Metrics::default()));
            let mut subscriptions = Vec::new();
            for _ in 0..2 {
                let (shard, task) = Shard::open(&hub);
                tokio::task::spawn_local(task);
                subscriptions.push(shard.subscribe(filter(&["t"])));
            }
            hub.dispatch_batch(vec![event(1, "t"), event(2, "other"), event(3, "t")]);
            for subscription in &mut subscriptions {
                for expected in [1, 3] {
                    expect_event(subscription, expected).await;
                }
            }
        });
    }

    #[test]
    fn a_shard_left_too_far_behind_lags_its_subscribers_and_then_delivers_again() {
        let (runtime, local) = local_runtime();
        local.block_on(&runtime, async {
            let hub = Hub::new(SHARD_BACKLOG * 2, 16, Arc::new(Metrics::default()));
            let (shard, task) = Shard::open(&hub);
            let mut behind = shard.subscribe(filter(&["t"]));
            // The shard's task is not running yet: everything waits for it.
            let batch: Vec<_> = (1..=SHARD_BACKLOG as i64)
                .map(|id| event(id, "t"))
                .collect();
            hub.dispatch_batch(batch);
            hub.dispatch_batch(vec![event(SHARD_BACKLOG as i64 + 1, "t")]);
            tokio::task::spawn_local(task);
            for expected in 1..=SHARD_BACKLOG as i64 {
                expect_event(&mut behind, expected).await;
            }
            assert!(matches!(next(&mut behind).await, Received::Lagged));
            // Once it has caught up, the shard delivers to new subscribers.
            let mut fresh = shard.subscribe(filter(&["t"]));
            let after = SHARD_BACKLOG as i64 + 2;
            hub.dispatch_batch(vec![event(after, "t")]);
            expect_event(&mut fresh, after).await;
        });
    }

    #[test]
    fn events_missing_between_two_batches_lag_every_live_subscriber() {
        let (runtime, local) = local_runtime();
        local.block_on(&runtime, async {
            let hub = Hub::new(8, 16, Arc::new(Metrics::default()));
            let (shard, task) = Shard::open(&hub);
            tokio::task::spawn_local(task);
            let mut live = shard.subscribe(filter(&["t"]));
            hub.dispatch_batch((1..=3).map(|id| event(id, "t")).collect());
            // 4 to 6 never reach the hub.
            hub.dispatch_batch(vec![event(7, "t")]);
            for expected in 1..=3 {
                expect_event(&mut live, expected).await;
            }
            assert!(matches!(next(&mut live).await, Received::Lagged));
            let mut fresh = shard.subscribe(filter(&["t"]));
            hub.dispatch_batch(vec![event(8, "t")]);
            expect_event(&mut fresh, 8).await;
        });
    }

    #[test]
    fn a_new_subscriber_is_not_offered_events_dispatched_before_it_came() {
        let (runtime, local) = local_runtime();
        local.block_on(&runtime, async {
            let hub = Hub::new(2, 16, Arc::new(Metrics::default()));
            let (shard, task) = Shard::open(&hub);
            // Still in the shard's inbox when the subscriber comes: its
            // replay serves these, and they would overflow its queue of 2.
            hub.dispatch_batch((1..=5).map(|id| event(id, "t")).collect());
            let mut late = shard.subscribe(filter(&["t"]));
            tokio::task::spawn_local(task);
            hub.dispatch_batch(vec![event(6, "t")]);
            expect_event(&mut late, 6).await;
            assert!(late.try_recv().is_none());
        });
    }

    #[test]
    fn when_the_hub_stops_every_subscription_ends() {
        let (runtime, local) = local_runtime();
        local.block_on(&runtime, async {
            let hub = Hub::new(8, 16, Arc::new(Metrics::default()));
            let (shard, task) = Shard::open(&hub);
            let task = tokio::task::spawn_local(task);
            let mut subscription = shard.subscribe(filter(&["t"]));
            hub.detach_all();
            task.await.unwrap();
            assert!(matches!(next(&mut subscription).await, Received::Closed));
        });
    }
}
