//! The WebSocket session: one loop per connection, a single `select!` over
//! client messages, the connection's feeds, the heartbeat, the token's
//! expiry and shutdown. actix-ws makes the handshake and reads the client's
//! messages, bounded before it buffers them (see [`inbound`]); what the
//! session sends goes through a queue of its own that the response body
//! drains, and never waits on the client (see [`outbound`]).

mod inbound;
mod outbound;
mod protocol;
mod rate;
mod subscriptions;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::{AggregatedMessage, AggregatedMessageStream, CloseCode, ProtocolError};
use bytestring::ByteString;
use tokio::time::{Instant, MissedTickBehavior};
use tracing::Instrument;

use crate::auth::{Authenticator, Principal};
use crate::domain::cursor::Since;
use crate::domain::event::TopicPattern;
use crate::domain::read_scope::ReadScope;
use crate::domain::resume::{LogBounds, ResetReason};
use crate::domain::type_filter::TypeFilter;
use crate::fanout::{Filter, Shard};
use crate::limits::{Admission, Limits};
use crate::metrics::{GaugeGuard, Malformed, Metrics, Transport};
use crate::sessions::StreamSettings;
use crate::sessions::replay::{Feed, FeedEnd, Start};
use crate::shutdown::Shutdown;
use crate::store::{EventLog, ReadError};
use inbound::FrameGuard;
use outbound::{Outbound, Unsent};
use protocol::{ClientMessage, RequestId, ServerMessage};
use subscriptions::{Reopen, Subscriptions, Update};

/// How long a connection without a token may take to send `auth`.
const AUTH_DEADLINE: Duration = Duration::from_secs(5);
/// Malformed or unknown messages tolerated before closing with 1008.
const MAX_MALFORMED: u32 = 5;

/// Text frames a session may queue for the client beyond what its feeds
/// hold back: its answers to the client's own messages. A client that asks
/// and never reads fills it and is closed.
const OUTBOUND_FRAMES: usize = 64;

/// The contract's close codes.
const CLOSE_UNAUTHENTICATED: u16 = 4001;
const CLOSE_FORBIDDEN: u16 = 4003;
const CLOSE_LAGGED: u16 = 4008;

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

