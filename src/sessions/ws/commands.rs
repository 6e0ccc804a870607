//! What the client says: `auth`, `ping`, `subscribe` and `unsubscribe`,
//! and the frames the session refuses.

use std::collections::HashSet;

use actix_ws::{AggregatedMessage, ProtocolError};

use super::close::{CloseReason, Closing, closing};
use super::connection::Connection;
use super::inbound;
use super::outbound::Unsent;
use super::protocol::{ClientMessage, RequestId, ServerMessage};
use crate::domain::cursor::Since;
use crate::domain::event::TopicPattern;
use crate::domain::type_filter::TypeFilter;
use crate::metrics::Malformed;
use crate::sessions::replay::Start;

/// Malformed or unknown messages tolerated before closing with 1008.
const MAX_MALFORMED: u32 = 5;

impl Connection {
    /// Answers a message with an `error`; the connection stays open.
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

    /// Answers a message that would take the connection past its bound on
    /// `kind` (topic or type) patterns.
    fn refuse_too_many(
        &mut self,
        kind: &str,
        request_id: Option<&RequestId>,
    ) -> Result<(), Closing> {
        let max = self.services.limits.max_subscriptions;
        let message = format!("a connection may hold at most {max} {kind} patterns");
        self.error("too_many_subscriptions", message, request_id)
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

    pub(super) async fn on_frame(
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
                let Some(patterns) = self.parse_patterns(&topics, request_id.as_ref())? else {
                    return Ok(());
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
            self.refuse_too_many("topic", request_id)?;
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
            self.refuse_too_many("type", request_id)?;
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
            return self.refuse_too_many("topic", request_id.as_ref());
        }
        // Each feed keeps its own types, so they are bounded per connection
        // like topic patterns: otherwise every subscription could hold a
        // whole message's worth.
        let named_count = named_types.as_ref().map_or(0, |t| t.patterns().len());
        let total_types = self.subscriptions.type_count_without(&patterns) + named_count;
        if total_types > max {
            return self.refuse_too_many("type", request_id.as_ref());
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
}
