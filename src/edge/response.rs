//! Writing a response on the bare socket: the head, encoded by actix's own
//! HTTP/1 codec exactly as its dispatcher would, then the body as it comes,
//! framed for HTTP/1.1 without copying the bytes every subscriber shares.

use std::io::{self, IoSlice};

use actix_codec::Encoder;
use actix_http::body::BodySize;
use actix_http::h1::{Codec, Message};
use actix_http::{ConnectionType, Response, ServiceConfig, StatusCode};
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// How a response body goes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `101 Switching Protocols`: the body is the new protocol's bytes.
    Upgraded,
    /// A body of known size, sent as is after `Content-Length`.
    Sized,
    /// A body that streams: `Transfer-Encoding: chunked`.
    Chunked,
}

impl Framing {
    pub fn of(status: StatusCode, size: BodySize) -> Framing {
        match (status, size) {
            (StatusCode::SWITCHING_PROTOCOLS, _) => Framing::Upgraded,
            (_, BodySize::Stream) => Framing::Chunked,
            (_, BodySize::None | BodySize::Sized(_)) => Framing::Sized,
        }
    }
}

/// The head of `response`, with `Date` from `http`'s clock and the framing
/// headers for a body of `size`. Every response but an upgrade closes the
/// connection when it ends: the edge serves one request per connection, and
/// a client reconnects for the next.
pub fn encode_head(
    mut response: Response<()>,
    size: BodySize,
    http: &ServiceConfig,
) -> io::Result<BytesMut> {
    if response.head().connection_type() != ConnectionType::Upgrade {
        response
            .head_mut()
            .set_connection_type(ConnectionType::Close);
    }
    let mut out = BytesMut::new();
    Codec::new(http.clone()).encode(Message::Item((response, size)), &mut out)?;
    Ok(out)
}

/// Writes one piece of the body. A chunk goes out with its framing in one
/// vectored write, without copying it: the bytes of an event are shared by
/// every subscriber.
pub async fn write_body<W>(io: &mut W, framing: Framing, data: &Bytes) -> io::Result<()>
where
    W: AsyncWrite + Unpin,
{
    if data.is_empty() {
        // An empty chunk would end a chunked body.
        return Ok(());
    }
    match framing {
        Framing::Upgraded | Framing::Sized => io.write_all(data).await,
        Framing::Chunked => {
            let (line, len) = chunk_size_line(data.len());
            write_all_vectored(io, &mut [&line[..len], data, b"\r\n"]).await
        }
    }
}

/// Ends a body: the last chunk of a chunked one.
pub async fn end_body<W>(io: &mut W, framing: Framing) -> io::Result<()>
where
    W: AsyncWrite + Unpin,
{
    match framing {
        Framing::Chunked => io.write_all(b"0\r\n\r\n").await,
        Framing::Upgraded | Framing::Sized => Ok(()),
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

    fn head(response: Response<()>, size: BodySize) -> String {
        text(&encode_head(response, size, &ServiceConfig::default()).unwrap())
    }

    #[actix_web::test]
    async fn a_streaming_body_is_chunked_and_closes_the_connection() {
        assert_eq!(
            Framing::of(StatusCode::OK, BodySize::Stream),
            Framing::Chunked
        );
        let head = head(response(StatusCode::OK), BodySize::Stream);
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(head.contains("content-type: text/event-stream\r\n"));
        assert!(head.contains("transfer-encoding: chunked\r\n"));
        assert!(head.contains("connection: close\r\n"));
        assert!(head.contains("date: "));
        assert!(head.ends_with("\r\n\r\n"));
    }

    #[actix_web::test]
    async fn an_error_body_has_its_length() {
        let status = StatusCode::UNAUTHORIZED;
        assert_eq!(Framing::of(status, BodySize::Sized(17)), Framing::Sized);
        let head = head(response(status), BodySize::Sized(17));
        assert!(head.starts_with("HTTP/1.1 401 Unauthorized\r\n"), "{head}");
        assert!(head.contains("content-length: 17\r\n"));
        assert!(head.contains("connection: close\r\n"));
        assert!(!head.contains("chunked"));
    }

    #[actix_web::test]
    async fn an_upgrade_keeps_the_connection_for_the_new_protocol() {
        let status = StatusCode::SWITCHING_PROTOCOLS;
        assert_eq!(Framing::of(status, BodySize::Stream), Framing::Upgraded);
        let mut upgrade = response(status);
        upgrade
            .head_mut()
            .set_connection_type(ConnectionType::Upgrade);
        let head = head(upgrade, BodySize::Stream);
        assert!(head.contains("connection: upgrade\r\n"), "{head}");
        assert!(!head.contains("chunked"));
        assert!(!head.contains("content-length"));
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