/// Why a session ended, as the close frame says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
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
    fn label(self) -> &'static str {
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
    fn is_malformed_frame(self) -> bool {
        matches!(
            self,
            CloseReason::TooBig | CloseReason::ProtocolError | CloseReason::NotUtf8
        )
    }

    fn code(self) -> CloseCode {
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

/// Ends the session with a close frame carrying `reason` and a message.
struct Closing(CloseReason, String);

/// Whether a client last heard at `last_heard` has been silent for two ping
/// intervals at the tick that was `due`. Measured from when the tick was due,
/// not from when the loop got to it, so the verdict does not hinge on timer
/// lateness: a client silent since the connection opened is closed at the
/// second tick exactly, not a whole interval later. A frame read after the
/// tick was due counts as heard (the silence saturates to zero).
fn silent_for_two_intervals(due: Instant, last_heard: Instant, ping_every: Duration) -> bool {
    due.saturating_duration_since(last_heard) >= ping_every * 2
}

fn closing(reason: CloseReason, message: impl Into<String>) -> Closing {
    Closing(reason, message.into())
}

/// What a frame the queue refused means for the session.
fn queued(sent: Result<(), Unsent>) -> Result<(), Closing> {
    match sent {
        Ok(()) => Ok(()),
        Err(Unsent::Full) => Err(closing(
            CloseReason::Lagged,
            "too far behind: reconnect and resume from your last event id",
        )),
        Err(Unsent::Closed) => Err(closing(CloseReason::ClientLeft, "")),
    }
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
    principal: Result<Option<Principal>, crate::auth::AuthError>,
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
    // actix-ws's session sends through a Tokio channel that its response
    // body drains. Measured against this queue (loadtests/RESULTS.md), it
    // costs 2.6 KiB more per idle connection (the channel allocates its
    // first block of 32 slots up front, whatever its capacity, and actix-ws
    // 0.3 fixes the capacity anyway) and 15 % more CPU per delivery (the
    // channel's atomics, and a frame header encoded per recipient where
    // every recipient can share one). So its session and body are dropped
    // here, and the response carries the body of `outbound` instead.
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
    principal: Result<Option<Principal>, crate::auth::AuthError>,
    outbound: Outbound,
    messages: AggregatedMessageStream,
) {
    let connection_id = uuid::Uuid::new_v4().to_string();
    let span = tracing::info_span!("ws", connection_id = %connection_id);
    async move {
        let _gauge = GaugeGuard::hold(services.metrics.clone(), |m| &m.ws_connections);
        let mut connection = Connection {
            services,
            outbound,
            connection_id,
            principal: None,
            token_deadline: None,
            subscriptions: Subscriptions::default(),
            malformed: 0,
        };
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

struct Connection {
    services: SessionServices,
    outbound: Outbound,
    connection_id: String,
    principal: Option<Principal>,
    /// When `principal`'s token expires, as a timer deadline.
    token_deadline: Option<Instant>,
    subscriptions: Subscriptions,
    malformed: u32,
}

impl Connection {
    async fn serve(
        &mut self,
        principal: Result<Option<Principal>, crate::auth::AuthError>,
        mut messages: AggregatedMessageStream,
    ) -> Closing {
        match principal {
            Ok(Some(principal)) => {
                if let Err(closing) = self.authenticated(principal) {
                    return closing;
                }
            }
            Ok(None) => {}
            Err(error) => return closing(CloseReason::Unauthenticated, error.to_string()),
        }
        let ping_every = self.services.streams.ws_ping;
        // The ping clock and the silence start at the same instant, so a
        // client that never answers is silent exactly 2 × `ping_every` at the
        // second tick (see `silent_for_two_intervals`).
        let opened = Instant::now();
        let mut ping = tokio::time::interval_at(opened + ping_every, ping_every);
        ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut last_heard = opened;
        let mut rate = rate::RateLimiter::new(
            self.services.limits.max_messages_per_sec,
            std::time::Instant::now(),
        );
        let auth_deadline = Instant::now() + AUTH_DEADLINE;
        // Made once and kept pinned: a new timer or shutdown waiter on every
        // turn of the loop would register and unregister once per event.
        let mut shutdown = self.services.shutdown.signal();
        let expiry = tokio::time::sleep_until(self.token_deadline.unwrap_or(auth_deadline));
        tokio::pin!(expiry);
        loop {
            // An `auth` message may have moved the deadline.
            let due = self.token_deadline.unwrap_or(auth_deadline);
            if expiry.deadline() != due {
                expiry.as_mut().reset(due);
            }
            tokio::select! {
                biased;
                () = &mut shutdown => {
                    return closing(CloseReason::ShuttingDown, "server shutting down");
                }
                frame = messages.recv() => {
                    last_heard = Instant::now();
                    let Some(frame) = frame else {
                        return closing(CloseReason::ClientLeft, "");
                    };
                    if !rate.allow(std::time::Instant::now()) {
                        return closing(CloseReason::Policy, "message rate limit exceeded");
                    }
                    // Boxed: handling a client message may query the log,
                    // and inlining those futures would make every idle
                    // session's own future kilobytes larger. Client
                    // messages are few (rate-limited); events are many.
                    if let Err(closing) = Box::pin(self.on_frame(frame)).await {
                        return closing;
                    }
                }
                // Events are taken only while the outbound queue has room,
                // so a slow reader holds its feeds back instead of
                // overflowing; see `outbound`.
                update = self.subscriptions.next(), if self.outbound.has_room() => {
                    if let Err(closing) = self.on_update(update).await {
                        return closing;
                    }
                }
                () = self.outbound.room(), if !self.outbound.has_room() => {}
                due = ping.tick() => {
                    if silent_for_two_intervals(due, last_heard, ping_every) {
                        return closing(CloseReason::HeartbeatTimeout, "no answer to pings");
                    }
                    if self.outbound.ping() == Err(Unsent::Closed) {
                        return closing(CloseReason::ClientLeft, "");
                    }
                }
                () = &mut expiry => {
                    let message = if self.principal.is_some() {
                        "token expired: reconnect or send a fresh `auth`"
                    } else {
                        "no token: send {\"type\":\"auth\",\"token\":\"…\"} within 5 s"
                    };
                    return closing(CloseReason::Unauthenticated, message);
                }
            }
        }
    }

    fn authenticated(&mut self, principal: Principal) -> Result<(), Closing> {
        match &self.principal {
            Some(current) if current.user() != principal.user() => {
                return Err(closing(
                    CloseReason::Forbidden,
                    "a connection cannot change its user",
                ));
            }
            Some(_) => {
                // A refreshed token: new subscriptions use its claims.
                self.token_deadline = Some(Instant::now() + principal.time_left());
                self.principal = Some(principal);
                return Ok(());
            }
            None => {
                if !self.services.admission.promote() {
                    return Err(closing(
                        CloseReason::Full,
                        "the server holds as many connections as it is configured for; retry",
                    ));
                }
                self.token_deadline = Some(Instant::now() + principal.time_left());
                self.principal = Some(principal);
            }
        }
        let welcome = ServerMessage::Welcome {
            connection_id: &self.connection_id,
            head: self.services.log.bounds().head,
            heartbeat_ms: u64::try_from(self.services.streams.ws_ping.as_millis())
                .unwrap_or(u64::MAX),
        };
        self.send(welcome.encode())
    }

    fn send(&self, text: ByteString) -> Result<(), Closing> {
        queued(self.outbound.text(text))
    }

    /// Sends a text frame already encoded (an event's, shared).
    fn send_frame(&self, frame: bytes::Bytes) -> Result<(), Closing> {
        queued(self.outbound.frame(frame))
    }

    fn error(
        &mut self,
        code: &'static str,
        message: String,
        request_id: Option<&RequestId>,
    ) -> Result<(), Closing> {
        self.send(
            ServerMessage::Error {
                error: code,
                message,
                request_id,
            }
            .encode(),
        )
    }

    /// A malformed or unknown message: answered, and counted.
    fn refuse_malformed(&mut self, message: String) -> Result<(), Closing> {
        self.malformed += 1;
        self.services.metrics.malformed(Malformed::WebSocketMessage);
        if self.malformed > MAX_MALFORMED {
            return Err(closing(CloseReason::Policy, "too many malformed messages"));
        }
        self.error("invalid_message", message, None)
    }

    async fn on_frame(
        &mut self,
        frame: Result<AggregatedMessage, ProtocolError>,
    ) -> Result<(), Closing> {
        match frame {
            Ok(AggregatedMessage::Text(text)) => self.on_text(&text).await,
            Ok(AggregatedMessage::Ping(payload)) => match self.outbound.pong(payload) {
                Err(Unsent::Full) => Err(closing(CloseReason::Policy, "too many pings")),
                _ => Ok(()),
            },
            Ok(AggregatedMessage::Pong(_)) => Ok(()),
            Ok(AggregatedMessage::Close(_)) => Err(closing(CloseReason::ClientClosed, "")),
            Ok(AggregatedMessage::Binary(_)) => {
                self.refuse_malformed("only JSON text messages are understood".into())
            }
            Err(error) if inbound::is_overflow(&error) => Err(closing(
                CloseReason::TooBig,
                format!(
                    "messages are limited to {} bytes",
                    self.services.limits.ws_max_frame_bytes
                ),
            )),
            Err(error) if inbound::is_not_utf8(&error) => {
                Err(closing(CloseReason::NotUtf8, error.to_string()))
            }
            Err(error) => Err(closing(CloseReason::ProtocolError, error.to_string())),
        }
    }

    async fn on_text(&mut self, text: &str) -> Result<(), Closing> {
        let message = match serde_json::from_str::<ClientMessage>(text) {
            Ok(message) => message,
            Err(error) => {
                return self.refuse_malformed(format!("not a message this server knows: {error}"));
            }
        };
        if self.principal.is_none() && !matches!(message, ClientMessage::Auth { .. }) {
            return Err(closing(
                CloseReason::Unauthenticated,
                "authenticate first: {\"type\":\"auth\",\"token\":\"…\"}",
            ));
        }
        match message {
            ClientMessage::Auth { token, .. } => match self.services.auth.verify(&token) {
                Ok(principal) => self.authenticated(principal),
                Err(error) => Err(closing(CloseReason::Unauthenticated, error.to_string())),
            },
            ClientMessage::Ping { request_id } => self.send(
                ServerMessage::Pong {
                    request_id: request_id.as_ref(),
                }
                .encode(),
            ),
            ClientMessage::Subscribe {
                topics,
                types,
                since,
                request_id,
            } => {
                let since = match since.map(|s| s.parse()).transpose() {
                    Ok(since) => since,
                    Err(message) => {
                        return self.error("invalid_cursor", message, request_id.as_ref());
                    }
                };
                self.subscribe(&topics, types, since, request_id).await
            }
            ClientMessage::Unsubscribe { topics, request_id } => {
                let patterns = match self.parse_patterns(&topics, request_id.as_ref())? {
                    Some(patterns) => patterns,
                    None => return Ok(()),
                };
                let reopen = self.subscriptions.remove(&patterns);
                self.reopen(reopen).await?;
                self.send(
                    ServerMessage::Unsubscribed {
                        topics: &patterns,
                        request_id: request_id.as_ref(),
                    }
                    .encode(),
                )
            }
        }
    }

    /// Parses topic patterns; answers an error and returns `None` when one is
    /// malformed.
    fn parse_patterns(
        &mut self,
        topics: &[String],
        request_id: Option<&RequestId>,
    ) -> Result<Option<Vec<TopicPattern>>, Closing> {
        if topics.is_empty() {
            self.error(
                "invalid_topic",
                "`topics` must name at least one pattern".into(),
                request_id,
            )?;
            return Ok(None);
        }
        // Counted before anything is parsed: a message may be 64 KiB of
        // patterns, and more than a connection may hold is refused whole.
        let max = self.services.limits.max_subscriptions;
        if topics.len() > max {
            let message = format!("a connection may hold at most {max} topic patterns");
            self.error("too_many_subscriptions", message, request_id)?;
            return Ok(None);
        }
        let mut patterns = Vec::with_capacity(topics.len());
        let mut seen = HashSet::with_capacity(topics.len());
        for raw in topics {
            match TopicPattern::parse(raw) {
                Ok(pattern) if seen.insert(pattern.clone()) => patterns.push(pattern),
                Ok(_) => {}
                Err(reason) => {
                    self.error("invalid_topic", format!("{raw:?}: {reason}"), request_id)?;
                    return Ok(None);
                }
            }
        }
        Ok(Some(patterns))
    }

    /// Parses a `subscribe`'s types; answers an error and returns `None`
    /// when there are too many or one is malformed. `Some(None)`: the
    /// message named none, so every type is admitted and nothing echoed.
    fn parse_types(
        &mut self,
        types: Option<Vec<String>>,
        request_id: Option<&RequestId>,
    ) -> Result<Option<Option<TypeFilter>>, Closing> {
        let Some(types) = types else {
            return Ok(Some(None));
        };
        // Counted before anything is parsed, like topic patterns.
        let max = self.services.limits.max_subscriptions;
        if types.len() > max {
            let message = format!("a connection may hold at most {max} type patterns");
            self.error("too_many_subscriptions", message, request_id)?;
            return Ok(None);
        }
        match TypeFilter::from_list(types, max) {
            Ok(types) => Ok(Some(Some(types))),
            Err(reason) => {
                self.error(
                    "invalid_type_filter",
                    format!("types: {reason}"),
                    request_id,
                )?;
                Ok(None)
            }
        }
    }

    async fn subscribe(
        &mut self,
        topics: &[String],
        types: Option<Vec<String>>,
        since: Option<Since>,
        request_id: Option<RequestId>,
    ) -> Result<(), Closing> {
        let Some(patterns) = self.parse_patterns(topics, request_id.as_ref())? else {
            return Ok(());
        };
        let Some(named_types) = self.parse_types(types, request_id.as_ref())? else {
            return Ok(());
        };
        let Some(scope) = self.principal.as_ref().map(|p| p.scope.clone()) else {
            return Err(closing(CloseReason::Unauthenticated, "not authenticated"));
        };
        if let Some(denied) = patterns.iter().find(|p| !scope.may_subscribe(p)) {
            let message = format!("this token may not read topic {denied}");
            return self.error("forbidden_topic", message, request_id.as_ref());
        }
        // A subscribe replaces any existing subscription to the same pattern.
        let replaced = patterns
            .iter()
            .filter(|p| self.subscriptions.holds(p))
            .count();
        let total = self.subscriptions.pattern_count() - replaced + patterns.len();
        let max = self.services.limits.max_subscriptions;
        if total > max {
            let message = format!("a connection may hold at most {max} topic patterns");
            return self.error("too_many_subscriptions", message, request_id.as_ref());
        }
        // Each feed keeps its own types, so they are bounded per connection
        // like topic patterns: otherwise every subscription could hold a
        // whole message's worth.
        let named_count = named_types.as_ref().map_or(0, |t| t.patterns().len());
        let total_types = self.subscriptions.type_count_without(&patterns) + named_count;
        if total_types > max {
            let message = format!("a connection may hold at most {max} type patterns");
            return self.error("too_many_subscriptions", message, request_id.as_ref());
        }
        let reopen = self.subscriptions.remove(&patterns);
        self.reopen(reopen).await?;
        self.send(
            ServerMessage::Subscribed {
                topics: &patterns,
                types: named_types.as_ref(),
                request_id: request_id.as_ref(),
            }
            .encode(),
        )?;
        let start = since.map_or(Start::Now, Start::After);
        let types = named_types.unwrap_or_default();
        self.open_feed(patterns, types, scope, start, request_id, true)
            .await
    }

    /// Opens a feed; a cursor the log cannot serve is answered with `reset`
    /// and the subscription continues from the log's head.
    async fn open_feed(
        &mut self,
        patterns: Vec<TopicPattern>,
        types: TypeFilter,
        scope: ReadScope,
        start: Start,
        request_id: Option<RequestId>,
        announce: bool,
    ) -> Result<(), Closing> {
        let filter = Arc::new(Filter {
            patterns,
            types,
            scope,
        });
        let opened = self.open(filter.clone(), start).await;
        let feed = match opened {
            Ok(feed) => feed,
            Err(ReadError::Unresumable(unresumable)) => {
                self.reset(
                    unresumable.reason(),
                    unresumable.bounds(),
                    request_id.as_ref(),
                )?;
                let from_head = Start::After(Since::Id(unresumable.bounds().head));
                self.open(filter, from_head).await.map_err(|error| {
                    tracing::error!(error = %error, "could not reopen a feed from the head");
                    closing(CloseReason::ServerError, "internal error")
                })?
            }
            Err(ReadError::Store(error)) => {
                tracing::error!(error = %error, "could not open a feed");
                return Err(closing(CloseReason::ServerError, "internal error"));
            }
        };
        self.subscriptions.add(feed, request_id, announce);
        Ok(())
    }

    async fn open(&self, filter: Arc<Filter>, start: Start) -> Result<Feed, ReadError> {
        Feed::open(
            self.services.log.clone(),
            self.services.shard.clone(),
            self.services.metrics.clone(),
            filter,
            start,
        )
        .await
    }

    async fn reopen(&mut self, feeds: Vec<Reopen>) -> Result<(), Closing> {
        let Some(scope) = self.principal.as_ref().map(|p| p.scope.clone()) else {
            return Ok(());
        };
        for Reopen {
            patterns,
            types,
            cursor,
            request_id,
            owes_caught_up,
        } in feeds
        {
            let start = Start::After(Since::Id(cursor));
            self.open_feed(
                patterns,
                types,
                scope.clone(),
                start,
                request_id,
                owes_caught_up,
            )
            .await?;
        }
        Ok(())
    }

    fn reset(
        &mut self,
        reason: ResetReason,
        bounds: LogBounds,
        request_id: Option<&RequestId>,
    ) -> Result<(), Closing> {
        self.services
            .metrics
            .reset(Transport::WebSocket, reason.as_str());
        self.send(
            ServerMessage::Reset {
                reason,
                oldest_id: bounds.oldest_id(),
                head: bounds.head,
                request_id,
            }
            .encode(),
        )
    }

    async fn on_update(&mut self, update: Update) -> Result<(), Closing> {
        match update {
            Update::Event(event) => {
                let view = self
                    .principal
                    .as_ref()
                    .map_or(crate::domain::wire::View::Reader, Principal::view);
                self.send_frame(event.ws_frame(view))
            }
            Update::CaughtUp { head, request_id } => self.send(
                ServerMessage::CaughtUp {
                    head,
                    request_id: request_id.as_ref(),
                }
                .encode(),
            ),
            Update::Ended {
                end,
                patterns,
                types,
                request_id,
                owes_caught_up,
            } => match end {
                FeedEnd::Lagged(_) => Err(closing(
                    CloseReason::Lagged,
                    "too far behind: reconnect and resume from your last event id",
                )),
                FeedEnd::Unresumable(unresumable) => {
                    // Retention overtook a long replay: say so, go on live.
                    let bounds = unresumable.bounds();
                    self.reset(unresumable.reason(), bounds, request_id.as_ref())?;
                    let Some(scope) = self.principal.as_ref().map(|p| p.scope.clone()) else {
                        return Ok(());
                    };
                    let start = Start::After(Since::Id(bounds.head));
                    // Boxed: opening a feed queries the log, and this
                    // future is part of every session's own (see `serve`).
                    Box::pin(self.open_feed(
                        patterns,
                        types,
                        scope,
                        start,
                        request_id,
                        owes_caught_up,
                    ))
                    .await
                }
                FeedEnd::Closed => Err(closing(CloseReason::ShuttingDown, "server shutting down")),
                FeedEnd::Store(error) => {
                    tracing::error!(error = %error, "replay read failed");
                    Err(closing(
                        CloseReason::ServerError,
                        "internal error; resume from your last event id",
                    ))
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVERY: Duration = Duration::from_secs(30);

    #[test]
    fn a_client_silent_since_it_connected_is_dead_at_the_second_tick() {
        let opened = Instant::now();

        assert!(!silent_for_two_intervals(opened + EVERY, opened, EVERY));
        assert!(silent_for_two_intervals(opened + EVERY * 2, opened, EVERY));
    }

    #[test]
    fn a_client_last_heard_after_a_tick_is_closed_at_the_first_tick_two_intervals_on() {
        let opened = Instant::now();
        let pong = opened + EVERY + Duration::from_millis(40);

        assert!(!silent_for_two_intervals(opened + EVERY * 2, pong, EVERY));
        assert!(!silent_for_two_intervals(opened + EVERY * 3, pong, EVERY));
        assert!(silent_for_two_intervals(opened + EVERY * 4, pong, EVERY));
    }

    #[test]
    fn a_frame_read_after_the_tick_was_due_counts_as_heard() {
        let opened = Instant::now();
        let late_frame = opened + EVERY * 2 + Duration::from_millis(5);

        assert!(!silent_for_two_intervals(
            opened + EVERY * 2,
            late_frame,
            EVERY
        ));
    }
}
