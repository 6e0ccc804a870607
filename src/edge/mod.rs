//! The edge: every accepted connection comes here first.
//!
//! A subscriber's connection lives for hours and carries a few hundred
//! bytes a minute, so what it costs while idle is what a push server costs.
//! actix's HTTP/1 dispatcher gives each connection an 8 KiB read buffer and
//! an 8 KiB write buffer for its whole life, more than the rest of a
//! subscriber put together. So the edge reads a connection's first request
//! head itself: a stream request (`GET /events/stream`, or a WebSocket
//! upgrade on `GET /ws`) is answered by the same application as any other,
//! and its response is carried on the bare socket, with no buffer beyond
//! the event bytes every subscriber shares ([`stream`]); its head is written
//! by actix's own HTTP/1 codec, so it reads as the dispatcher's would
//! ([`response`]). Every other connection goes to actix's dispatcher with
//! the bytes already read put back in front ([`rewind`]), and is served as
//! if the edge were not there, keep-alive and all. A stream request that
//! comes later on a kept-alive connection is served by actix too, only less
//! frugally.

mod head;
mod payload;
pub mod request_id;
mod response;
mod rewind;
mod stream;

use std::net::SocketAddr;
use std::time::Duration;

use actix_http::body::BoxBody;
use actix_http::{Request, Response};
use actix_service::Service;
use tokio::net::TcpStream;

pub use rewind::Rewind;

/// How long the edge waits on a client.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// For the first request head, as actix's own client request timeout.
    pub request: Duration,
    /// For a stream's write to a client that reads nothing.
    pub stalled_write: Duration,
}

/// Serves one accepted connection to its end: as a stream answered by `app`,
/// or through
/// `dispatcher` (actix's HTTP/1 service over the rewound connection), whose
/// error, if it failed the connection, is returned.
pub async fn serve_connection<D, A>(
    mut io: TcpStream,
    dispatcher: &D,
    app: &A,
    timeouts: Timeouts,
) -> Result<(), D::Error>
where
    D: Service<(Rewind<TcpStream>, Option<SocketAddr>)>,
    A: Service<Request, Error = actix_web::Error>,
    A::Response: Into<Response<BoxBody>>,
{
    // Pushes are small writes that must leave at once: without
    // TCP_NODELAY, Nagle's algorithm holds a frame back until the peer's
    // delayed ACK (~40 ms) whenever an earlier one is unacknowledged.
    let _ = io.set_nodelay(true);
    let peer = io.peer_addr().ok();
    match head::read_first_request(&mut io, timeouts.request).await {
        head::FirstRequest::Stream { head, rest } => {
            stream::serve(io, peer, head, rest, app, timeouts.stalled_write).await;
        }
        head::FirstRequest::Other(read) => {
            // Boxed: actix's dispatcher is large, and a stream connection
            // should not carry room for it.
            let served = Box::pin(dispatcher.call((Rewind::new(read.freeze(), io), peer)));
            served.await.map(|_| ())?;
        }
        head::FirstRequest::TimedOut => stream::time_out(io).await,
        head::FirstRequest::Gone => {}
    }
    Ok(())
}
