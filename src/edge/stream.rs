//! Serving one stream request on the bare socket: the application answers
//! it as it would under actix's dispatcher, and this module carries the
//! answer, for as long as it streams, with no buffers of its own.

use std::future::{Future, poll_fn};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_http::body::{BoxBody, MessageBody};
use actix_http::{BoxedPayloadStream, Method, Payload, Request, Response, Version};
use actix_service::Service;
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};

use super::head::{StreamHead, StreamRoute};
use super::payload::{self, PayloadSender};
use super::response::{Framing, encode_head, end_body, write_body};

/// Client bytes read at a time: a WebSocket client's messages are small and
/// rate-limited, and an SSE client sends nothing at all.
const READ_CHUNK_BYTES: usize = 512;
/// How long a finished connection waits for the client to close its side,
/// so the last bytes are not cut off by a reset. actix's default.
const LINGER: Duration = Duration::from_secs(1);

/// Serves `head` with `app`, then closes the connection. A write that waits
/// longer than `stall` on a client that reads nothing drops it.
pub(super) async fn serve<IO, S>(
    mut io: IO,
    peer: Option<SocketAddr>,
    head: StreamHead,
    rest: BytesMut,
    app: &S,
    stall: Duration,
) where
    IO: AsyncRead + AsyncWrite + Unpin,
    S: Service<Request, Error = actix_web::Error>,
    S::Response: Into<Response<BoxBody>>,
{
    // A WebSocket's frames reach the session as the request's payload, as
    // they would from actix; an event stream's request has none.
    // `rest` shares the allocation the head was read into: it must not
    // live on with the connection.
    let (mut payload, request) = match head.route {
        StreamRoute::WebSocket => {
            let (mut sender, stream) = payload::channel();
            if !rest.is_empty() {
                sender.feed(Bytes::copy_from_slice(&rest));
            }
            drop(rest);
            let stream: BoxedPayloadStream = Box::pin(stream);
            let payload = Payload::from(stream);
            (Some(sender), Request::with_payload(payload))
        }
        StreamRoute::ServerSentEvents => {
            drop(rest);
            (None, Request::new())
        }
    };
    let request = with_head(request, head, peer);
    // Boxed: the application's future is needed only until it answers, and
    // inline it would make every connection's own future larger for good.
    let response: Response<BoxBody> = match Box::pin(app.call(request)).await {
        Ok(response) => response.into(),
        Err(error) => error.error_response().into(),
    };
    let (response, body) = response.into_parts();
    let (head, framing) = match encode_head(response, body.size()) {
        Ok(encoded) => encoded,
        Err(error) => {
            tracing::debug!(error = %error, "could not encode a response head");
            return linger(io).await;
        }
    };
    let sent = within(stall, io.write_all(&head)).await;
    // Gone before the body streams: only what every connection must keep
    // lives on in its future.
    drop(head);
    if sent.is_ok() {
        carry(&mut io, body, framing, payload.as_mut(), stall).await;
    }
    linger(io).await;
}

/// Answers a client that did not send a head in time, as actix would.
pub(super) async fn time_out<IO>(mut io: IO)
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let answer = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
    let _ = within(LINGER, io.write_all(answer)).await;
    linger(io).await;
}

/// `write`, failed with `TimedOut` if the client takes no bytes for
/// `stall`. Without the limit, a client that stops reading would hold its
/// connection for good, and the close frame that tells it why would never
/// leave. The first poll goes without a timer: almost every write completes
/// at once, and a timer per delivered event would cost more than the write.
async fn within<F>(stall: Duration, write: F) -> io::Result<()>
where
    F: Future<Output = io::Result<()>>,
{
    let mut write = std::pin::pin!(write);
    if let Poll::Ready(result) = poll_fn(|cx| Poll::Ready(write.as_mut().poll(cx))).await {
        return result;
    }
    tokio::time::timeout(stall, write)
        .await
        .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))
}

fn with_head(mut request: Request, head: StreamHead, peer: Option<SocketAddr>) -> Request {
    let target = request.head_mut();
    target.method = Method::GET;
    target.uri = head.uri;
    target.version = Version::HTTP_11;
    target.headers = head.headers;
    target.peer_addr = peer;
    request
}

/// Writes the body as it comes until it ends or the client leaves, and
/// meanwhile reads the client: into `payload` when there is one (a
/// WebSocket), else only to notice that it left.
async fn carry<IO>(
    io: &mut IO,
    body: BoxBody,
    framing: Framing,
    mut payload: Option<&mut PayloadSender>,
    stall: Duration,
) where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let mut body = std::pin::pin!(body);
    let mut client_open = true;
    loop {
        tokio::select! {
            read = read_client(io, payload.as_deref()), if client_open => match (read, payload.as_deref_mut()) {
                (Ok(None) | Err(_), Some(payload)) => {
                    // The session sees the end of its frames and winds
                    // down; the body ends after whatever it still says.
                    payload.feed_eof();
                    client_open = false;
                }
                // Nobody is left to stream to. (A client that only
                // half-closed is taken for gone too: an event stream's
                // client has no reason to, and so the stream of one that
                // left ends at once, not at the next write.)
                (Ok(None) | Err(_), None) => return,
                (Ok(Some(data)), Some(payload)) => payload.feed(data),
                // An event stream's client has nothing to say.
                (Ok(_), None) => {}
            },
            chunk = poll_fn(|cx| body.as_mut().poll_next(cx)) => match chunk {
                Some(Ok(data)) => {
                    if within(stall, write_body(io, framing, &data)).await.is_err() {
                        return;
                    }
                }
                Some(Err(error)) => {
                    // Ending without the last chunk tells the client the
                    // body broke off.
                    tracing::debug!(error = %error, "stream body failed");
                    return;
                }
                None => {
                    let _ = within(stall, end_body(io, framing)).await;
                    return;
                }
            },
        }
    }
}

/// Reads what the client sent (`None` at its end), waiting first while
/// `payload` is full so a client flooding the server is held back by TCP
/// instead of buffered.
async fn read_client<IO>(io: &mut IO, payload: Option<&PayloadSender>) -> io::Result<Option<Bytes>>
where
    IO: AsyncRead + Unpin,
{
    if let Some(payload) = payload {
        payload.room().await;
    }
    poll_fn(|cx| poll_read_chunk(io, cx)).await
}

/// One read, into a buffer on the stack of this poll: an idle connection's
/// future holds no read buffer while it waits, only what was read is copied
/// out.
fn poll_read_chunk<IO>(io: &mut IO, cx: &mut Context<'_>) -> Poll<io::Result<Option<Bytes>>>
where
    IO: AsyncRead + Unpin,
{
    let mut scratch = [0u8; READ_CHUNK_BYTES];
    let mut buf = ReadBuf::new(&mut scratch);
    match Pin::new(io).poll_read(cx, &mut buf) {
        Poll::Ready(Ok(())) if buf.filled().is_empty() => Poll::Ready(Ok(None)),
        Poll::Ready(Ok(())) => Poll::Ready(Ok(Some(Bytes::copy_from_slice(buf.filled())))),
        Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
        Poll::Pending => Poll::Pending,
    }
}

/// Sends FIN, then reads until the client closes too (or `LINGER` passes),
/// so bytes it sent last do not make the kernel reset the connection
/// before it has read ours.
async fn linger<IO>(mut io: IO)
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let _ = io.shutdown().await;
    let drain =
        async { while let Ok(Some(_)) = poll_fn(|cx| poll_read_chunk(&mut io, cx)).await {} };
    let _ = tokio::time::timeout(LINGER, drain).await;
}
