//! The WebSocket session. actix-ws makes the handshake and reads the
//! client's messages, bounded before it buffers them ([`inbound`]); what the
//! session sends goes through a queue of its own that the response body
//! drains, and never waits on the client ([`outbound`]).
//!
//! Each connection runs one loop ([`connection`]): a single `select!` over
//! the client's messages, its feeds, the ping clock, the token's expiry and
//! shutdown. What the client says is handled in [`commands`], what the
//! feeds deliver in [`feeds`] (with [`subscriptions`], which merges them
//! into one ordered stream), and how a session ends in [`close`].

mod close;
mod commands;
mod connection;
mod feeds;
mod inbound;
mod outbound;
mod protocol;
mod rate;
mod subscriptions;

use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::AggregatedMessageStream;
use tracing::Instrument;

use crate::auth::{AuthError, Authenticator, Principal};
use crate::fanout::Shard;
use crate::limits::{Admission, Limits};
use crate::metrics::{GaugeGuard, Malformed, Metrics};
use crate::sessions::StreamSettings;
use crate::shutdown::Shutdown;
use crate::store::EventLog;
use close::{CloseReason, Closing};
use connection::Connection;
use inbound::FrameGuard;
use outbound::Outbound;

/// Text frames a session may queue for the client beyond what its feeds
/// hold back: its answers to the client's own messages. A client that asks
/// and never reads fills it and is closed.
const OUTBOUND_FRAMES: usize = 64;

/// Everything a session needs from the server.
pub struct SessionServices {
    pub log: EventLog,
    /// This worker's share of the hub.
    pub shard: Shard,
    pub auth: Authenticator,
    pub metrics: Arc<Metrics>,
    /// Shared with every session: read, never copied per connection.
    pub limits: Arc<Limits>,
    pub streams: Arc<StreamSettings>,
    pub shutdown: Shutdown,
    /// Its place among the server's connections: pending until the
    /// connection authenticates, then a slot.
    pub admission: Admission,
}

/// Whether an `Upgrade` header's value names the WebSocket protocol: one of
/// its comma-separated tokens is `websocket` (RFC 7230 §6.7), case aside.
pub fn names_websocket(upgrade: &str) -> bool {
    upgrade
        .split(',')
        .any(|token| token.trim().eq_ignore_ascii_case("websocket"))
}

/// Completes the upgrade of `request` and starts its session on the current
/// worker. `payload` is the upgraded request's body, which carries the
/// client's frames; `principal` is the identity from the upgrade request,
/// if it carried a valid token. Fails only if `request` is no WebSocket
/// handshake.
pub fn open(
    services: SessionServices,
    principal: Result<Option<Principal>, AuthError>,
    request: &HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, actix_web::Error> {
    let max_message_bytes = services.limits.ws_max_frame_bytes;
    let guarded = FrameGuard::new(payload.into_inner(), max_message_bytes);
    let (response, session, messages) = actix_ws::handle(request, web_payload(request, guarded)?)?;
    let messages = messages
        .max_frame_size(max_message_bytes)
        .aggregate_continuations()
        .max_continuation_size(max_message_bytes);
    // actix-ws's own session sends through a Tokio channel that its
    // response body drains: a block of slots allocated per connection
    // whatever its capacity, atomics on every send, and a frame header
    // encoded per recipient. `outbound` is single-threaded and every
    // recipient of an event shares one encoded frame, so actix-ws's session
    // and body are dropped here and the response carries `outbound`'s body.
    drop(session);
    let (outbound, response) = Outbound::attach(response, OUTBOUND_FRAMES);
    actix_web::rt::spawn(run(services, principal, outbound, messages));
    Ok(response)
}

/// `stream` as `request`'s body extractor, which is what actix-ws reads.
fn web_payload(
    request: &HttpRequest,
    stream: impl futures_util::Stream<Item = Result<bytes::Bytes, actix_http::error::PayloadError>>
    + 'static,
) -> Result<web::Payload, actix_web::Error> {
    use actix_web::FromRequest;
    let boxed: actix_http::BoxedPayloadStream = Box::pin(stream);
    let mut payload = actix_web::dev::Payload::from(boxed);
    web::Payload::from_request(request, &mut payload).into_inner()
}

/// Runs a session to its end.
async fn run(
    services: SessionServices,
    principal: Result<Option<Principal>, AuthError>,
    outbound: Outbound,
    messages: AggregatedMessageStream,
) {
    let connection_id = uuid::Uuid::new_v4().to_string();
    let span = tracing::info_span!("ws", connection_id = %connection_id);
    async move {
        let _gauge = GaugeGuard::hold(services.metrics.clone(), |m| &m.ws_connections);
        let mut connection = Connection::new(services, outbound, connection_id);
        let Closing(reason, message) = connection.serve(principal, messages).await;
        tracing::debug!(?reason, %message, "websocket closed");
        let metrics = &connection.services.metrics;
        metrics.ws_closed(reason.label());
        if reason.is_malformed_frame() {
            metrics.malformed(Malformed::WebSocketFrame);
        }
        if reason != CloseReason::ClientLeft {
            connection.outbound.close(reason.code(), &message);
        }
    }
    .instrument(span)
    .await;
}
