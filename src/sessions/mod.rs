//! Sessions: how a feed reaches a client over each transport (SSE,
//! WebSocket), and the live/replay handover ([`replay`]) they share.

pub mod replay;
pub mod sse;
pub mod ws;

use std::time::Duration;

use crate::config::Config;

/// How the server keeps long-lived streams alive and tells clients to
/// reconnect: settings of the transports, not bounds on clients (those are
/// [`crate::limits::Limits`]). Shared by every session, never copied into one.
#[derive(Debug, Clone)]
pub struct StreamSettings {
    /// How long an SSE stream may stay silent before a `: ping` comment.
    pub heartbeat: Duration,
    /// How often a WebSocket is pinged; two intervals without a frame from
    /// the client close it.
    pub ws_ping: Duration,
    /// The `retry:` an SSE stream opens with, in milliseconds.
    pub sse_retry_ms: u64,
}

impl StreamSettings {
    pub fn from_config(config: &Config) -> StreamSettings {
        StreamSettings {
            heartbeat: config.heartbeat(),
            ws_ping: Duration::from_secs(config.ws_ping_secs),
            sse_retry_ms: config.sse_retry_ms,
        }
    }
}
