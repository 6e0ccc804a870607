//! How a WebSocket session ends: the reason, as the close frame and the
//! `pushlog_ws_closes_total` metric name it.

use actix_ws::CloseCode;

use super::outbound::Unsent;

/// The contract's close codes.
const CLOSE_UNAUTHENTICATED: u16 = 4001;
const CLOSE_FORBIDDEN: u16 = 4003;
const CLOSE_LAGGED: u16 = 4008;

/// Why a session ended, as the close frame says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CloseReason {
    /// The connection dropped, or our queue to it is gone: nothing to send.
    ClientLeft,
    /// The client sent a close frame; the protocol wants one back.
    ClientClosed,
    Unauthenticated,
    Forbidden,
    Lagged,
    Policy,
    TooBig,
    ProtocolError,
    HeartbeatTimeout,
    ShuttingDown,
    /// Authenticated, but every connection slot is taken.
    Full,
    /// A text message that is not UTF-8.
    NotUtf8,
    ServerError,
}

impl CloseReason {
    /// The reason as `pushlog_ws_closes_total` labels it.
    pub(super) fn label(self) -> &'static str {
        match self {
            CloseReason::ClientLeft => "client_left",
            CloseReason::ClientClosed => "client_closed",
            CloseReason::Unauthenticated => "unauthenticated",
            CloseReason::Forbidden => "forbidden",
            CloseReason::Lagged => "lagged",
            CloseReason::Policy => "policy",
            CloseReason::TooBig => "too_big",
            CloseReason::ProtocolError => "protocol_error",
            CloseReason::HeartbeatTimeout => "heartbeat_timeout",
            CloseReason::ShuttingDown => "shutting_down",
            CloseReason::Full => "full",
            CloseReason::NotUtf8 => "not_utf8",
            CloseReason::ServerError => "server_error",
        }
    }

    /// Whether the client broke the protocol (counted as malformed).
    pub(super) fn is_malformed_frame(self) -> bool {
        matches!(
            self,
            CloseReason::TooBig | CloseReason::ProtocolError | CloseReason::NotUtf8
        )
    }

    pub(super) fn code(self) -> CloseCode {
        match self {
            CloseReason::ClientLeft | CloseReason::ClientClosed => CloseCode::Normal,
            CloseReason::Unauthenticated => CloseCode::Other(CLOSE_UNAUTHENTICATED),
            CloseReason::Forbidden => CloseCode::Other(CLOSE_FORBIDDEN),
            CloseReason::Lagged => CloseCode::Other(CLOSE_LAGGED),
            CloseReason::Policy => CloseCode::Policy,
            CloseReason::TooBig => CloseCode::Size,
            CloseReason::ProtocolError => CloseCode::Protocol,
            CloseReason::HeartbeatTimeout | CloseReason::ShuttingDown => CloseCode::Away,
            CloseReason::ServerError => CloseCode::Error,
            CloseReason::Full => CloseCode::Again,
            CloseReason::NotUtf8 => CloseCode::Invalid,
        }
    }
}

/// Ends the session with a close frame carrying its reason and a message.
pub(super) struct Closing(pub(super) CloseReason, pub(super) String);

pub(super) fn closing(reason: CloseReason, message: impl Into<String>) -> Closing {
    Closing(reason, message.into())
}

/// A frame the outbound queue refused: the client reads too slowly, or is
/// gone.
impl From<Unsent> for Closing {
    fn from(unsent: Unsent) -> Closing {
        match unsent {
            Unsent::Full => closing(
                CloseReason::Lagged,
                "too far behind: reconnect and resume from your last event id",
            ),
            Unsent::Closed => closing(CloseReason::ClientLeft, ""),
        }
    }
}
