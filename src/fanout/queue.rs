//! One subscriber's queue: bounded, single-threaded, shared by the shard
//! that fills it and the session that drains it, which run on the same
//! worker. `Pending` means empty (see [`crate::local_channel`]), which a
//! WebSocket connection picking the lowest id among its feeds' next events
//! relies on.

use std::sync::Arc;
use std::task::{Context, Poll};

use super::Received;
use crate::domain::wire::SharedEvent;
use crate::local_channel::{self, Count, Refused, TryRecvError};

/// Whether the shard let go of the subscriber because its queue was full
/// when an event came; read once the queue has ended.
type Lagged = bool;

/// The shard's end.
pub(super) struct Sender(local_channel::Sender<Arc<SharedEvent>, Count, Lagged>);

/// The session's end.
pub(super) struct Receiver(local_channel::Receiver<Arc<SharedEvent>, Count, Lagged>);

/// What a push did not do.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Full;

pub(super) fn bounded(capacity: usize) -> (Sender, Receiver) {
    let (sender, receiver) = local_channel::bounded(capacity, false);
    (Sender(sender), Receiver(receiver))
}

impl Sender {
    /// Queues `event`. An event for a session that is gone is dropped, not
    /// refused: the subscriber is unregistered when the session drops it.
    pub(super) fn push(&self, event: Arc<SharedEvent>) -> Result<(), Full> {
        match self.0.send(event) {
            Ok(()) | Err(Refused::ReceiverGone) => Ok(()),
            Err(Refused::Full) => Err(Full),
        }
    }

    /// Whether `receiver` is this queue's other end.
    pub(super) fn feeds(&self, receiver: &Receiver) -> bool {
        self.0.feeds(&receiver.0)
    }

    /// Ends the queue after what it holds, saying the subscriber lagged.
    pub(super) fn close_lagged(self) {
        *self.0.side() = true;
    }
}

impl Receiver {
    pub(super) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Received> {
        match self.0.poll_recv(cx) {
            Poll::Ready(Some(event)) => Poll::Ready(Received::Event(event)),
            Poll::Ready(None) => Poll::Ready(self.end()),
            Poll::Pending => Poll::Pending,
        }
    }

    /// Like `poll_recv`, but `None` when the queue is momentarily empty.
    pub(super) fn try_recv(&mut self) -> Option<Received> {
        match self.0.try_recv() {
            Ok(event) => Some(Received::Event(event)),
            Err(TryRecvError::Ended) => Some(self.end()),
            Err(TryRecvError::Empty) => None,
        }
    }

    pub(super) fn is_lagged(&self) -> bool {
        *self.0.side()
    }

    fn end(&self) -> Received {
        if self.is_lagged() {
            Received::Lagged
        } else {
            Received::Closed
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fanout::fixtures::received_id as id;
    use crate::local_channel::tests::Wakes;
    use futures_util::task::noop_waker_ref;

    fn event(id: i64) -> Arc<SharedEvent> {
        crate::fanout::fixtures::event(id, "t")
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

    #[test]
    fn a_push_or_the_end_wakes_the_waiting_session() {
        let (sender, mut receiver) = bounded(4);
        let wakes = Arc::new(Wakes::default());
        let waker = futures_util::task::waker(wakes.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(receiver.poll_recv(&mut cx).is_pending());
        sender.push(event(1)).unwrap();
        assert_eq!(wakes.count(), 1);
        drop(sender);
        assert_eq!(wakes.count(), 2);
    }

    #[test]
    fn a_drained_burst_gives_its_slots_back() {
        let (sender, mut receiver) = bounded(1024);
        for n in 1..=100 {
            sender.push(event(n)).unwrap();
        }
        while receiver.try_recv().is_some() {}
        assert!(receiver.0.slots() <= crate::local_channel::KEPT_SLOTS);
    }
}
