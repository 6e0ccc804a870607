//! A WebSocket subscriber: the handshake with a bearer token, `subscribe`
//! to one topic, then the contract's JSON messages. With nchan: the
//! handshake on `/sub/<topic>` is the subscription, and each text frame is
//! one published body.

use std::collections::VecDeque;

use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::probe::ReceivedEvent;
use crate::server::Server;
use crate::subscription::{FeedEnd, FeedItem, OpenError, Subscription, ws_error_kind};
use crate::transport::{Start, Transport};

/// Server → client messages, as far as loadgen cares: one flat struct
/// rather than a `#[serde(tag = "type")]` enum, because serde buffers the
/// whole message before dispatching on an internal tag, and this is the
/// hot path of every WebSocket delivery.
#[derive(Debug, Deserialize)]
struct Incoming<'a> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
    #[serde(default)]
    event: Option<ReceivedEvent>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Debug)]
enum ServerMessage {
    Subscribed,
    Event(ReceivedEvent),
    CaughtUp,
    Reset {
        reason: String,
    },
    Error {
        error: String,
    },
    /// A message of a type loadgen does not need (pushlog's `welcome`, …).
    Unknown,
    /// A frame that should have been an event and is not (nchan only: every
    /// frame it sends is a published body).
    Unreadable,
}

impl ServerMessage {
    fn parse(server: Server, text: &str) -> ServerMessage {
        match server {
            Server::Pushlog => ServerMessage::parse_contract(text),
            Server::Nchan => serde_json::from_str::<ReceivedEvent>(text)
                .map(ServerMessage::Event)
                .unwrap_or(ServerMessage::Unreadable),
        }
    }

    fn parse_contract(text: &str) -> ServerMessage {
        let Ok(incoming) = serde_json::from_str::<Incoming<'_>>(text) else {
            return ServerMessage::Unknown;
        };
        match (incoming.kind, incoming.event) {
            ("event", Some(event)) => ServerMessage::Event(event),
            ("subscribed", _) => ServerMessage::Subscribed,
            ("caught_up", _) => ServerMessage::CaughtUp,
            ("reset", _) => ServerMessage::Reset {
                reason: incoming.reason.unwrap_or_else(|| "unknown".into()),
            },
            ("error", _) => ServerMessage::Error {
                error: incoming.error.unwrap_or_else(|| "unknown".into()),
            },
            _ => ServerMessage::Unknown,
        }
    }
}

pub struct WsStream {
    server: Server,
    socket: WebSocketStream<TcpStream>,
    /// Items that arrived before `subscribed` was seen.
    early: VecDeque<FeedItem>,
}

/// Small buffers: tungstenite allocates its read buffer eagerly (128 KiB by
/// default), which across 15,000 connections would be 2 GiB for idle sockets.
fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_message_size(Some(4 << 20))
}

impl WsStream {
    pub async fn open(
        stream: TcpStream,
        subscription: &Subscription<'_>,
    ) -> Result<WsStream, OpenError> {
        let path = subscription.path(Transport::Ws);
        let mut request =
            format!("ws://{}{path}", subscription.target.authority).into_client_request()?;
        if let Some(token) = subscription.token {
            let bearer = HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| OpenError::Refused("token_not_a_header_value".into()))?;
            request.headers_mut().insert("Authorization", bearer);
        }
        let (socket, _response) =
            tokio_tungstenite::client_async_with_config(request, stream, Some(config())).await?;
        let mut ws = WsStream {
            server: subscription.server,
            socket,
            early: VecDeque::new(),
        };
        if subscription.server == Server::Nchan {
            // The upgrade subscribed it; nchan says nothing more.
            return Ok(ws);
        }

        let mut subscribe = serde_json::json!({
            "type": "subscribe",
            "topics": [subscription.topic],
            "request_id": "loadgen",
        });
        if let Start::After(id) = subscription.start {
            subscribe["since"] = id.into();
        }
        ws.socket.send(Message::text(subscribe.to_string())).await?;

