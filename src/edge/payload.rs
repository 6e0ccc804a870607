//! The bytes a WebSocket client sends, handed from the edge's socket
//! reader to the session as its request payload.
//!
//! actix-http's own payload channel would do, but its sending half cannot be
//! named outside the crate. This one is a [`local_channel`] of chunks,
//! bounded by the bytes they hold.

use std::pin::Pin;
use std::task::{Context, Poll};

use actix_http::error::PayloadError;
use bytes::Bytes;
use futures_util::Stream;

use crate::local_channel::{self, Refused, Weight};

/// Bytes buffered for the session before the reader stops reading, so a
/// client that floods the server is held back by TCP.
const MAX_BUFFERED_BYTES: usize = 32 * 1024;

/// A chunk weighs its length: the bound is on bytes, not reads.
struct ByteLen;

impl Weight<Bytes> for ByteLen {
    fn weight(chunk: &Bytes) -> usize {
        chunk.len()
    }
}

/// Creates the two ends.
pub fn channel() -> (PayloadSender, PayloadStream) {
    let (sender, receiver) = local_channel::bounded(MAX_BUFFERED_BYTES, ());
    (PayloadSender(sender), PayloadStream(receiver))
}

/// The reader's end. Dropping it, the reader stopping for whatever reason,
/// ends the stream: the session must not wait for frames that cannot come.
pub struct PayloadSender(local_channel::Sender<Bytes, ByteLen>);

impl PayloadSender {
    /// Hands `data` to the session. The reader waits for [`Self::room`]
    /// before each read, and a chunk is taken whatever its size while the
    /// bound is not reached, so a chunk read is never refused for room.
    pub fn feed(&mut self, data: Bytes) {
        match self.0.send(data) {
            // The session is gone; nobody would read it.
            Ok(()) | Err(Refused::ReceiverGone) => {}
            Err(Refused::Full) => {
                // Dropping the chunk would corrupt the frames that follow;
                // ending them makes the session close instead.
                tracing::error!("a client chunk was read without room; ending its frames");
                self.0.close();
            }
        }
    }

    pub fn feed_eof(&mut self) {
        self.0.close();
    }

    /// Ready once there is room for more; also once the session is gone,
    /// when reading on only notices that the client left.
    pub async fn room(&self) {
        self.0.room().await;
    }
}

/// The session's end: a stream of chunks that ends at the client's EOF.
/// Dropping it wakes a reader waiting for room that will never come.
pub struct PayloadStream(local_channel::Receiver<Bytes, ByteLen>);

impl Stream for PayloadStream {
    type Item = Result<Bytes, PayloadError>;

    /// Polled on every wake-up of its WebSocket session, events or not,
    /// which the channel's kept waker makes cheap.
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().0.poll_recv(cx).map(|chunk| chunk.map(Ok))
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
        assert_eq!(sender.0.room_left(), 0, "not queued");
    }
}
