//! One subscriber's queue: bounded, single-threaded, shared by the shard
//! that fills it and the session that drains it, which run on the same
//! worker.
//!
//! A Tokio channel would do the same with atomics, a semaphore and a task
//! budget. The budget matters beyond its cost: a channel may answer
//! `Pending` while it holds events, once the task has used its share of a
//! turn, and a WebSocket connection that picks the lowest id among its
//! feeds' next events must never mistake a feed for empty. Here `Pending`
//! means empty.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use super::Received;
use crate::wire::SharedEvent;

/// A drained queue keeps at most this many slots, so a subscriber does not
/// hold its largest burst's worth of memory for the rest of its life.
const KEPT_SLOTS: usize = 8;

struct State {
    events: VecDeque<Arc<SharedEvent>>,
    capacity: usize,
    /// The shard let go of the subscriber: nothing more will come.
    closed: bool,
    /// Why: its queue was full when an event came.
    lagged: bool,
    /// The session, once it has found the queue empty. Kept registered
    /// (replaced only when the session's waker changes), so a delivery
    /// clones no waker.
    waker: Option<Waker>,
}

/// The shard's end.
pub(super) struct Sender(Rc<RefCell<State>>);

/// The session's end.
pub(super) struct Receiver(Rc<RefCell<State>>);

/// What a push did not do.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Full;

pub(super) fn bounded(capacity: usize) -> (Sender, Receiver) {
    let state = Rc::new(RefCell::new(State {
        events: VecDeque::new(),
        capacity: capacity.max(1),
        closed: false,
        lagged: false,
        waker: None,
    }));
    (Sender(state.clone()), Receiver(state))
}

impl State {
    fn wake(&self) {
        if let Some(waker) = &self.waker {
            waker.wake_by_ref();
        }
    }
}

impl Sender {
    pub(super) fn push(&self, event: Arc<SharedEvent>) -> Result<(), Full> {
        let mut state = self.0.borrow_mut();
        if state.events.len() >= state.capacity {
            return Err(Full);
        }
        state.events.push_back(event);
        state.wake();
        Ok(())
    }

    /// Whether `receiver` is this queue's other end.
    pub(super) fn feeds(&self, receiver: &Receiver) -> bool {
        Rc::ptr_eq(&self.0, &receiver.0)
    }

    /// Ends the queue after what it holds, saying the subscriber lagged.
    pub(super) fn close_lagged(self) {
        self.0.borrow_mut().lagged = true;
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        let mut state = self.0.borrow_mut();
        state.closed = true;
        state.wake();
    }
}

impl Receiver {
    pub(super) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Received> {
        let mut state = self.0.borrow_mut();
        if let Some(received) = state.take() {
            return Poll::Ready(received);
        }
        match &state.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => state.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Like `poll_recv`, but `None` when the queue is momentarily empty.
    pub(super) fn try_recv(&mut self) -> Option<Received> {
        self.0.borrow_mut().take()
    }

    pub(super) fn is_lagged(&self) -> bool {
        self.0.borrow().lagged
    }
}

impl State {
    fn take(&mut self) -> Option<Received> {
        if let Some(event) = self.events.pop_front() {
            if self.events.is_empty() && self.events.capacity() > KEPT_SLOTS {
                self.events = VecDeque::new();
            }
            return Some(Received::Event(event));
        }
        match (self.closed, self.lagged) {
            (false, _) => None,
            (true, true) => Some(Received::Lagged),
            (true, false) => Some(Received::Closed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::fixtures::received_id as id;
    use futures_util::task::noop_waker_ref;

    fn event(id: i64) -> Arc<SharedEvent> {
        crate::hub::fixtures::event(id, "t")
    }

    #[test]
    fn a_full_queue_refuses_and_a_lagged_one_drains_before_saying_so() {
        let (sender, mut receiver) = bounded(2);
        sender.push(event(1)).unwrap();
        sender.push(event(2)).unwrap();
        assert_eq!(sender.push(event(3)), Err(Full));
        sender.close_lagged();
        assert_eq!(id(receiver.try_recv()), Some(1));
        assert_eq!(id(receiver.try_recv()), Some(2));
        assert!(matches!(receiver.try_recv(), Some(Received::Lagged)));
        assert!(receiver.is_lagged());
    }

    #[test]
    fn a_queue_let_go_of_says_closed_and_pending_means_empty() {
        let (sender, mut receiver) = bounded(4);
        let mut cx = Context::from_waker(noop_waker_ref());
        assert!(receiver.poll_recv(&mut cx).is_pending());
        sender.push(event(1)).unwrap();
        assert!(matches!(
            receiver.poll_recv(&mut cx),
            Poll::Ready(Received::Event(_))
        ));
        drop(sender);
        assert!(matches!(
            receiver.poll_recv(&mut cx),
            Poll::Ready(Received::Closed)
        ));
    }

    #[derive(Default)]
    struct Wakes(std::sync::atomic::AtomicUsize);

    impl futures_util::task::ArcWake for Wakes {
        fn wake_by_ref(arc_self: &Arc<Self>) {
            arc_self
                .0
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    #[test]
    fn a_push_or_the_end_wakes_the_waiting_session() {
        let (sender, mut receiver) = bounded(4);
        let wakes = Arc::new(Wakes::default());
        let waker = futures_util::task::waker(wakes.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(receiver.poll_recv(&mut cx).is_pending());
        sender.push(event(1)).unwrap();
        assert_eq!(wakes.0.load(std::sync::atomic::Ordering::Relaxed), 1);
        drop(sender);
        assert_eq!(wakes.0.load(std::sync::atomic::Ordering::Relaxed), 2);
    }

    #[test]
    fn a_drained_burst_gives_its_slots_back() {
        let (sender, mut receiver) = bounded(1024);
        for n in 1..=100 {
            sender.push(event(n)).unwrap();
        }
        while receiver.try_recv().is_some() {}
        assert!(receiver.0.borrow().events.capacity() <= KEPT_SLOTS);
    }
}
