//! What a WebSocket client sends: frames decoded from the upgraded
//! request's payload, one message at a time.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use actix_codec::Decoder;
use actix_http::ws::{Codec, Frame, Message, ProtocolError};
use actix_web::dev::Payload;
use bytes::BytesMut;
use bytestring::ByteString;
use futures_util::Stream;

pub struct Inbound {
    payload: Payload,
    codec: Codec,
    /// Bytes of a frame not yet complete. Given back once empty: clients
    /// send little, and an idle connection should hold no buffer.
    buf: BytesMut,
    /// The codec checks its own limit only once a whole frame has arrived,
    /// so a header declaring 2^63 bytes would have it buffer without end:
    /// this is checked against each header before more is read.
    max_frame_bytes: usize,
    ended: bool,
}

impl Inbound {
    /// Frames longer than `max_frame_bytes` are refused with
    /// `ProtocolError::Overflow` as soon as their header says so.
    pub fn new(payload: Payload, max_frame_bytes: usize) -> Inbound {
        Inbound {
            payload,
            codec: Codec::new().max_size(max_frame_bytes),
            max_frame_bytes,
            buf: BytesMut::new(),
            ended: false,
        }
    }

    /// The next message; `None` once the client has gone. Cancel-safe: what
    /// was read stays in `self`.
    pub async fn recv(&mut self) -> Option<Result<Message, ProtocolError>> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message, ProtocolError>>> {
        loop {
            if self.ended {
                return Poll::Ready(None);
            }
            // Nothing buffered: no frame to find (the common case, a
            // wake-up for an event).
            let decoded = if self.buf.is_empty() {
                Ok(None)
            } else {
                self.codec.decode(&mut self.buf)
            };
            let decoded = decoded.and_then(|frame| match frame {
                Some(frame) => Ok(Some(frame)),
                None if declared_too_long(&self.buf, self.max_frame_bytes) => {
                    Err(ProtocolError::Overflow)
                }
                None => Ok(None),
            });
            match decoded {
                Ok(Some(frame)) => {
                    if self.buf.is_empty() {
                        self.buf = BytesMut::new();
                    }
                    return Poll::Ready(Some(message(frame)));
                }
                Ok(None) => {}
                Err(error) => {
                    self.ended = true;
                    return Poll::Ready(Some(Err(error)));
                }
            }
            match Pin::new(&mut self.payload).poll_next(cx) {
                Poll::Ready(Some(Ok(bytes))) => self.buf.extend_from_slice(&bytes),
                Poll::Ready(Some(Err(error))) => {
                    self.ended = true;
                    return Poll::Ready(Some(Err(ProtocolError::Io(io::Error::other(error)))));
                }
                Poll::Ready(None) => {
                    self.ended = true;
                    return Poll::Ready(None);
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// Whether the frame at the start of `buf` declares a payload longer than
/// `limit`; `false` while its length field has not fully arrived (RFC 6455
/// §5.2: a 7-bit length, or 126 and 16 bits, or 127 and 64 bits).
fn declared_too_long(buf: &[u8], limit: usize) -> bool {
    let Some(&second) = buf.get(1) else {
        return false;
    };
    let declared = match second & 0x7f {
        126 => match buf.get(2..4) {
            Some(field) => u64::from(u16::from_be_bytes([field[0], field[1]])),
            None => return false,
        },
        127 => match buf
            .get(2..10)
            .and_then(|field| <[u8; 8]>::try_from(field).ok())
        {
            Some(field) => u64::from_be_bytes(field),
            None => return false,
        },
        short => u64::from(short),
    };
    declared > limit as u64
}

fn message(frame: Frame) -> Result<Message, ProtocolError> {
    Ok(match frame {
        Frame::Text(bytes) => Message::Text(ByteString::try_from(bytes).map_err(|_| {
            ProtocolError::Io(io::Error::new(
                io::ErrorKind::InvalidData,
                "a text frame that is not UTF-8",
            ))
        })?),
        Frame::Binary(bytes) => Message::Binary(bytes),
        Frame::Continuation(item) => Message::Continuation(item),
        Frame::Ping(bytes) => Message::Ping(bytes),
        Frame::Pong(bytes) => Message::Pong(bytes),
        Frame::Close(reason) => Message::Close(reason),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_codec::Encoder;
    use actix_http::ws::CloseCode;
    use bytes::Bytes;
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

    #[tokio::test]
    async fn messages_arrive_whole_even_when_split_across_reads() {
        let bytes = client_frames(vec![
            Message::Text("hello".into()),
            Message::Ping(Bytes::from_static(b"p")),
            Message::Close(Some(CloseCode::Normal.into())),
        ]);
        let chunks = bytes.chunks(3).map(Bytes::copy_from_slice).collect();
        let mut inbound = Inbound::new(payload(chunks), 1024);
        assert_eq!(
            inbound.recv().await.unwrap().unwrap(),
            Message::Text("hello".into())
        );
        assert_eq!(
            inbound.recv().await.unwrap().unwrap(),
            Message::Ping(Bytes::from_static(b"p"))
        );
        assert!(matches!(
            inbound.recv().await,
            Some(Ok(Message::Close(Some(_))))
        ));
        assert!(inbound.recv().await.is_none(), "the client is gone");
    }

    #[tokio::test]
    async fn a_frame_over_the_limit_is_an_overflow_and_ends_the_stream() {
        let bytes = client_frames(vec![Message::Text("x".repeat(100).into())]);
        let mut inbound = Inbound::new(payload(vec![bytes]), 64);
        assert!(matches!(
            inbound.recv().await,
            Some(Err(ProtocolError::Overflow))
        ));
        assert!(inbound.recv().await.is_none());
    }

    #[tokio::test]
    async fn a_header_declaring_more_than_the_limit_is_an_overflow_before_its_payload_arrives() {
        // A header declaring 2^63 - 1 bytes, then a client that never ends
        // (a payload that is pending forever would hang this test if the
        // header were not enough).
        let mut header = vec![0x81, 0xff];
        header.extend_from_slice(&(u64::MAX >> 1).to_be_bytes());
        header.extend_from_slice(&[0; 4]);
        let stream = futures_util::stream::iter([Ok(Bytes::from(header))])
            .chain(futures_util::stream::pending());
        let boxed: actix_http::BoxedPayloadStream = Box::pin(stream);
        let mut inbound = Inbound::new(Payload::from(boxed), 64 * 1024);
        assert!(matches!(
            inbound.recv().await,
            Some(Err(ProtocolError::Overflow))
        ));
    }

    #[test]
    fn each_length_encoding_is_checked_against_the_limit() {
        // 7-bit, 16-bit and 64-bit length fields, masked.
        assert!(!declared_too_long(&[0x81, 0x80 | 125], 125));
        assert!(declared_too_long(&[0x81, 0x80 | 125], 124));
        assert!(
            !declared_too_long(&[0x81, 0x80 | 126, 0x01], 10),
            "incomplete"
        );
        assert!(declared_too_long(&[0x81, 0x80 | 126, 0x01, 0x00], 255));
        assert!(!declared_too_long(&[0x81, 0x80 | 126, 0x01, 0x00], 256));
        let mut long = vec![0x81, 0xff];
        long.extend_from_slice(&(1u64 << 40).to_be_bytes());
        assert!(declared_too_long(&long, usize::MAX >> 24));
        assert!(!declared_too_long(&long[..9], 0), "incomplete");
        assert!(!declared_too_long(&[0x81], 0), "no length yet");
    }

    #[tokio::test]
    async fn text_that_is_not_utf8_is_a_protocol_error() {
        let bytes = client_frames(vec![Message::Binary(Bytes::new())]);
        // The same frame with the text opcode and an invalid byte.
        let mut frame = BytesMut::new();
        Codec::new()
            .client_mode()
            .encode(Message::Binary(Bytes::from_static(&[0xff])), &mut frame)
            .unwrap();
        frame[0] = 0x81;
        let mut inbound = Inbound::new(payload(vec![bytes, frame.freeze()]), 64);
        assert!(matches!(inbound.recv().await, Some(Ok(Message::Binary(_)))));
        assert!(matches!(
            inbound.recv().await,
            Some(Err(ProtocolError::Io(_)))
        ));
    }

    #[tokio::test]
    async fn an_unmasked_client_frame_is_refused() {
        let mut frame = BytesMut::new();
        Codec::new()
            .encode(Message::Text("hi".into()), &mut frame)
            .unwrap();
        let mut inbound = Inbound::new(payload(vec![frame.freeze()]), 64);
        assert!(matches!(
            inbound.recv().await,
            Some(Err(ProtocolError::UnmaskedFrame))
        ));
    }
}
