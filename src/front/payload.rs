//! The bytes a WebSocket client sends, handed from the front's socket
//! reader to the session as its request payload.
//!
//! actix-http's own payload channel would do, but its sending half cannot be
//! named outside the crate. This one is as small: a queue of chunks, the
//! consumer's waker, and the reader's waker for when the queue is full.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use actix_http::error::PayloadError;
use bytes::Bytes;
use futures_util::Stream;

/// Bytes buffered for the session before the reader stops reading, so a
/// client that floods the server is held back by TCP.
const MAX_BUFFERED_BYTES: usize = 32 * 1024;

#[derive(Default)]
struct Inner {
    chunks: VecDeque<Bytes>,
    buffered: usize,
    eof: bool,
    consumer: Option<Waker>,
    producer: Option<Waker>,
}

/// Creates the two ends.
pub fn channel() -> (PayloadSender, PayloadStream) {
    let inner = Rc::new(RefCell::new(Inner::default()));
    (
        PayloadSender {
            inner: inner.clone(),
        },
        PayloadStream { inner },
    )
}

/// The reader's end.
pub struct PayloadSender {
    inner: Rc<RefCell<Inner>>,
}

impl PayloadSender {
    pub fn feed(&mut self, data: Bytes) {
        if Rc::strong_count(&self.inner) == 1 {
            // The session is gone; nobody would read it.
            return;
        }
        let mut inner = self.inner.borrow_mut();
        inner.buffered += data.len();
        inner.chunks.push_back(data);
        if let Some(waker) = inner.consumer.take() {
            waker.wake();
        }
    }

    pub fn feed_eof(&mut self) {
        let mut inner = self.inner.borrow_mut();
        inner.eof = true;
        if let Some(waker) = inner.consumer.take() {
            waker.wake();
        }
    }

    /// Ready once there is room for more; also once the session is gone,
    /// when reading on only notices that the client left.
    pub async fn room(&self) {
        std::future::poll_fn(|cx| {
            let consumer_alive = Rc::strong_count(&self.inner) > 1;
            let mut inner = self.inner.borrow_mut();
            if inner.buffered < MAX_BUFFERED_BYTES || !consumer_alive {
                return Poll::Ready(());
            }
            register(&mut inner.producer, cx);
            Poll::Pending
        })
        .await;
    }
}

impl Drop for PayloadSender {
    /// A reader that stops, for whatever reason, ends the stream: the
    /// session must not wait for frames that cannot come.
    fn drop(&mut self) {
        self.feed_eof();
    }
}

/// The session's end: a stream of chunks that ends at the client's EOF.
pub struct PayloadStream {
    inner: Rc<RefCell<Inner>>,
}

impl Stream for PayloadStream {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut inner = self.inner.borrow_mut();
        if let Some(chunk) = inner.chunks.pop_front() {
            inner.buffered -= chunk.len();
            if let Some(waker) = inner.producer.take() {
                waker.wake();
            }
            return Poll::Ready(Some(Ok(chunk)));
        }
        if inner.eof {
            return Poll::Ready(None);
        }
        // Polled on every wake-up of its WebSocket session, events or not:
        // the waker is cloned only when it changes.
        register(&mut inner.consumer, cx);
        Poll::Pending
    }
}

/// Keeps `cx`'s waker in `slot`, cloning it only if it is a new one.
fn register(slot: &mut Option<Waker>, cx: &Context<'_>) {
    match slot {
        Some(waker) if waker.will_wake(cx.waker()) => {}
        _ => *slot = Some(cx.waker().clone()),
    }
}

impl Drop for PayloadStream {
    fn drop(&mut self) {
        // The reader may be waiting for room that will never come.
        if let Some(waker) = self.inner.borrow_mut().producer.take() {
            waker.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::{FutureExt, StreamExt};

    #[tokio::test]
    async fn chunks_arrive_in_order_and_the_stream_ends_at_eof() {
        let (mut sender, mut stream) = channel();
        sender.feed(Bytes::from_static(b"one"));
        sender.feed(Bytes::from_static(b"two"));
        sender.feed_eof();
        assert_eq!(stream.next().await.unwrap().unwrap(), "one");
        assert_eq!(stream.next().await.unwrap().unwrap(), "two");
        assert!(stream.next().await.is_none());
    }

    #[tokio::test]
    async fn a_full_queue_holds_the_reader_until_the_session_reads() {
        let (mut sender, mut stream) = channel();
        sender.feed(Bytes::from(vec![0u8; MAX_BUFFERED_BYTES]));
        assert!(sender.room().now_or_never().is_none(), "room while full");
        stream.next().await.unwrap().unwrap();
        assert!(sender.room().now_or_never().is_some(), "no room once read");
    }

    #[tokio::test]
    async fn a_reader_that_stops_ends_the_stream() {
        let (mut sender, mut stream) = channel();
        sender.feed(Bytes::from_static(b"last"));
        drop(sender);
        assert_eq!(stream.next().await.unwrap().unwrap(), "last");
        assert!(stream.next().await.is_none());
    }

    #[tokio::test]
    async fn a_gone_session_never_blocks_the_reader() {
        let (mut sender, stream) = channel();
        sender.feed(Bytes::from(vec![0u8; MAX_BUFFERED_BYTES]));
        drop(stream);
        assert!(sender.room().now_or_never().is_some());
        sender.feed(Bytes::from(vec![0u8; MAX_BUFFERED_BYTES]));
        assert_eq!(
            sender.inner.borrow().buffered,
            MAX_BUFFERED_BYTES,
            "not queued"
        );
    }
}
