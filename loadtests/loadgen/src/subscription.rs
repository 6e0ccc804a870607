//! A subscription to one topic, whatever the transport: what it needs to
//! open, what it yields and how it fails. The SSE and WebSocket feeds both
//! speak these types, so subscribers see one interface.

use std::time::Duration;

use crate::http::HttpError;
use crate::probe::ReceivedEvent;
use crate::server::Server;
use crate::target::Target;
use crate::transport::{Start, Transport};

/// What a subscription needs to open.
#[derive(Debug, Clone)]
pub struct Subscription<'a> {
    pub server: Server,
    pub target: &'a Target,
    /// The bearer token (pushlog); nchan takes none.
    pub token: Option<&'a str>,
    pub topic: &'a str,
    pub start: Start,
}

impl Subscription<'_> {
    /// The request path that opens this subscription over `transport`.
    pub fn path(&self, transport: Transport) -> String {
        self.server
            .subscribe_path(transport, self.topic, self.start)
    }
}

/// Something read from a feed.
#[derive(Debug)]
pub enum FeedItem {
    Event(ReceivedEvent),
    /// An SSE `: ping` comment (nchan: `event: ping`) or a WebSocket ping
    /// frame (answered by tungstenite on the next read).
    Heartbeat,
    /// The replay after a `since` ended (WebSocket `caught_up`).
    CaughtUp,
    /// A message that is not an event we can read.
    Unreadable,
    /// Anything else the protocol allows (comments, pongs, …).
    Other,
}

/// Why a subscription could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("connect: {0}")]
    Connect(std::io::Error),
    #[error("http: {0}")]
    Http(#[from] HttpError),
    #[error("HTTP {status} {code}")]
    Status { status: u16, code: String },
    #[error("websocket: {0}")]
    Ws(#[from] tokio_tungstenite::tungstenite::Error),
    #[error("the server refused the subscription: {0}")]
    Refused(String),
    #[error("the connection ended before the subscription was confirmed: {0}")]
    Ended(FeedEnd),
    #[error("no confirmation within {0:?}")]
    Timeout(Duration),
}

impl OpenError {
    /// A short stable name, for counting failures by kind.
    pub fn kind(&self) -> String {
        match self {
            OpenError::Connect(error) => format!("connect_{:?}", error.kind()).to_lowercase(),
            OpenError::Http(error) => format!("http_{}", error.kind()),
            OpenError::Status { status, code } => format!("status_{status}_{code}"),
            OpenError::Ws(error) => format!("ws_{}", ws_error_kind(error)),
            OpenError::Refused(code) => format!("refused_{code}"),
            OpenError::Ended(end) => format!("ended_{}", end.kind()),
            OpenError::Timeout(_) => "timeout".into(),
        }
    }
}

/// A short stable name for a WebSocket error, for counting failures by
/// kind; opening and reading a WebSocket feed both fail with these.
pub fn ws_error_kind(error: &tokio_tungstenite::tungstenite::Error) -> String {
    use tokio_tungstenite::tungstenite::Error;
    match error {
        Error::ConnectionClosed | Error::AlreadyClosed => "closed".into(),
        Error::Io(io) => format!("io_{:?}", io.kind()).to_lowercase(),
        Error::Protocol(_) => "protocol".into(),
        Error::Http(response) => format!("http_{}", response.status().as_u16()),
        Error::Capacity(_) => "capacity".into(),
        _ => "other".into(),
    }
}

/// How a feed ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeedEnd {
    /// The server ended the stream without saying why.
    #[error("closed by the server")]
    Closed,
    /// SSE `event: reset` or WebSocket `reset`: the server cannot continue
    /// gap-free (`lagged`, `cursor_expired`, `cursor_unknown`).
    #[error("reset: {0}")]
    Reset(String),
    /// A WebSocket close frame with this code (4008: fell too far behind).
    #[error("websocket close {0}")]
    WsClose(u16),
    #[error("broken: {0}")]
    Broken(String),
}

impl FeedEnd {
    pub fn kind(&self) -> String {
        match self {
            FeedEnd::Closed => "closed".into(),
            FeedEnd::Reset(reason) => format!("reset_{reason}"),
            FeedEnd::WsClose(code) => format!("ws_close_{code}"),
            FeedEnd::Broken(kind) => kind.clone(),
        }
    }
}
