//! What a WebSocket session sends: a bounded queue of text frames and a small
//! lane of control frames, drained by the response body itself.
//!
//! The session loop never waits on the client's socket: it hands text frames
//! to a bounded queue without waiting, and takes events from its feeds only
//! while that queue has room. A client that reads slowly so slows its own
//! feeds down (a replay goes at the client's pace), and one that falls too
//! far behind while live overflows its hub queue and is closed with 4008.
//! Control frames (ping, pong) take a separate lane that is served first,
//! and the close frame a slot of its own that is served before both, so a
//! close goes out right after the bytes already written, even when the
//! control lane is full (a client flooding pings is closed with 1008).
//!
//! The response body is the writer. Whatever carries the connection (the
//! edge, or actix's dispatcher) polls it whenever the socket can take
//! bytes. Text frames arrive encoded: an event's frame is encoded once per
//! event and shared by every connection (`wire`), and a
//! lone frame goes out as those shared bytes, uncopied; frames that are
//! ready together are copied into one chunk. One delivered event so costs
//! one wake-up of the connection and one write, and a burst of frames goes
//! out in one write. The queue is a [`local_channel`], not actix-ws's
//! session with its Tokio channel: no per-recipient frame header, no atomics
//! per frame, and no block of slots allocated for every idle connection.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use actix_codec::Encoder;
use actix_http::ws::{CloseCode, CloseReason, Codec, Message};
use actix_web::HttpResponse;
use actix_web::body::{BodyStream, BoxBody, MessageBody};
use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use futures_util::Stream;

use crate::local_channel::{self, Count, Refused};

/// Control frames in flight; a client flooding pings while not reading hits
/// it and is dropped.
const CONTROL_QUEUE: usize = 16;
/// A chunk stops growing past this size; the rest goes in the next one.
const MAX_CHUNK_BYTES: usize = 64 * 1024;
/// RFC 6455: a control frame's payload is at most 125 bytes, two of which
/// are the close code.
const MAX_CLOSE_REASON_BYTES: usize = 123;

enum Control {
    Ping,
    Pong(Bytes),
}

#[derive(Debug, PartialEq, Eq)]
pub enum Unsent {
    /// The queue is full: the client is not reading fast enough.
    Full,
    /// The connection is gone.
    Closed,
}

/// What the session has queued beside its text frames. The session and the
/// body live on the same worker thread (a session is spawned where its
/// connection is served), so the channel's `RefCell` is all the
/// synchronisation they need.
#[derive(Default)]
struct Lanes {
    control: VecDeque<Control>,
    close: Option<CloseReason>,
}

/// Whole text frames, encoded, with the control lane and close slot beside
/// them.
type FrameSender = local_channel::Sender<Bytes, Count, Lanes>;
type FrameReceiver = local_channel::Receiver<Bytes, Count, Lanes>;

pub struct Outbound {
    frames: FrameSender,
}

impl Outbound {
    /// Takes over the body of the upgrade `response`; `capacity` bounds the
    /// text frames waiting for the client. Returns the queues and the
    /// response to answer the upgrade with.
    pub fn attach(response: HttpResponse, capacity: usize) -> (Outbound, HttpResponse) {
        let (frames, queued) = local_channel::bounded(capacity, Lanes::default());
        let writer = FrameWriter {
            queued,
            codec: Codec::new(),
            buf: BytesMut::new(),
            lone: None,
            ended: false,
        };
        let response = response.set_body(writer.boxed_body());
        (Outbound { frames }, response)
    }

    /// Queues a text message.
    pub fn text(&self, text: ByteString) -> Result<(), Unsent> {
        self.frame(crate::domain::wire::ws_text_frame(&text))
    }

    /// Queues a whole text frame, already encoded, as
    /// [`SharedEvent::ws_frame`](crate::domain::wire::SharedEvent::ws_frame) gives.
    pub fn frame(&self, frame: Bytes) -> Result<(), Unsent> {
        self.frames.send(frame).map_err(|refused| match refused {
            Refused::Full => Unsent::Full,
            Refused::ReceiverGone => Unsent::Closed,
        })
    }

    /// Whether a text frame can be queued now.
    pub fn has_room(&self) -> bool {
        self.frames.has_room()
    }

    /// Resolves once a text frame can be queued (or the connection is gone).
    pub async fn room(&self) {
        self.frames.room().await;
    }

    pub fn ping(&self) -> Result<(), Unsent> {
        self.control(Control::Ping)
    }

