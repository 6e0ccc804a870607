//! The first request head of a connection, read and parsed by the edge
//! before it decides who serves the connection.

use std::time::Duration;

use actix_http::header::{
    CONTENT_LENGTH, HOST, HeaderMap, HeaderName, HeaderValue, TRANSFER_ENCODING, UPGRADE,
};
use actix_http::{Method, Uri};
use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::api::{STREAM_PATH, WEBSOCKET_PATH};

/// An unfinished head is read up to this, within the one request deadline,
/// then left to actix. It is actix-http's own bound on an unfinished head
/// (its `MAX_BUFFER_SIZE`), past which actix answers 431 at once: so a head
/// handed over is always decided without another wait, and no client gets
/// a second deadline by sending a long head slowly. Browsers' stream
/// requests, cookies included, fit in a fraction of it.
pub const MAX_HEAD_BYTES: usize = 128 * 1024;
/// The buffer a head is read into first; it grows for longer heads.
const FIRST_READ_BYTES: usize = 1024;
/// Headers parsed at most; a head with more goes to actix.
const MAX_HEADERS: usize = 64;

/// The long-lived routes the edge serves on the bare socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamRoute {
    /// `GET /events/stream`.
    ServerSentEvents,
    /// `GET /ws` with `Upgrade: websocket`.
    WebSocket,
}

/// A parsed head for one of the stream routes.
#[derive(Debug)]
pub struct StreamHead {
    pub route: StreamRoute,
    pub uri: Uri,
    pub headers: HeaderMap,
}

/// What the first bytes of a connection turned out to be.
#[derive(Debug)]
pub enum FirstRequest {
    /// A stream route; `rest` holds the bytes the client sent after the
    /// head (for a WebSocket, its first frames).
    Stream { head: StreamHead, rest: BytesMut },
    /// Anything else, complete or not, valid or not: actix serves it,
    /// starting from the bytes already read.
    Other(BytesMut),
    /// The client did not finish a head in time: answered `408`, closed.
    TimedOut,
    /// The client left before finishing a head.
    Gone,
}

/// Reads until the first head is complete, `MAX_HEAD_BYTES` are buffered,
/// or `timeout` passes; then classifies what was read.
pub async fn read_first_request<R>(io: &mut R, timeout: Duration) -> FirstRequest
where
    R: AsyncRead + Unpin,
{
    let mut buf = BytesMut::with_capacity(FIRST_READ_BYTES);
    let reading = async {
        loop {
            match classify(&buf) {
                Parse::Complete(len, head) => return Some((len, head)),
                Parse::NotAStream => return None,
                Parse::Partial if buf.len() >= MAX_HEAD_BYTES => return None,
                Parse::Partial => {}
            }
            if buf.capacity() == buf.len() {
                buf.reserve(buf.len());
            }
            match io.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return Some((0, None)),
                Ok(_) => {}
            }
        }
    };
    match tokio::time::timeout(timeout, reading).await {
        Ok(Some((_, None))) => FirstRequest::Gone,
        Ok(Some((len, Some(head)))) => {
            let rest = buf.split_off(len);
            FirstRequest::Stream { head, rest }
        }
        // Too long or not a stream: actix has the answers (431, 400).
        Ok(None) => FirstRequest::Other(buf),
        // Not handed on: actix would start its own timeout afresh.
        Err(_) => FirstRequest::TimedOut,
    }
}

enum Parse {
    /// A stream route's head, `usize` bytes long.
    Complete(usize, Option<StreamHead>),
    Partial,
    NotAStream,
}

fn classify(buf: &[u8]) -> Parse {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let len = match request.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Parse::Partial,
        Err(_) => return Parse::NotAStream,
    };
    match stream_head(&request) {
        Some(head) => Parse::Complete(len, Some(head)),
        None => Parse::NotAStream,
    }
}

/// The stream head in `request`, if it is an HTTP/1.1 `GET` of a stream
/// route whose every part converts cleanly; anything odd is actix's.
fn stream_head(request: &httparse::Request<'_, '_>) -> Option<StreamHead> {
    if request.method != Some(Method::GET.as_str()) || request.version != Some(1) {
        return None;
    }
    let target = request.path?;
    let path = target.split_once('?').map_or(target, |(path, _)| path);
    let mut headers = HeaderMap::with_capacity(request.headers.len());
    for header in request.headers.iter() {
        let name = HeaderName::from_bytes(header.name.as_bytes()).ok()?;
        let value = HeaderValue::from_bytes(header.value).ok()?;
        headers.append(name, value);
    }
    // A stream request has no body, and names one host. Anything else is
    // left to actix, which answers it (400, mostly), so that the two paths
    // never read the same bytes two ways.
    let hosts = headers.get_all(HOST).count();
    if hosts != 1 || headers.contains_key(CONTENT_LENGTH) || headers.contains_key(TRANSFER_ENCODING)
    {
        return None;
    }
    let route = match path {
        STREAM_PATH => StreamRoute::ServerSentEvents,
        WEBSOCKET_PATH if wants_websocket(&headers) => StreamRoute::WebSocket,
        _ => return None,
    };
    let uri = Uri::try_from(target).ok()?;
    Some(StreamHead {
        route,
        uri,
        headers,
    })
}

