//! Writing a response on the bare socket: the head, encoded by actix's own
//! HTTP/1 codec exactly as its dispatcher would, then the body as it comes,
//! framed for HTTP/1.1 without copying the bytes every subscriber shares.

use std::io::{self, IoSlice};

use actix_codec::Encoder;
use actix_http::body::BodySize;
use actix_http::h1::{Codec, Message};
use actix_http::{ConnectionType, Response, ResponseHead, ServiceConfig, StatusCode};
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// How a response body goes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    /// `101 Switching Protocols`: the body is the new protocol's bytes.
    Upgraded,
    /// Sent as is: a body of known size after `Content-Length`, or a stream
    /// the application asked not to chunk, ended by the close.
    Sized,
    /// A body that streams: `Transfer-Encoding: chunked`.
    Chunked,
    /// A status that carries no body (1xx, 204, 304): none is sent.
    Bodiless,
}

impl Framing {
    /// Decided from the same facts actix's codec writes the head from, so
    /// the head and the body always agree.
    fn of(head: &ResponseHead, size: BodySize) -> Framing {
        let status = head.status;
        if status == StatusCode::SWITCHING_PROTOCOLS {
            Framing::Upgraded
        } else if status.is_informational()
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED
        {
            Framing::Bodiless
        } else if size == BodySize::Stream && head.chunked() {
            Framing::Chunked
        } else {
            Framing::Sized
        }
    }
}

thread_local! {
    /// actix's HTTP/1 settings, for its head encoding and its date clock:
    /// one per worker thread, like the dispatcher's own, and held by no
    /// connection.
    static HTTP1: ServiceConfig = ServiceConfig::default();
}

/// The head of `response`, with `Date` and the framing headers for a body
/// of `size`, and how to frame that body. Every response but an upgrade
/// closes the connection when it ends: the edge serves one request per
/// connection, and a client reconnects for the next.
pub(super) fn encode_head(
    mut response: Response<()>,
    size: BodySize,
) -> io::Result<(BytesMut, Framing)> {
    let framing = Framing::of(response.head(), size);
    let connection = match framing {
        Framing::Upgraded => ConnectionType::Upgrade,
        Framing::Sized | Framing::Chunked | Framing::Bodiless => ConnectionType::Close,
    };
    response.head_mut().set_connection_type(connection);
    let mut out = BytesMut::new();
    HTTP1
        .with(|http| Codec::new(http.clone()).encode(Message::Item((response, size)), &mut out))?;
    Ok((out, framing))
}

/// Writes one piece of the body. A chunk goes out with its framing in one
/// vectored write, without copying it: the bytes of an event are shared by
/// every subscriber.
pub(super) async fn write_body<W>(io: &mut W, framing: Framing, data: &Bytes) -> io::Result<()>
where
    W: AsyncWrite + Unpin,
{
    if data.is_empty() {
        // An empty chunk would end a chunked body.
        return Ok(());
    }
    match framing {
        Framing::Upgraded | Framing::Sized => io.write_all(data).await,
        Framing::Bodiless => Ok(()),
        Framing::Chunked => {
            let (line, len) = chunk_size_line(data.len());
            write_all_vectored(io, &mut [&line[..len], data, b"\r\n"]).await
        }
    }
}

/// Ends a body: the last chunk of a chunked one.
pub(super) async fn end_body<W>(io: &mut W, framing: Framing) -> io::Result<()>
where
    W: AsyncWrite + Unpin,
{
    match framing {
        Framing::Chunked => io.write_all(b"0\r\n\r\n").await,
        Framing::Upgraded | Framing::Sized | Framing::Bodiless => Ok(()),
    }
}

/// `{size in hex}\r\n`, on the stack: this runs once per delivered event.
fn chunk_size_line(size: usize) -> ([u8; 18], usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut line = [0u8; 18];
    let digits = (usize::BITS - size.leading_zeros()).div_ceil(4).max(1) as usize;
    for (i, slot) in line[..digits].iter_mut().enumerate() {
        let shift = 4 * (digits - 1 - i);
        *slot = HEX[(size >> shift) & 0xf];
    }
    line[digits] = b'\r';
    line[digits + 1] = b'\n';
    (line, digits + 2)
}