        // `welcome` comes first, then `subscribed` (or an `error`).
        loop {
            match ws.read().await {
                Ok(Some(ServerMessage::Subscribed)) => return Ok(ws),
                Ok(Some(ServerMessage::Error { error })) => return Err(OpenError::Refused(error)),
                Ok(Some(message)) => {
                    if let Some(item) = to_item(message).map_err(OpenError::Ended)? {
                        ws.early.push_back(item);
                    }
                }
                Ok(None) => {}
                Err(end) => return Err(OpenError::Ended(end)),
            }
        }
    }

    pub async fn next(&mut self) -> Result<FeedItem, FeedEnd> {
        if let Some(item) = self.early.pop_front() {
            return Ok(item);
        }
        loop {
            match self.read().await? {
                Some(message) => {
                    if let Some(item) = to_item(message)? {
                        return Ok(item);
                    }
                }
                None => return Ok(FeedItem::Heartbeat),
            }
        }
    }

    /// The next server message; `None` for a ping frame. Reading is what
    /// makes tungstenite send the pong, so an idle subscriber must keep a
    /// read pending.
    async fn read(&mut self) -> Result<Option<ServerMessage>, FeedEnd> {
        loop {
            let frame = match self.socket.next().await {
                None => return Err(FeedEnd::Closed),
                Some(Err(WsError::ConnectionClosed)) => return Err(FeedEnd::Closed),
                Some(Err(error)) => {
                    return Err(FeedEnd::Broken(format!("ws_{}", ws_error_kind(&error))));
                }
                Some(Ok(frame)) => frame,
            };
            match frame {
                Message::Text(text) => {
                    return Ok(Some(ServerMessage::parse(self.server, text.as_str())));
                }
                Message::Ping(_) => return Ok(None),
                Message::Close(frame) => {
                    return Err(match frame {
                        Some(frame) => FeedEnd::WsClose(u16::from(frame.code)),
                        None => FeedEnd::Closed,
                    });
                }
                Message::Binary(_) | Message::Pong(_) | Message::Frame(_) => {}
            }
        }
    }
}

/// What a message means to a subscriber; `None` for messages that do not
/// matter after the subscription (a second `subscribed`, unknown types).
fn to_item(message: ServerMessage) -> Result<Option<FeedItem>, FeedEnd> {
    match message {
        ServerMessage::Event(event) => Ok(Some(FeedItem::Event(event))),
        ServerMessage::CaughtUp => Ok(Some(FeedItem::CaughtUp)),
        ServerMessage::Unreadable => Ok(Some(FeedItem::Unreadable)),
        ServerMessage::Reset { reason } => Err(FeedEnd::Reset(reason)),
        ServerMessage::Error { error } => Err(FeedEnd::Broken(format!("error_{error}"))),
        ServerMessage::Subscribed | ServerMessage::Unknown => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract_messages_are_understood() {
        let event = ServerMessage::parse_contract(
            r#"{"type":"event","event":{"id":4,"topic":"t","type":"x","payload":{"seq":0,"sent_us":1}}}"#,
        );
        assert!(matches!(event, ServerMessage::Event(event) if event.id == 4));
        let welcome = ServerMessage::parse_contract(
            r#"{"type":"welcome","connection_id":"c","head":5,"heartbeat_ms":30000}"#,
        );
        assert!(matches!(welcome, ServerMessage::Unknown));
        let subscribed = ServerMessage::parse_contract(
            r#"{"type":"subscribed","topics":["t"],"request_id":"loadgen"}"#,
        );
        assert!(matches!(subscribed, ServerMessage::Subscribed));
        let reset = ServerMessage::parse_contract(
            r#"{"type":"reset","reason":"cursor_expired","oldest_id":9,"head":20,"request_id":"r"}"#,
        );
        assert!(matches!(reset, ServerMessage::Reset { reason } if reason == "cursor_expired"));
        let error = ServerMessage::parse_contract(
            r#"{"type":"error","error":"forbidden_topic","message":"no","request_id":"r"}"#,
        );
        assert!(matches!(error, ServerMessage::Error { error } if error == "forbidden_topic"));
    }

    #[test]
    fn nchan_frames_are_the_published_bodies() {
        let event = ServerMessage::parse(
            Server::Nchan,
            r#"{"id":3,"payload":{"seq":2,"sent_us":1000}}"#,
        );
        let ServerMessage::Event(event) = event else {
            panic!("not an event: {event:?}");
        };
        assert_eq!(event.id, 3);
        assert_eq!(
            event.probe(),
            Some(crate::probe::Probe {
                seq: 2,
                sent_us: 1000
            })
        );
        // pushlog's envelope is not what nchan sends; neither is text.
        for text in [r#"{"type":"welcome","head":5}"#, "hello"] {
            let message = ServerMessage::parse(Server::Nchan, text);
            assert!(matches!(message, ServerMessage::Unreadable), "{text}");
            assert!(matches!(to_item(message), Ok(Some(FeedItem::Unreadable))));
        }
        // And the same body sent by pushlog would be a message of no type.
        let message = ServerMessage::parse(Server::Pushlog, r#"{"id":3,"payload":{}}"#);
        assert!(matches!(message, ServerMessage::Unknown));
    }
}