fn wants_websocket(headers: &HeaderMap) -> bool {
    headers
        .get(UPGRADE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(crate::sessions::ws::names_websocket)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn first(bytes: &[u8]) -> FirstRequest {
        let mut io = bytes;
        read_first_request(&mut io, Duration::from_secs(1)).await
    }

    #[tokio::test]
    async fn an_event_stream_request_is_a_stream_with_its_query_and_headers() {
        let request =
            b"GET /events/stream?since=42 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\n\r\n";
        let FirstRequest::Stream { head, rest } = first(request).await else {
            panic!("not classified as a stream");
        };
        assert_eq!(head.route, StreamRoute::ServerSentEvents);
        assert_eq!(head.uri.query(), Some("since=42"));
        assert_eq!(head.headers.get("authorization").unwrap(), "Bearer t");
        assert!(rest.is_empty());
    }

    #[tokio::test]
    async fn a_websocket_upgrade_keeps_the_frames_sent_after_its_head() {
        let request = b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\n\r\n\x81\x85";
        let FirstRequest::Stream { head, rest } = first(request).await else {
            panic!("not classified as a stream");
        };
        assert_eq!(head.route, StreamRoute::WebSocket);
        assert_eq!(&rest[..], b"\x81\x85");
    }

    #[tokio::test]
    async fn other_requests_go_to_actix_with_every_byte_read() {
        for request in [
            &b"POST /events HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}"[..],
            b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /events/stream HTTP/1.0\r\n\r\n",
            b"GET /events/stream HTTP/1.1\r\n\r\n",
            b"GET /events/stream HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            b"GET /events/stream HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
            b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"GARBAGE\r\n\r\n",
        ] {
            let FirstRequest::Other(read) = first(request).await else {
                panic!(
                    "{:?} was not left to actix",
                    String::from_utf8_lossy(request)
                );
            };
            assert_eq!(&read[..], request);
        }
    }

    #[tokio::test]
    async fn a_client_that_leaves_mid_head_is_gone() {
        assert!(matches!(
            first(b"GET /events/str").await,
            FirstRequest::Gone
        ));
    }

    #[tokio::test]
    async fn a_head_in_pieces_is_read_whole() {
        let (mut client, mut server) = tokio::io::duplex(64);
        let reading =
            tokio::spawn(
                async move { read_first_request(&mut server, Duration::from_secs(5)).await },
            );
        for piece in ["GET /events/st", "ream HTTP/1.1\r\nHo", "st: x\r\n", "\r\n"] {
            tokio::io::AsyncWriteExt::write_all(&mut client, piece.as_bytes())
                .await
                .unwrap();
            tokio::task::yield_now().await;
        }
        let first = reading.await.unwrap();
        assert!(matches!(first, FirstRequest::Stream { .. }), "{first:?}");
    }

    #[tokio::test]
    async fn a_client_too_slow_to_send_a_head_times_out() {
        let (mut client, mut server) = tokio::io::duplex(64);
        tokio::io::AsyncWriteExt::write_all(&mut client, b"GET /events/stream HT")
            .await
            .unwrap();
        let first = read_first_request(&mut server, Duration::from_millis(20)).await;
        assert!(matches!(first, FirstRequest::TimedOut), "{first:?}");
    }

    #[tokio::test]
    async fn a_long_head_sent_slowly_gets_one_deadline_for_all_of_it() {
        // Longer than a browser's, shorter than the limit, never finished:
        // read on until the deadline, not handed to actix (whose own timer
        // would start afresh).
        let (mut client, mut server) = tokio::io::duplex(64 * 1024);
        let mut partial = b"GET /events/stream HTTP/1.1\r\nX: ".to_vec();
        partial.resize(40 * 1024, b'a');
        tokio::io::AsyncWriteExt::write_all(&mut client, &partial)
            .await
            .unwrap();
        let first = read_first_request(&mut server, Duration::from_millis(50)).await;
        assert!(matches!(first, FirstRequest::TimedOut), "{first:?}");
    }

    #[tokio::test]
    async fn a_head_past_the_limit_goes_to_actix() {
        let mut request = b"GET /events/stream HTTP/1.1\r\nX: ".to_vec();
        request.resize(MAX_HEAD_BYTES + 10, b'a');
        let FirstRequest::Other(read) = first(&request).await else {
            panic!("an endless head was not left to actix");
        };
        assert!(read.len() >= MAX_HEAD_BYTES);
    }
}
