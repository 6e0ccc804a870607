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
    ended: bool,
}

impl Inbound {
    /// Frames longer than `max_frame_bytes` are refused with
    /// `ProtocolError::Overflow`.
    pub fn new(payload: Payload, max_frame_bytes: usize) -> Inbound {
        Inbound {
            payload,
            codec: Codec::new().max_size(max_frame_bytes),
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
