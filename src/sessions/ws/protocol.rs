//! The WebSocket messages of the contract, in and out.

use bytestring::ByteString;
use serde::{Deserialize, Serialize};

use crate::domain::cursor::Since;
use crate::domain::event::{EventId, TopicPattern};
use crate::domain::resume::ResetReason;
use crate::domain::type_filter::TypeFilter;

/// Echoed back verbatim so a client can match answers to requests.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum RequestId {
    Text(String),
    Number(i64),
}

/// `since` as a JSON number (an id) or a string (an id or a timestamp).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum CursorValue {
    Id(i64),
    Text(String),
}

impl CursorValue {
    pub fn parse(&self) -> Result<Since, String> {
        match self {
            CursorValue::Id(raw) => EventId::new(*raw)
                .map(Since::Id)
                .ok_or_else(|| format!("`since` must not be negative, got {raw}")),
            CursorValue::Text(raw) => raw
                .parse()
                .map_err(|e: crate::domain::cursor::InvalidCursor| e.to_string()),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    Subscribe {
        topics: Vec<String>,
        /// Absent (or `null`): every type.
        #[serde(default)]
        types: Option<Vec<String>>,
        #[serde(default)]
        since: Option<CursorValue>,
        #[serde(default)]
        request_id: Option<RequestId>,
    },
    Unsubscribe {
        topics: Vec<String>,
        #[serde(default)]
        request_id: Option<RequestId>,
    },
    Ping {
        #[serde(default)]
        request_id: Option<RequestId>,
    },
    Auth {
        token: String,
    },
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage<'a> {
    Welcome {
        connection_id: &'a str,
        head: EventId,
        heartbeat_ms: u64,
    },
    Subscribed {
        topics: &'a [TopicPattern],
        /// Echoed only when the `subscribe` named types, so a client that
        /// never does sees the message it always has.
        #[serde(skip_serializing_if = "Option::is_none")]
        types: Option<&'a TypeFilter>,
        #[serde(skip_serializing_if = "Option::is_none")]
        request_id: Option<&'a RequestId>,
    },
    CaughtUp {
        head: EventId,
        #[serde(skip_serializing_if = "Option::is_none")]
        request_id: Option<&'a RequestId>,
    },
    Unsubscribed {
        topics: &'a [TopicPattern],
        #[serde(skip_serializing_if = "Option::is_none")]
        request_id: Option<&'a RequestId>,
    },
    Pong {
        #[serde(skip_serializing_if = "Option::is_none")]
        request_id: Option<&'a RequestId>,
    },
    Reset {
        reason: ResetReason,
        oldest_id: EventId,
        head: EventId,
        #[serde(skip_serializing_if = "Option::is_none")]
        request_id: Option<&'a RequestId>,
    },
    Error {
        error: &'static str,
        message: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        request_id: Option<&'a RequestId>,
    },
}

impl ServerMessage<'_> {
    pub fn encode(&self) -> ByteString {
        // Plain data into memory: serialization cannot fail.
        ByteString::from(serde_json::to_string(self).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_messages_parse_as_in_the_contract() {
        let subscribe: ClientMessage = serde_json::from_str(
            r#"{"type":"subscribe","topics":["alerts","device:*"],"since":1200,"request_id":"r1"}"#,
        )
        .unwrap();
        assert!(matches!(
            subscribe,
            ClientMessage::Subscribe { ref topics, types: None, since: Some(CursorValue::Id(1200)), request_id: Some(RequestId::Text(ref r)) }
                if topics.len() == 2 && r == "r1"
        ));
        let typed: ClientMessage = serde_json::from_str(
            r#"{"type":"subscribe","topics":["alerts"],"types":["entity:*","message:new"]}"#,
        )
        .unwrap();
        assert!(matches!(
            typed,
            ClientMessage::Subscribe { types: Some(ref types), .. } if types == &["entity:*", "message:new"]
        ));
        assert!(serde_json::from_str::<ClientMessage>(r#"{"type":"ping"}"#).is_ok());
        assert!(serde_json::from_str::<ClientMessage>(r#"{"type":"dance"}"#).is_err());
        assert!(serde_json::from_str::<ClientMessage>(r#"{"type":"subscribe"}"#).is_err());
    }

    #[test]
    fn server_messages_serialize_as_in_the_contract() {
        let id = RequestId::Text("r1".into());
        let caught_up = ServerMessage::CaughtUp {
            head: EventId::new(5120).unwrap(),
            request_id: Some(&id),
        };
        assert_eq!(
            &*caught_up.encode(),
            r#"{"type":"caught_up","head":5120,"request_id":"r1"}"#
        );
        assert_eq!(
            &*ServerMessage::Pong { request_id: None }.encode(),
            r#"{"type":"pong"}"#
        );
        let topics = [TopicPattern::parse("alerts").unwrap()];
        let types = TypeFilter::parse_list("entity:*", 1).unwrap();
        let untyped = ServerMessage::Subscribed {
            topics: &topics,
            types: None,
            request_id: Some(&id),
        };
        let typed = ServerMessage::Subscribed {
            topics: &topics,
            types: Some(&types),
            request_id: None,
        };
        assert_eq!(
            &*untyped.encode(),
            r#"{"type":"subscribed","topics":["alerts"],"request_id":"r1"}"#
        );
        assert_eq!(
            &*typed.encode(),
            r#"{"type":"subscribed","topics":["alerts"],"types":["entity:*"]}"#
        );
    }
}
