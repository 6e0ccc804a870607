//! What a WebSocket session sends: a bounded queue of text frames and a small
//! lane of control frames, drained by the response body itself.
//!
//! The session loop never waits on the client's socket: it hands text frames
//! to a bounded queue with `try_send`, and takes events from its feeds only
//! while that queue has room. A client that reads slowly so slows its own
//! feeds down (a replay goes at the client's pace), and one that falls too
//! far behind while live overflows its hub queue and is closed with 4008.
//! Control frames (ping, pong) take a separate lane that is served first,
//! and the close frame a slot of its own that is served before both, so a
//! close goes out right after the bytes already written, even when the
//! control lane is full (a client flooding pings is closed with 1008).
//!
//! The response body is the writer. The HTTP dispatcher polls it whenever
//! the socket can take bytes; it encodes every frame that is ready into one
//! chunk. One delivered event so costs one wake-up of the connection and one
//! write, and a burst of frames goes out in one write. (A writer task
//! feeding actix-ws's own channel cost two more hand-offs per frame, and a
//! task and a queue more per connection; loadgen measured 5 % less CPU per
//! delivery without them.)

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use actix_codec::Encoder;
use actix_http::ws::{Codec, Message};
use actix_web::HttpResponse;
use actix_web::body::{BodyStream, BoxBody, MessageBody};
use actix_ws::{CloseCode, CloseReason};
use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use futures_util::Stream;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};

/// Control frames in flight; a client flooding pings while not reading hits
/// it and is dropped.
const CONTROL_QUEUE: usize = 16;

/// Control frames travel boxed: a Tokio channel allocates a block of 32
/// slots up front, and a slot the size of a pointer instead of a `Control`
/// saves a kilobyte on every connection. Control frames are rare (a ping
/// per interval), so the allocation per frame costs nothing that shows.
type ControlFrame = Box<Control>;
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

pub struct Outbound {
    data: mpsc::Sender<ByteString>,
    control: mpsc::Sender<ControlFrame>,
    close: oneshot::Sender<CloseReason>,
}

impl Outbound {
    /// Takes over the body of actix-ws's upgrade `response`; `capacity`
    /// bounds the text frames waiting for the client. Returns the queues and
    /// the response to answer the upgrade with.
    pub fn attach(response: HttpResponse, capacity: usize) -> (Outbound, HttpResponse) {
        let (data, data_rx) = mpsc::channel(capacity.max(1));
        let (control, control_rx) = mpsc::channel(CONTROL_QUEUE);
        let (close, close_rx) = oneshot::channel();
        let response = response.map_body(|_, upgrade| {
            FrameWriter {
                data: data_rx,
                control: control_rx,
                close: Some(close_rx),
                codec: Codec::new(),
                buf: BytesMut::new(),
                ended: false,
                _upgrade: upgrade,
            }
            .boxed_body()
        });
        (
            Outbound {
                data,
                control,
                close,
            },
            response,
        )
    }

    pub fn text(&self, frame: ByteString) -> Result<(), Unsent> {
        self.data.try_send(frame).map_err(|error| match error {
            TrySendError::Full(_) => Unsent::Full,
            TrySendError::Closed(_) => Unsent::Closed,
        })
    }

    /// Whether a text frame can be queued now.
    pub fn has_room(&self) -> bool {
        self.data.capacity() > 0
    }

    /// Resolves once a text frame can be queued (or the connection is gone).
    pub async fn room(&self) {
        // The permit is released at once: this only waits for space.
        let _ = self.data.reserve().await;
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
        let _ = self.close.send(CloseReason {
            code,
            description: Some(truncate(reason, MAX_CLOSE_REASON_BYTES).to_owned()),
        });
    }

    fn control(&self, frame: Control) -> Result<(), Unsent> {
        self.control
            .try_send(Box::new(frame))
            .map_err(|error| match error {
                TrySendError::Full(_) => Unsent::Full,
                TrySendError::Closed(_) => Unsent::Closed,
            })
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
    data: mpsc::Receiver<ByteString>,
    control: mpsc::Receiver<ControlFrame>,
    /// Taken once it has resolved: the close frame, or the session gone.
    close: Option<oneshot::Receiver<CloseReason>>,
    codec: Codec,
    buf: BytesMut,
    /// A close frame is written, or the session is gone: end after `buf`.
    ended: bool,
    /// actix-ws's own body, never polled. It must live as long as the
    /// connection: dropping it is what tells the session's `MessageStream`
    /// that the connection has ended.
    _upgrade: BoxBody,
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

    /// Encodes the close frame if the session sent it; the session going
    /// away without one (the client left) ends the connection too.
    fn take_close(&mut self, cx: &mut Context<'_>) {
        let Some(close) = self.close.as_mut() else {
            return;
        };
        let Poll::Ready(outcome) = Pin::new(close).poll(cx) else {
            return;
        };
        self.close = None;
        if let Ok(reason) = outcome {
            self.encode(Message::Close(Some(reason)));
        }
        self.ended = true;
    }

    fn take_control(&mut self, cx: &mut Context<'_>) {
        while !self.ended {
            match self.control.poll_recv(cx) {
                Poll::Ready(Some(frame)) => match *frame {
                    Control::Ping => self.encode(Message::Ping(Bytes::new())),
                    Control::Pong(payload) => self.encode(Message::Pong(payload)),
                },
                Poll::Ready(None) => self.ended = true,
                Poll::Pending => return,
            }
        }
    }

    fn take_data(&mut self, cx: &mut Context<'_>) {
        while !self.ended && self.buf.len() < MAX_CHUNK_BYTES {
            match self.data.poll_recv(cx) {
                Poll::Ready(Some(text)) => self.encode(Message::Text(text)),
                Poll::Ready(None) => self.ended = true,
                Poll::Pending => return,
            }
        }
    }
}

impl Stream for FrameWriter {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        this.take_close(cx);
        this.take_control(cx);
        this.take_data(cx);
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
