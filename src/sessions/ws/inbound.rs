//! What a WebSocket client sends: actix-ws decodes the frames and joins a
//! fragmented message; this module only stands in front of it, so that no
//! client can make it buffer more than the frame limit.
//!
//! actix-ws (like actix-http's codec beneath it) compares a frame's length
//! with the limit only once the whole frame has arrived: a header declaring
//! 2^63 bytes would have it buffer for as long as the client sends. So the
//! request's payload reaches actix-ws through a [`FrameGuard`] that reads
//! every frame header as the bytes pass and ends the payload with
//! [`PayloadError::Overflow`] as soon as a header declares more than the
//! limit, or a fragmented message's frames add up to more. What actix-ws
//! ever holds is then one message within the limit plus one read.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use actix_http::error::PayloadError;
use actix_web::dev::Payload;
use actix_ws::ProtocolError;
use bytes::Bytes;
use futures_util::Stream;

/// The longest frame header: 2 bytes, a 64-bit length, a 4-byte mask.
const MAX_HEADER_BYTES: usize = 14;

/// Whether `error`, as actix-ws reports a failed payload, is the guard
/// refusing a message over the limit.
pub fn is_overflow(error: &ProtocolError) -> bool {
    match error {
        ProtocolError::Overflow => true,
        ProtocolError::Io(error) => error
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<PayloadError>())
            .is_some_and(|inner| matches!(inner, PayloadError::Overflow)),
        _ => false,
    }
}

/// Whether `error` is a text message that is not UTF-8 (close code 1007).
pub fn is_not_utf8(error: &ProtocolError) -> bool {
    matches!(error, ProtocolError::Io(error) if error.kind() == io::ErrorKind::InvalidData)
}

/// A client's payload, passed through unchanged while every frame header in
/// it is within `max_message_bytes`.
pub struct FrameGuard {
    payload: Payload,
    max_message_bytes: u64,
    /// Where the stream stands between two frames.
    at: Position,
    /// The payload bytes of the fragmented message under way, if one is.
    message_bytes: Option<u64>,
    ended: bool,
}

#[derive(Debug, Clone, Copy)]
enum Position {
    /// Reading a header: the bytes seen so far.
    Header {
        bytes: [u8; MAX_HEADER_BYTES],
        len: usize,
    },
    /// Inside a frame's payload: the bytes still to pass.
    Payload { left: u64 },
}

const NEXT_HEADER: Position = Position::Header {
    bytes: [0; MAX_HEADER_BYTES],
    len: 0,
};

impl FrameGuard {
    pub fn new(payload: Payload, max_message_bytes: usize) -> FrameGuard {
        FrameGuard {
            payload,
            max_message_bytes: max_message_bytes as u64,
            at: NEXT_HEADER,
            message_bytes: None,
            ended: false,
        }
    }

