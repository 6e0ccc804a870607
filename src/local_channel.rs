//! A bounded channel between two tasks on the same worker thread: the
//! queue under each subscriber, each WebSocket's outbound frames and each
//! WebSocket's inbound bytes.
//!
//! Both ends share one `Rc<RefCell>`, so the channel is `!Send` and costs no
//! atomics. A Tokio channel would add a semaphore and a task budget, and
//! with the budget it may answer `Pending` while it holds items, once the
//! task has used its share of a turn: a WebSocket connection that picks the
//! lowest id among its feeds' next events must never mistake a feed for
//! empty. Here `Pending` means empty.
//!
//! The channel holds one waker. At most one end can be waiting at a time:
//! the receiver waits only while the channel is empty, the sender only
//! while it is full, and an empty channel is never full. The waker stays
//! registered after a wake and is cloned only when the waiting task's
//! waker changes, so a steady stream of deliveries clones none.
//!
//! A state stays as small as a bare queue's: the bound is one signed count
//! of the room left, the weight of an item is a type (no function pointer)
//! and what a user shares beside the queue (`S`) lives in the same
//! allocation.

use std::cell::{RefCell, RefMut};
use std::collections::VecDeque;
use std::marker::PhantomData;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// A drained queue keeps at most this many slots, so an end does not hold
/// its largest burst's worth of memory for the rest of its life.
pub(crate) const KEPT_SLOTS: usize = 8;

/// How much of the bound an item takes.
pub(crate) trait Weight<T> {
    fn weight(item: &T) -> usize;
}

/// Each item takes one: the bound counts items.
pub(crate) struct Count;

impl<T> Weight<T> for Count {
    fn weight(_: &T) -> usize {
        1
    }
}

/// Why a send did not queue its item.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The channel is at its bound: the receiver is not keeping up.
    Full,
    /// The receiver is gone: nobody would take the item.
    ReceiverGone,
}

/// Why [`Receiver::try_recv`] returned no item.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum TryRecvError {
    /// Nothing queued now; more may come.
    Empty,
    /// Nothing queued and the sender has closed: nothing more will come.
    Ended,
}

struct State<T, S> {
    items: VecDeque<T>,
    /// What is left of the bound. A send is taken while it is positive,
    /// whatever the item weighs, so it can go below zero: a byte-bounded
    /// channel never has to split or refuse a chunk already read.
    room: isize,
    /// The waiting end, if any (see the module comment).
    waker: Option<Waker>,
    /// Whether `waker` is the sender's (waiting for room) rather than the
    /// receiver's (waiting for items).
    waker_is_sender: bool,
    /// The sender closed the channel or was dropped.
    closed: bool,
    receiver_gone: bool,
    side: S,
}

impl<T, S> State<T, S> {
    /// Keeps `cx`'s waker as the waiting end's, cloning it only if it is
    /// not the one already kept.
    fn register(&mut self, cx: &Context<'_>, sender: bool) {
        match &self.waker {
            Some(waker) if self.waker_is_sender == sender && waker.will_wake(cx.waker()) => {}
            _ => {
                self.waker = Some(cx.waker().clone());
                self.waker_is_sender = sender;
            }
        }
    }

    /// Wakes the sender if it is the end waiting, or the receiver.
    fn wake(&self, sender: bool) {
        if self.waker_is_sender == sender
            && let Some(waker) = &self.waker
        {
            waker.wake_by_ref();
        }
    }

    fn has_room(&self) -> bool {
        self.receiver_gone || self.room > 0
    }

    fn take<W: Weight<T>>(&mut self) -> Result<T, TryRecvError> {
        let Some(item) = self.items.pop_front() else {
            return Err(if self.closed {
                TryRecvError::Ended
            } else {
                TryRecvError::Empty
            });
        };
        let was_full = self.room <= 0;
        self.room += weight::<T, W>(&item);
        if self.items.is_empty() && self.items.capacity() > KEPT_SLOTS {
            self.items = VecDeque::new();
        }
        if was_full && self.room > 0 {
            self.wake(true);
        }
        Ok(item)
    }
}