/// At most three parts: a chunk's size line, its bytes, its end.
async fn write_all_vectored<W>(io: &mut W, parts: &mut [&[u8]]) -> io::Result<()>
where
    W: AsyncWrite + Unpin,
{
    let mut parts = &mut parts[..];
    while !parts.is_empty() {
        let mut slices = [IoSlice::new(&[]); 3];
        for (slice, part) in slices.iter_mut().zip(parts.iter()) {
            *slice = IoSlice::new(part);
        }
        let count = parts.len().min(slices.len());
        let mut written = io.write_vectored(&slices[..count]).await?;
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        while let Some(first) = parts.first_mut() {
            if written < first.len() {
                *first = &first[written..];
                break;
            }
            written -= first.len();
            parts = &mut parts[1..];
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_http::header::{CONTENT_TYPE, HeaderValue};

    fn response(status: StatusCode) -> Response<()> {
        let mut response = Response::with_body(status, ());
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        response
    }

    fn text(bytes: &[u8]) -> String {
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    fn head(response: Response<()>, size: BodySize) -> (String, Framing) {
        let (head, framing) = encode_head(response, size).unwrap();
        (text(&head), framing)
    }

    #[actix_web::test]
    async fn a_streaming_body_is_chunked_and_closes_the_connection() {
        let (head, framing) = head(response(StatusCode::OK), BodySize::Stream);

        assert_eq!(framing, Framing::Chunked);
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(head.contains("content-type: text/event-stream\r\n"));
        assert!(head.contains("transfer-encoding: chunked\r\n"));
        assert!(head.contains("connection: close\r\n"));
        assert!(head.contains("date: "));
        assert!(head.ends_with("\r\n\r\n"));
    }

    #[actix_web::test]
    async fn an_error_body_has_its_length() {
        let (head, framing) = head(response(StatusCode::UNAUTHORIZED), BodySize::Sized(17));

        assert_eq!(framing, Framing::Sized);
        assert!(head.starts_with("HTTP/1.1 401 Unauthorized\r\n"), "{head}");
        assert!(head.contains("content-length: 17\r\n"));
        assert!(head.contains("connection: close\r\n"));
        assert!(!head.contains("chunked"));
    }

    #[actix_web::test]
    async fn an_upgrade_keeps_the_connection_for_the_new_protocol() {
        let mut upgrade = response(StatusCode::SWITCHING_PROTOCOLS);
        upgrade
            .head_mut()
            .set_connection_type(ConnectionType::Upgrade);

        let (head, framing) = head(upgrade, BodySize::Stream);

        assert_eq!(framing, Framing::Upgraded);
        assert!(head.contains("connection: upgrade\r\n"), "{head}");
        assert!(!head.contains("chunked"));
        assert!(!head.contains("content-length"));
    }

    #[actix_web::test]
    async fn a_stream_the_application_asked_not_to_chunk_is_sent_as_is_until_the_close() {
        let mut unchunked = response(StatusCode::OK);
        unchunked.head_mut().no_chunking(true);

        let (head, framing) = head(unchunked, BodySize::Stream);

        assert_eq!(framing, Framing::Sized);
        assert!(!head.contains("chunked"), "{head}");
        assert!(!head.contains("content-length"), "{head}");
        assert!(head.contains("connection: close\r\n"));
    }

    #[actix_web::test]
    async fn a_status_without_a_body_sends_none() {
        let (head, framing) = head(response(StatusCode::NO_CONTENT), BodySize::Sized(5));
        let mut out = Vec::new();
        write_body(&mut out, framing, &Bytes::from_static(b"stray"))
            .await
            .unwrap();

        assert_eq!(framing, Framing::Bodiless);
        assert!(!head.contains("content-length"), "{head}");
        assert!(out.is_empty());
    }

    #[tokio::test]
    async fn chunks_carry_their_size_and_the_body_ends_with_a_zero_chunk() {
        let mut out = Vec::new();
        let data = Bytes::from_static(b"data: 1\n\n");
        write_body(&mut out, Framing::Chunked, &data).await.unwrap();
        write_body(&mut out, Framing::Chunked, &Bytes::new())
            .await
            .unwrap();
        end_body(&mut out, Framing::Chunked).await.unwrap();
        assert_eq!(text(&out), "9\r\ndata: 1\n\n\r\n0\r\n\r\n");
    }

    #[test]
    fn chunk_size_lines_are_lowercase_hex() {
        for (size, line) in [
            (1, "1\r\n"),
            (9, "9\r\n"),
            (255, "ff\r\n"),
            (4096, "1000\r\n"),
        ] {
            let (bytes, len) = chunk_size_line(size);
            assert_eq!(text(&bytes[..len]), line);
        }
        let (bytes, len) = chunk_size_line(usize::MAX);
        assert_eq!(text(&bytes[..len]), format!("{:x}\r\n", usize::MAX));
    }

    #[tokio::test]
    async fn upgraded_bytes_go_out_unframed() {
        let mut out = Vec::new();
        let frame = Bytes::from_static(b"\x81\x02hi");
        write_body(&mut out, Framing::Upgraded, &frame)
            .await
            .unwrap();
        end_body(&mut out, Framing::Upgraded).await.unwrap();
        assert_eq!(out, b"\x81\x02hi");
    }
}
