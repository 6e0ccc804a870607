//! Which server loadgen talks to: pushlog, or nginx with the nchan module,
//! the baseline `loadtests/compare` measures pushlog against (configured by
//! `loadtests/compare/nginx-nchan.conf`).
//!
//! The differences are few and all here or next to where they matter:
//!
//! | | pushlog | nchan |
//! |---|---|---|
//! | SSE | `GET /events/stream?topics=T` | `GET /sub/T`, `Accept: text/event-stream` |
//! | WebSocket | `GET /ws`, then a `subscribe` message | `GET /sub/T`; no message |
//! | an event | the contract's event JSON | the published body as it was sent |
//! | heartbeat | `: ping` / ping frames | `event: ping` / ping frames |
//! | publish | `POST /events`, a JSON array | `POST /pub?channel=T`, one message |
//! | auth | bearer tokens | none |
//!
//! To nchan, loadgen publishes `{"id":<seq+1>,"payload":{"seq":…,"sent_us":…}}`:
//! the shape of a pushlog event as far as [`crate::probe::ReceivedEvent`]
//! reads one, so the same code checks order and measures latency for both.

use std::fmt;

use clap::ValueEnum;
use serde::{Deserialize, Serialize};

use crate::transport::{Start, Transport};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Server {
    #[default]
    Pushlog,
    /// nginx with the nchan module, as configured in loadtests/compare.
    Nchan,
}

impl Server {
    pub fn name(self) -> &'static str {
        match self {
            Server::Pushlog => "pushlog",
            Server::Nchan => "nchan",
        }
    }

    /// The request path that opens a subscription to `topic`. nchan is only
    /// ever subscribed from now on (scenarios that resume refuse nchan), so
    /// `start` matters to pushlog alone.
    pub fn subscribe_path(self, transport: Transport, topic: &str, start: Start) -> String {
        match (self, transport) {
            (Server::Pushlog, Transport::Sse) => {
                let since = match start {
                    Start::Now => String::new(),
                    Start::After(id) => format!("&since={id}"),
                };
                format!("/events/stream?topics={topic}{since}")
            }
            // The topic and cursor go in the `subscribe` message.
            (Server::Pushlog, Transport::Ws) => "/ws".into(),
            (Server::Nchan, _) => format!("/sub/{topic}"),
        }
    }

    /// The request path of a publish on `topic`.
    pub fn publish_path(self, topic: &str) -> String {
        match self {
            Server::Pushlog => "/events".into(),
            Server::Nchan => format!("/pub?channel={topic}"),
        }
    }

    /// Checks a topic given with `--topic`. Topics go into paths and query
    /// strings unescaped, so only characters that need no escaping pass;
    /// nchan's subscriber location takes no `/` (see the nginx config).
    pub fn check_topic(self, topic: &str) -> Result<(), String> {
        let allowed = |c: char| {
            c.is_ascii_alphanumeric() || "_.:-".contains(c) || (c == '/' && self == Server::Pushlog)
        };
        if (1..=200).contains(&topic.len()) && topic.chars().all(allowed) {
            Ok(())
        } else if self == Server::Pushlog {
            Err(format!(
                "{topic:?} is not a topic: 1–200 chars of [A-Za-z0-9_.:/-]"
            ))
        } else {
            Err(format!(
                "{topic:?} is not a topic for nchan: 1–200 chars of [A-Za-z0-9_.:-]"
            ))
        }
    }

    /// Refuses what only pushlog can do; `what` says what and why.
    pub fn require_pushlog(self, what: &str) -> Result<(), String> {
        match self {
            Server::Pushlog => Ok(()),
            Server::Nchan => Err(format!("--server nchan: {what}")),
        }
    }
}

impl fmt::Display for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pushlog_paths_follow_the_contract() {
        let server = Server::Pushlog;
        assert_eq!(
            server.subscribe_path(Transport::Sse, "a.b", Start::Now),
            "/events/stream?topics=a.b"
        );
        assert_eq!(
            server.subscribe_path(Transport::Sse, "a.b", Start::After(41)),
            "/events/stream?topics=a.b&since=41"
        );
        assert_eq!(
            server.subscribe_path(Transport::Ws, "a.b", Start::After(41)),
            "/ws"
        );
        assert_eq!(server.publish_path("a.b"), "/events");
    }

    #[test]
    fn nchan_paths_name_the_channel() {
        let server = Server::Nchan;
        for transport in [Transport::Sse, Transport::Ws] {
            assert_eq!(
                server.subscribe_path(transport, "loadgen.fanout.1.2", Start::Now),
                "/sub/loadgen.fanout.1.2"
            );
        }
        assert_eq!(server.publish_path("t:1"), "/pub?channel=t:1");
    }

    #[test]
    fn topics_are_checked_per_server() {
        assert!(Server::Pushlog.check_topic("orders/eu-1").is_ok());
        assert!(Server::Nchan.check_topic("orders/eu-1").is_err());
        assert!(Server::Nchan.check_topic("orders.eu-1:x_y").is_ok());
        for server in [Server::Pushlog, Server::Nchan] {
            assert!(server.check_topic("").is_err());
            assert!(server.check_topic("a b").is_err());
            assert!(server.check_topic("a&b").is_err());
            assert!(server.check_topic(&"x".repeat(201)).is_err());
        }
    }

    #[test]
    fn the_flag_parses_and_travels_in_lowercase() {
        assert_eq!(Server::from_str("nchan", false), Ok(Server::Nchan));
        assert_eq!(serde_json::to_string(&Server::Nchan).unwrap(), r#""nchan""#);
        assert_eq!(Server::default(), Server::Pushlog);
        assert!(Server::Nchan.require_pushlog("storm").is_err());
        assert!(Server::Pushlog.require_pushlog("storm").is_ok());
    }
}