/// An item's weight as a signed count. No item weighs more than
/// `isize::MAX` (no allocation can be larger), so the clamp never bites; it
/// keeps `room` from overflowing all the same.
fn weight<T, W: Weight<T>>(item: &T) -> isize {
    isize::try_from(W::weight(item)).unwrap_or(isize::MAX)
}

/// The sending end. Dropping it ends the stream after what it holds.
pub(crate) struct Sender<T, W = Count, S = ()> {
    state: Rc<RefCell<State<T, S>>>,
    weight: PhantomData<W>,
}

/// The receiving end. Dropping it makes every later send refuse, and wakes
/// a sender waiting for room.
pub(crate) struct Receiver<T, W = Count, S = ()> {
    state: Rc<RefCell<State<T, S>>>,
    weight: PhantomData<W>,
}

/// A channel that takes sends while the items it holds weigh less than
/// `capacity` (at least one) by `W` ([`Count`]: up to `capacity` items),
/// with `side` shared by both ends.
pub(crate) fn bounded<T, W: Weight<T>, S>(
    capacity: usize,
    side: S,
) -> (Sender<T, W, S>, Receiver<T, W, S>) {
    let state = Rc::new(RefCell::new(State {
        items: VecDeque::new(),
        room: isize::try_from(capacity).unwrap_or(isize::MAX).max(1),
        waker: None,
        waker_is_sender: false,
        closed: false,
        receiver_gone: false,
        side,
    }));
    (
        Sender {
            state: state.clone(),
            weight: PhantomData,
        },
        Receiver {
            state,
            weight: PhantomData,
        },
    )
}

impl<T, W: Weight<T>, S> Sender<T, W, S> {
    /// Queues `item` and wakes the receiver if it waits.
    pub(crate) fn send(&self, item: T) -> Result<(), Refused> {
        let mut state = self.state.borrow_mut();
        if state.receiver_gone {
            return Err(Refused::ReceiverGone);
        }
        if state.room <= 0 {
            return Err(Refused::Full);
        }
        state.room -= weight::<T, W>(&item);
        state.items.push_back(item);
        state.wake(false);
        Ok(())
    }

    /// Whether a send would be taken now, or refused only because the
    /// receiver is gone.
    pub(crate) fn has_room(&self) -> bool {
        self.state.borrow().has_room()
    }

    /// Resolves once a send would be taken, or once the receiver is gone
    /// (so a sender never waits on an end that will not read).
    pub(crate) async fn room(&self) {
        std::future::poll_fn(|cx| {
            let mut state = self.state.borrow_mut();
            if state.has_room() {
                return Poll::Ready(());
            }
            state.register(cx, true);
            Poll::Pending
        })
        .await;
    }

    pub(crate) fn receiver_gone(&self) -> bool {
        self.state.borrow().receiver_gone
    }

    /// Ends the stream after what it holds, as dropping the sender does.
    pub(crate) fn close(&mut self) {
        let mut state = self.state.borrow_mut();
        state.closed = true;
        state.wake(false);
    }

    /// What the user shares beside the queue. Call [`Self::wake_receiver`]
    /// after a change the receiver must see, once this borrow is dropped.
    pub(crate) fn side(&self) -> RefMut<'_, S> {
        RefMut::map(self.state.borrow_mut(), |state| &mut state.side)
    }

    /// Wakes the receiver if it waits, for a change to the side state.
    pub(crate) fn wake_receiver(&self) {
        self.state.borrow().wake(false);
    }

    /// What the bound has left; negative past it.
    #[cfg(test)]
    pub(crate) fn room_left(&self) -> isize {
        self.state.borrow().room
    }

    /// Whether `receiver` is this sender's other end.
    pub(crate) fn feeds(&self, receiver: &Receiver<T, W, S>) -> bool {
        Rc::ptr_eq(&self.state, &receiver.state)
    }
}

