//! The feed a subscriber reads: SSE or WebSocket underneath, picked by the
//! transport, one interface on top.

use tokio::net::TcpStream;

use crate::sse::SseStream;
use crate::subscription::{FeedEnd, FeedItem, OpenError, Subscription};
use crate::transport::Transport;
use crate::ws::WsStream;

/// An open, confirmed subscription.
pub enum Feed {
    Sse(SseStream),
    Ws(WsStream),
}

impl Feed {
    /// Opens a subscription on `stream`; returns once the server has
    /// confirmed it (SSE: the 200 response head, sent after the server has
    /// subscribed; WebSocket: `subscribed`), so events published after this
    /// returns are delivered. nchan confirms nothing beyond the response
    /// head (or the 101); a subscriber that the channel's owner registers a
    /// moment later still gets every message, from the channel's buffer
    /// (`nchan_subscriber_first_message oldest`, on a fresh channel).
    pub async fn open(
        transport: Transport,
        stream: TcpStream,
        subscription: &Subscription<'_>,
    ) -> Result<Feed, OpenError> {
        match transport {
            Transport::Sse => SseStream::open(stream, subscription).await.map(Feed::Sse),
            Transport::Ws => WsStream::open(stream, subscription).await.map(Feed::Ws),
        }
    }

    pub async fn next(&mut self) -> Result<FeedItem, FeedEnd> {
        match self {
            Feed::Sse(sse) => sse.next().await,
            Feed::Ws(ws) => ws.next().await,
        }
    }
}