    pub fn pong(&self, payload: Bytes) -> Result<(), Unsent> {
        self.control(Control::Pong(payload))
    }

    /// Sends the close frame after the bytes already written; what is still
    /// queued is dropped, and the connection ends. A reason longer than a
    /// control frame may carry is cut at a character boundary.
    pub fn close(self, code: CloseCode, reason: &str) {
        self.frames.side().close = Some(CloseReason {
            code,
            description: Some(truncate(reason, MAX_CLOSE_REASON_BYTES).to_owned()),
        });
        self.frames.wake_receiver();
    }

    fn control(&self, frame: Control) -> Result<(), Unsent> {
        if self.frames.receiver_gone() {
            return Err(Unsent::Closed);
        }
        {
            let mut lanes = self.frames.side();
            if lanes.control.len() >= CONTROL_QUEUE {
                return Err(Unsent::Full);
            }
            lanes.control.push_back(frame);
        }
        self.frames.wake_receiver();
        Ok(())
    }
}

/// The longest prefix of `text` of at most `max` bytes that ends on a
/// character boundary.
fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The upgraded connection's response body: the frames the session queued,
/// encoded as they become ready.
struct FrameWriter {
    queued: FrameReceiver,
    codec: Codec,
    buf: BytesMut,
    /// A frame taken alone, to go out as its own bytes; a second one ready
    /// with it moves both into `buf`.
    lone: Option<Bytes>,
    /// A close frame is written, or the session is gone: end after `buf`.
    ended: bool,
}

impl FrameWriter {
    fn boxed_body(self) -> BoxBody {
        BodyStream::new(self).boxed()
    }

    fn encode(&mut self, message: Message) {
        if let Err(error) = self.codec.encode(message, &mut self.buf) {
            // Only an oversized frame fails, and the server sends none.
            tracing::error!(%error, "a WebSocket frame could not be encoded; dropping the connection");
            self.ended = true;
        }
    }

    /// Encodes what is queued: the close frame alone if the session sent
    /// one (the session going away without one, the client left, ends the
    /// connection too), else control frames first, then text frames up to a
    /// chunk's worth. Finding no text frame registers the body's waker.
    fn take_queued(&mut self, cx: &mut Context<'_>) {
        let (close, control) = {
            let mut lanes = self.queued.side();
            (lanes.close.take(), std::mem::take(&mut lanes.control))
        };
        if let Some(reason) = close {
            self.encode(Message::Close(Some(reason)));
            self.ended = true;
        }
        if self.queued.sender_closed() {
            self.ended = true;
        }
        for frame in control {
            if self.ended {
                break;
            }
            match frame {
                Control::Ping => self.encode(Message::Ping(Bytes::new())),
                Control::Pong(payload) => self.encode(Message::Pong(payload)),
            }
        }
        while !self.ended && self.chunk_len() < MAX_CHUNK_BYTES {
            let Poll::Ready(Some(frame)) = self.queued.poll_recv(cx) else {
                break;
            };
            self.push_frame(frame);
        }
    }

    fn chunk_len(&self) -> usize {
        self.buf.len() + self.lone.as_ref().map_or(0, Bytes::len)
    }

    /// Control frames are encoded into `buf` before any text frame is
    /// taken, so a frame is lone only when nothing else goes with it.
    fn push_frame(&mut self, frame: Bytes) {
        if self.chunk_len() == 0 {
            self.lone = Some(frame);
            return;
        }
        if let Some(lone) = self.lone.take() {
            self.buf.extend_from_slice(&lone);
        }
        self.buf.extend_from_slice(&frame);
    }
}