impl<T, W, S> Drop for Sender<T, W, S> {
    fn drop(&mut self) {
        let mut state = self.state.borrow_mut();
        state.closed = true;
        state.wake(false);
    }
}

impl<T, W: Weight<T>, S> Receiver<T, W, S> {
    /// The next item, `None` once the sender has closed and everything is
    /// taken, `Pending` only when nothing is queued.
    pub(crate) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut state = self.state.borrow_mut();
        match state.take::<W>() {
            Ok(item) => Poll::Ready(Some(item)),
            Err(TryRecvError::Ended) => Poll::Ready(None),
            Err(TryRecvError::Empty) => {
                state.register(cx, false);
                Poll::Pending
            }
        }
    }

    pub(crate) fn try_recv(&mut self) -> Result<T, TryRecvError> {
        self.state.borrow_mut().take::<W>()
    }

    /// Whether the sender has closed, items still queued or not.
    pub(crate) fn sender_closed(&self) -> bool {
        self.state.borrow().closed
    }

    /// What the user shares beside the queue.
    pub(crate) fn side(&self) -> RefMut<'_, S> {
        RefMut::map(self.state.borrow_mut(), |state| &mut state.side)
    }

    /// The slots the queue holds, filled or not.
    #[cfg(test)]
    pub(crate) fn slots(&self) -> usize {
        self.state.borrow().items.capacity()
    }
}

