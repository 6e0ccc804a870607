//! A WebSocket test client (awc) speaking the contract's JSON messages.

use actix_codec::Framed;
use awc::BoxedSocket;
use awc::ws::{Codec, Frame, Message};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};

use crate::helpers::{PATIENCE, TestApp};

/// What the server sent, pings answered and skipped.
#[derive(Debug, Clone, PartialEq)]
pub enum Received {
    Json(Value),
    Closed(Option<u16>),
}

pub struct WsClient {
    framed: Framed<BoxedSocket, Codec>,
    /// Whether pings are answered (a dead client does not).
    pub answer_pings: bool,
    pub pings_seen: usize,
}

impl TestApp {
    /// Connects with the token in the `token` query parameter.
    pub async fn ws(&self, token: &str) -> WsClient {
        self.ws_with(|request| request, &format!("token={token}"))
            .await
            .expect("ws connects")
    }

    /// Connects with an arbitrary request; `Err(status)` when the upgrade is
    /// refused.
    pub async fn ws_with(
        &self,
        tweak: impl FnOnce(awc::ws::WebsocketsRequest) -> awc::ws::WebsocketsRequest,
        query: &str,
    ) -> Result<WsClient, u16> {
        let request = tweak(
            self.client
                .ws(format!("{}/ws?{query}", self.base))
                .max_frame_size(1024 * 1024),
        );
        match request.connect().await {
            Ok((_, framed)) => Ok(WsClient {
                framed,
                answer_pings: true,
                pings_seen: 0,
            }),
            Err(awc::error::WsClientError::InvalidResponseStatus(status)) => Err(status.as_u16()),
            Err(error) => panic!("ws connect failed: {error}"),
        }
    }
}

impl WsClient {
    pub async fn send(&mut self, message: Value) {
        self.framed
            .send(Message::Text(message.to_string().into()))
            .await
            .expect("ws send");
    }

    /// Sends a close frame (1000), as a well-behaved client leaving does.
    pub async fn close(&mut self) {
        let reason = awc::ws::CloseReason::from(awc::ws::CloseCode::Normal);
        self.framed
            .send(Message::Close(Some(reason)))
            .await
            .expect("ws close");
    }

    pub async fn send_text(&mut self, text: &str) {
        self.framed
            .send(Message::Text(text.to_owned().into()))
            .await
            .expect("ws send");
    }

    pub async fn next(&mut self) -> Received {
        tokio::time::timeout(PATIENCE, self.next_inner())
            .await
            .expect("no WebSocket message within the patience window")
    }

    async fn next_inner(&mut self) -> Received {
        loop {
            match self.framed.next().await {
                Some(Ok(Frame::Text(bytes))) => {
                    return Received::Json(
                        serde_json::from_slice(&bytes).expect("JSON text frame"),
                    );
                }
                Some(Ok(Frame::Ping(payload))) => {
                    self.pings_seen += 1;
                    if self.answer_pings {
                        let _ = self.framed.send(Message::Pong(payload)).await;
                    }
                }
                Some(Ok(Frame::Close(reason))) => {
                    return Received::Closed(reason.map(|r| u16::from(r.code)));
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return Received::Closed(None),
            }
        }
    }

    /// The next JSON message; panics on a close.
    pub async fn json(&mut self) -> Value {
        match self.next().await {
            Received::Json(value) => value,
            Received::Closed(code) => {
                panic!("connection closed ({code:?}) while expecting a message")
            }
        }
    }

    /// The next message of `kind`, skipping none: panics on anything else.
    pub async fn expect(&mut self, kind: &str) -> Value {
        let message = self.json().await;
        assert_eq!(message["type"], kind, "expected {kind}, got {message}");
        message
    }

    /// Reads until the connection closes; returns the close code.
    pub async fn close_code(&mut self) -> Option<u16> {
        loop {
            if let Received::Closed(code) = self.next().await {
                return code;
            }
        }
    }

    /// Subscribes and waits for `subscribed`.
    pub async fn subscribe(&mut self, topics: &[&str], since: Option<i64>, request_id: &str) {
        let mut message = json!({"type": "subscribe", "topics": topics, "request_id": request_id});
        if let Some(since) = since {
            message["since"] = json!(since);
        }
        self.send(message).await;
        let subscribed = self.expect("subscribed").await;
        assert_eq!(subscribed["request_id"], request_id);
    }

    /// Event ids until (and including) `last`, skipping `caught_up`.
    pub async fn ids_through(&mut self, last: i64) -> Vec<i64> {
        let mut ids = Vec::new();
        loop {
            let message = self.json().await;
            match message["type"].as_str() {
                Some("event") => {
                    let id = message["event"]["id"].as_i64().expect("event id");
                    ids.push(id);
                    if id >= last {
                        return ids;
                    }
                }
                Some("caught_up") => {}
                _ => panic!("unexpected message {message}"),
            }
        }
    }

    /// The next event's id, skipping `caught_up`.
    pub async fn next_event_id(&mut self) -> i64 {
        loop {
            let message = self.json().await;
            match message["type"].as_str() {
                Some("event") => return message["event"]["id"].as_i64().expect("event id"),
                Some("caught_up") => {}
                _ => panic!("unexpected message {message}"),
            }
        }
    }
}