impl Stream for FrameWriter {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if !this.ended {
            this.take_queued(cx);
        }
        if let Some(lone) = this.lone.take() {
            return Poll::Ready(Some(Ok(lone)));
        }
        if !this.buf.is_empty() {
            // The buffer goes with the chunk rather than being reused, so a
            // connection does not keep the largest burst it ever sent (a
            // replay can fill a 64 KiB chunk) for the rest of its life.
            return Poll::Ready(Some(Ok(std::mem::take(&mut this.buf).freeze())));
        }
        if this.ended {
            return Poll::Ready(None);
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_codec::Decoder;
    use actix_http::ws::Frame;
    use futures_util::task::noop_waker_ref;

    /// What the client would read from the next chunk, if there is one.
    fn next_chunk(body: &mut BoxBody) -> Poll<Option<Vec<Frame>>> {
        let mut cx = Context::from_waker(noop_waker_ref());
        match Pin::new(body).poll_next(&mut cx) {
            Poll::Ready(Some(Ok(bytes))) => {
                // Server frames are unmasked, as a client expects them.
                let mut codec = Codec::new().client_mode();
                let mut buf = BytesMut::from(&bytes[..]);
                let mut frames = Vec::new();
                while let Some(frame) = codec.decode(&mut buf).expect("a valid frame") {
                    frames.push(frame);
                }
                assert!(buf.is_empty(), "the chunk holds whole frames only");
                Poll::Ready(Some(frames))
            }
            Poll::Ready(Some(Err(_))) => unreachable!("the body never fails"),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn opened(capacity: usize) -> (Outbound, BoxBody) {
        let (outbound, response) =
            Outbound::attach(HttpResponse::SwitchingProtocols().finish(), capacity);
        (outbound, response.into_body())
    }

    #[test]
    fn a_lone_frame_goes_out_as_the_shared_bytes_it_came_in() {
        let (outbound, mut body) = opened(8);
        let frame = crate::domain::wire::ws_text_frame("an event");
        outbound.frame(frame.clone()).unwrap();
        let mut cx = Context::from_waker(noop_waker_ref());
        let Poll::Ready(Some(Ok(chunk))) = Pin::new(&mut body).poll_next(&mut cx) else {
            panic!("a chunk");
        };
        assert_eq!(chunk, frame);
        assert_eq!(chunk.as_ptr(), frame.as_ptr(), "not copied");
    }

    #[test]
    fn frames_that_are_ready_go_out_together_pings_first() {
        let (outbound, mut body) = opened(8);
        assert!(
            next_chunk(&mut body).is_pending(),
            "nothing queued, nothing written"
        );
        outbound.text("one".into()).unwrap();
        outbound.text("two".into()).unwrap();
        outbound.ping().unwrap();
        let Poll::Ready(Some(frames)) = next_chunk(&mut body) else {
            panic!("a chunk");
        };
        assert_eq!(
            frames,
            vec![
                Frame::Ping(Bytes::new()),
                Frame::Text(Bytes::from_static(b"one")),
                Frame::Text(Bytes::from_static(b"two")),
            ]
        );
        assert!(next_chunk(&mut body).is_pending());
    }

    #[test]
    fn a_full_queue_is_reported_and_room_returns_once_the_body_drains_it() {
        let (outbound, mut body) = opened(2);
        outbound.text("a".into()).unwrap();
        outbound.text("b".into()).unwrap();
        assert!(!outbound.has_room());
        assert_eq!(outbound.text("c".into()), Err(Unsent::Full));
        assert!(matches!(next_chunk(&mut body), Poll::Ready(Some(frames)) if frames.len() == 2));
        assert!(outbound.has_room());
    }

    #[test]
    fn a_close_goes_out_after_what_was_written_and_ends_the_body_dropping_the_rest() {
        let (outbound, mut body) = opened(8);
        outbound.text("written".into()).unwrap();
        assert!(matches!(next_chunk(&mut body), Poll::Ready(Some(frames)) if frames.len() == 1));
        outbound.text("still queued".into()).unwrap();
        outbound.close(CloseCode::Other(4008), &"x".repeat(300));
        let Poll::Ready(Some(frames)) = next_chunk(&mut body) else {
            panic!("the close frame");
        };
        let [Frame::Close(Some(reason))] = frames.as_slice() else {
            panic!("only the close frame, got {frames:?}");
        };
        assert_eq!(reason.code, CloseCode::Other(4008));
        assert_eq!(
            reason.description.as_deref().map(str::len),
            Some(MAX_CLOSE_REASON_BYTES)
        );
        assert!(
            matches!(next_chunk(&mut body), Poll::Ready(None)),
            "the body ends"
        );
    }

    #[test]
    fn a_session_gone_without_a_close_ends_the_body() {
        let (outbound, mut body) = opened(8);
        drop(outbound);
        assert!(
            matches!(next_chunk(&mut body), Poll::Ready(None)),
            "the body ends"
        );
    }

    #[test]
    fn a_close_reason_fits_a_control_frame_and_stays_valid_utf8() {
        assert_eq!(truncate("short", MAX_CLOSE_REASON_BYTES), "short");
        let long = "é".repeat(100); // 200 bytes, two per character
        let cut = truncate(&long, MAX_CLOSE_REASON_BYTES);
        assert_eq!(
            cut.len(),
            122,
            "cut at the last boundary at or below 123 bytes"
        );
        assert!(long.starts_with(cut));
    }
}