impl<T, W, S> Drop for Receiver<T, W, S> {
    fn drop(&mut self) {
        let mut state = self.state.borrow_mut();
        state.receiver_gone = true;
        state.wake(true);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use futures_util::FutureExt;
    use futures_util::task::noop_waker_ref;
    use std::future::Future;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A waker that counts its wakes.
    #[derive(Default)]
    pub(crate) struct Wakes(AtomicUsize);

    impl Wakes {
        pub(crate) fn count(&self) -> usize {
            self.0.load(Ordering::Relaxed)
        }
    }

    impl futures_util::task::ArcWake for Wakes {
        fn wake_by_ref(arc_self: &Arc<Self>) {
            arc_self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn counting() -> (Arc<Wakes>, Waker) {
        let wakes = Arc::new(Wakes::default());
        let waker = futures_util::task::waker(wakes.clone());
        (wakes, waker)
    }

    fn counted<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
        bounded(capacity, ())
    }

    struct Len;

    impl Weight<Vec<u8>> for Len {
        fn weight(item: &Vec<u8>) -> usize {
            item.len()
        }
    }

    #[test]
    fn items_come_out_in_the_order_they_went_in() {
        let (sender, mut receiver) = counted(4);
        for n in 1..=3 {
            sender.send(n).unwrap();
        }
        assert_eq!(receiver.try_recv(), Ok(1));
        assert_eq!(receiver.try_recv(), Ok(2));
        assert_eq!(receiver.try_recv(), Ok(3));
        assert_eq!(receiver.try_recv(), Err(TryRecvError::Empty));
    }

    #[test]
    fn a_full_channel_refuses_until_an_item_is_taken() {
        let (sender, mut receiver) = counted(2);
        sender.send(1).unwrap();
        sender.send(2).unwrap();
        assert!(!sender.has_room());
        assert_eq!(sender.send(3), Err(Refused::Full));
        receiver.try_recv().unwrap();
        assert_eq!(sender.send(3), Ok(()));
    }

    #[test]
    fn a_weighted_channel_takes_a_heavy_item_while_under_its_bound() {
        let (sender, mut receiver) = bounded::<_, Len, _>(10, ());
        sender.send(vec![0; 4]).unwrap();
        sender.send(vec![0; 20]).unwrap();
        assert_eq!(sender.room_left(), -14);
        assert_eq!(sender.send(vec![0; 1]), Err(Refused::Full));
        receiver.try_recv().unwrap();
        assert!(!sender.has_room(), "still past the bound");
        receiver.try_recv().unwrap();
        assert_eq!(sender.room_left(), 10);
    }

    #[test]
    fn pending_means_empty_and_the_end_comes_after_what_was_queued() {
        let (sender, mut receiver) = counted(4);
        let mut cx = Context::from_waker(noop_waker_ref());
        assert!(receiver.poll_recv(&mut cx).is_pending());
        sender.send(1).unwrap();
        drop(sender);
        assert!(receiver.sender_closed());
        assert_eq!(receiver.poll_recv(&mut cx), Poll::Ready(Some(1)));
        assert_eq!(receiver.poll_recv(&mut cx), Poll::Ready(None));
        assert_eq!(receiver.try_recv(), Err(TryRecvError::Ended));
    }

    #[test]
    fn closing_without_dropping_ends_the_stream_too() {
        let (mut sender, mut receiver) = counted::<u8>(4);
        sender.close();
        assert_eq!(receiver.try_recv(), Err(TryRecvError::Ended));
    }

    #[test]
    fn each_send_and_the_end_wake_the_waiting_receiver_once_without_a_new_clone() {
        let (sender, mut receiver) = counted(4);
        let (wakes, waker) = counting();
        let mut cx = Context::from_waker(&waker);
        assert!(receiver.poll_recv(&mut cx).is_pending());
        sender.send(1).unwrap();
        assert_eq!(wakes.count(), 1);
        receiver.try_recv().unwrap();
        assert!(receiver.poll_recv(&mut cx).is_pending());
        assert_eq!(
            Arc::strong_count(&wakes),
            3,
            "ours, the waker, one kept: no new clone"
        );
        sender.send(2).unwrap();
        assert_eq!(wakes.count(), 2);
        drop(sender);
        assert_eq!(wakes.count(), 3);
    }

    #[test]
    fn room_waits_while_full_and_is_woken_when_an_item_is_taken() {
        let (sender, mut receiver) = counted(1);
        sender.send(1).unwrap();
        let (wakes, waker) = counting();
        let mut cx = Context::from_waker(&waker);
        let mut room = std::pin::pin!(sender.room());
        assert!(room.as_mut().poll(&mut cx).is_pending());
        receiver.try_recv().unwrap();
        assert_eq!(wakes.count(), 1);
        assert!(room.as_mut().poll(&mut cx).is_ready());
        sender.send(2).unwrap();
        assert_eq!(wakes.count(), 1, "a send does not wake the sender itself");
    }

    #[test]
    fn a_gone_receiver_never_blocks_the_sender() {
        let (sender, receiver) = counted(1);
        sender.send(1).unwrap();
        let (wakes, waker) = counting();
        let mut cx = Context::from_waker(&waker);
        let mut room = std::pin::pin!(sender.room());
        assert!(room.as_mut().poll(&mut cx).is_pending());
        drop(receiver);
        assert_eq!(wakes.count(), 1, "the waiting sender is woken");
        assert!(room.as_mut().poll(&mut cx).is_ready());
        assert!(sender.room().now_or_never().is_some());
        assert!(sender.receiver_gone());
        assert_eq!(sender.send(2), Err(Refused::ReceiverGone));
    }

    #[test]
    fn a_drained_burst_gives_its_slots_back() {
        let (sender, mut receiver) = counted(1024);
        for n in 0..100 {
            sender.send(n).unwrap();
        }
        while receiver.try_recv().is_ok() {}
        assert!(receiver.slots() <= KEPT_SLOTS);
    }

    #[test]
    fn the_side_state_is_shared_by_both_ends() {
        let (sender, receiver) = bounded::<u8, Count, _>(1, false);
        *sender.side() = true;
        assert!(*receiver.side());
    }

    #[test]
    fn a_subscriber_s_state_is_a_queue_a_waker_a_count_and_flags() {
        // One per connection, 10,000s of them: 32 (queue) + 16 (waker) + 8
        // (room) + 4 flags, padded, + 8 (the RefCell's borrow count).
        assert_eq!(std::mem::size_of::<RefCell<State<Arc<()>, bool>>>(), 72);
    }
}