    /// Follows the frames through `chunk`; `Err` once a header declares too
    /// much.
    fn inspect(&mut self, mut chunk: &[u8]) -> Result<(), PayloadError> {
        while !chunk.is_empty() {
            match &mut self.at {
                Position::Payload { left } => {
                    let passed = (*left).min(chunk.len() as u64);
                    *left -= passed;
                    // `passed` is at most `chunk.len()`, a `usize`.
                    chunk = &chunk[passed as usize..];
                    if *left == 0 {
                        self.at = NEXT_HEADER;
                    }
                }
                Position::Header { bytes, len } => {
                    bytes[*len] = chunk[0];
                    *len += 1;
                    chunk = &chunk[1..];
                    if let Some(header) = Header::parse(&bytes[..*len]) {
                        // The mask, if any, is still to come, then the payload.
                        let left = header.mask_len.saturating_add(header.payload_len);
                        self.at = if left == 0 {
                            NEXT_HEADER
                        } else {
                            Position::Payload { left }
                        };
                        self.admit(header)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Checks one frame's declared length, alone and as part of the
    /// fragmented message it continues.
    fn admit(&mut self, header: Header) -> Result<(), PayloadError> {
        if header.payload_len > self.max_message_bytes {
            return Err(PayloadError::Overflow);
        }
        // Control frames (opcodes 8 and up) may come between fragments and
        // are no part of the message.
        if header.opcode >= 8 {
            return Ok(());
        }
        let so_far = match header.opcode {
            0 => self.message_bytes.unwrap_or(0),
            _ => 0,
        };
        let total = so_far.saturating_add(header.payload_len);
        if total > self.max_message_bytes {
            return Err(PayloadError::Overflow);
        }
        self.message_bytes = (!header.fin).then_some(total);
        Ok(())
    }
}

impl Stream for FrameGuard {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(None);
        }
        let polled = Pin::new(&mut this.payload).poll_next(cx);
        if let Poll::Ready(Some(Ok(chunk))) = &polled
            && let Err(refused) = this.inspect(chunk)
        {
            this.ended = true;
            return Poll::Ready(Some(Err(refused)));
        }
        polled
    }
}

/// What the guard needs of a frame header (RFC 6455 §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    fin: bool,
    opcode: u8,
    /// The mask's bytes, which follow the length field.
    mask_len: u64,
    payload_len: u64,
}

impl Header {
    /// The header at the start of `bytes`, as soon as its length field is
    /// there (the mask is not needed to judge the length).
    fn parse(bytes: &[u8]) -> Option<Header> {
        let [first, second, rest @ ..] = bytes else {
            return None;
        };
        let mask_len: u64 = if second & 0x80 != 0 { 4 } else { 0 };
        let payload_len = match second & 0x7f {
            126 => u64::from(u16::from_be_bytes(rest.get(..2)?.try_into().ok()?)),
            127 => u64::from_be_bytes(rest.get(..8)?.try_into().ok()?),
            short => u64::from(short),
        };
        Some(Header {
            fin: first & 0x80 != 0,
            opcode: first & 0x0f,
            mask_len,
            payload_len,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_codec::Encoder;
    use actix_http::ws::{Codec, Item, Message};
    use bytes::BytesMut;
    use futures_util::StreamExt;

    /// A payload carrying `chunks`, as a client's socket would deliver them.
    fn payload(chunks: Vec<Bytes>) -> Payload {
        let stream = futures_util::stream::iter(chunks.into_iter().map(Ok));
        let boxed: actix_http::BoxedPayloadStream = Box::pin(stream);
        Payload::from(boxed)
    }

    /// Frames as a client sends them: masked.
    fn client_frames(messages: Vec<Message>) -> Bytes {
        let mut codec = Codec::new().client_mode();
        let mut out = BytesMut::new();
        for message in messages {
            codec.encode(message, &mut out).expect("encodes");
        }
        out.freeze()
    }

    /// Everything the guard lets through, and whether it refused.
    async fn through_guard(chunks: Vec<Bytes>, limit: usize) -> (Vec<u8>, bool) {
        let mut guard = FrameGuard::new(payload(chunks), limit);
        let mut passed = Vec::new();
        while let Some(chunk) = guard.next().await {
            match chunk {
                Ok(bytes) => passed.extend_from_slice(&bytes),
                Err(PayloadError::Overflow) => return (passed, true),
                Err(other) => panic!("unexpected {other}"),
            }
        }
        (passed, false)
    }

    fn split(bytes: &Bytes, size: usize) -> Vec<Bytes> {
        bytes.chunks(size).map(Bytes::copy_from_slice).collect()
    }

    #[tokio::test]
    async fn frames_within_the_limit_pass_unchanged_however_they_are_split() {
        let bytes = client_frames(vec![
            Message::Text("x".repeat(100).into()),
            Message::Ping(Bytes::from_static(b"p")),
            Message::Text("y".repeat(70_000).into()),
            Message::Close(None),
        ]);
        for size in [1, 3, 13, 4096, bytes.len()] {
            let (passed, refused) = through_guard(split(&bytes, size), 70_000).await;
            assert!(!refused, "split in {size}-byte reads");
            assert_eq!(passed, bytes, "split in {size}-byte reads");
        }
    }

    #[tokio::test]
    async fn a_frame_over_the_limit_is_refused_at_its_header() {
        let bytes = client_frames(vec![
            Message::Text("ok".into()),
            Message::Text("x".repeat(300).into()),
        ]);
        let (passed, refused) = through_guard(split(&bytes, 1), 200).await;
        assert!(refused);
        // The first frame (8 bytes masked) passed, and of the second only
        // what came before its length field was whole (3 of 4 bytes).
        assert_eq!(passed.len(), 8 + 3);
    }

    #[tokio::test]
    async fn a_header_declaring_2_63_bytes_is_refused_before_its_payload_arrives() {
        // A client that never ends: a payload pending forever would hang
        // this test if the header were not enough.
        let mut header = vec![0x81, 0xff];
        header.extend_from_slice(&(u64::MAX >> 1).to_be_bytes());
        header.extend_from_slice(&[0; 4]);
        let stream = futures_util::stream::iter([Ok(Bytes::from(header))])
            .chain(futures_util::stream::pending());
        let boxed: actix_http::BoxedPayloadStream = Box::pin(stream);
        let mut guard = FrameGuard::new(Payload::from(boxed), 64 * 1024);
        assert!(matches!(
            guard.next().await,
            Some(Err(PayloadError::Overflow))
        ));
        assert!(guard.next().await.is_none(), "nothing more is read");
    }

    #[tokio::test]
    async fn a_fragmented_message_is_limited_as_a_whole_with_pings_between_fragments() {
        let fragments = |last: &str| {
            client_frames(vec![
                Message::Continuation(Item::FirstText(Bytes::from("a".repeat(60)))),
                Message::Ping(Bytes::from_static(b"between")),
                Message::Continuation(Item::Continue(Bytes::from("b".repeat(60)))),
                Message::Continuation(Item::Last(Bytes::from(last.to_owned()))),
            ])
        };
        let within = fragments(&"c".repeat(80));
        assert_eq!(
            through_guard(split(&within, 5), 200).await,
            (within.to_vec(), false)
        );
        let over = fragments(&"c".repeat(81));
        assert!(through_guard(split(&over, 5), 200).await.1);
    }

    #[tokio::test]
    async fn a_message_after_a_finished_fragmented_one_starts_from_zero() {
        let bytes = client_frames(vec![
            Message::Continuation(Item::FirstText(Bytes::from("a".repeat(150)))),
            Message::Continuation(Item::Last(Bytes::from("b".repeat(50)))),
            Message::Text("c".repeat(200).into()),
        ]);
        assert!(!through_guard(vec![bytes], 200).await.1);
    }

    #[test]
    fn a_header_is_read_as_soon_as_its_length_field_has_arrived() {
        assert_eq!(Header::parse(&[0x81]), None);
        assert_eq!(
            Header::parse(&[0x81, 0x80 | 5]),
            Some(Header {
                fin: true,
                opcode: 1,
                mask_len: 4,
                payload_len: 5
            })
        );
        let sixteen_bit = [0x02, 126, 0x01, 0x00];
        assert_eq!(Header::parse(&sixteen_bit[..3]), None);
        assert_eq!(
            Header::parse(&sixteen_bit).map(|h| h.payload_len),
            Some(256)
        );
        let mut long = vec![0x80, 127];
        long.extend_from_slice(&(1u64 << 40).to_be_bytes());
        assert_eq!(Header::parse(&long[..9]), None);
        assert_eq!(Header::parse(&long).map(|h| h.payload_len), Some(1 << 40));
    }

    #[test]
    fn an_overflow_is_recognised_however_actix_ws_wraps_it() {
        assert!(is_overflow(&ProtocolError::Overflow));
        assert!(is_overflow(&ProtocolError::Io(io::Error::other(
            PayloadError::Overflow
        ))));
        assert!(!is_overflow(&ProtocolError::Io(io::Error::other(
            "Exceeded maximum continuation size"
        ))));
        assert!(!is_overflow(&ProtocolError::UnmaskedFrame));
    }
}
