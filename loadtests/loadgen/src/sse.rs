//! An SSE subscriber: `GET /events/stream` (nchan: `GET /sub/<topic>`) over
//! a plain socket, the body de-chunked and cut into events as the
//! EventSource spec describes.

use std::collections::VecDeque;

use serde::Deserialize;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::http::{self, ChunkedDecoder, Framing, HttpError};
use crate::probe::ReceivedEvent;
use crate::server::Server;
use crate::subscription::{FeedEnd, FeedItem, OpenError, Subscription};
use crate::transport::Transport;

/// One dispatched SSE message or comment.
#[derive(Debug, PartialEq, Eq)]
pub enum SseMessage {
    Event { event: Option<String>, data: String },
    Comment(String),
}

/// Cuts a byte stream into SSE messages. Lines end in `\n` (a trailing `\r`
/// is dropped); a blank line dispatches the fields gathered so far.
#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    event: Option<String>,
    data: Option<String>,
}

/// One line longer than this is a broken stream, not an event (the server's
/// payload limit is 64 KiB by default; events carry a little more).
const MAX_LINE_BYTES: usize = 1024 * 1024;

impl SseParser {
    pub fn feed(
        &mut self,
        mut bytes: &[u8],
        out: &mut VecDeque<SseMessage>,
    ) -> Result<(), FeedEnd> {
        while let Some(newline) = bytes.iter().position(|&b| b == b'\n') {
            self.line.extend_from_slice(&bytes[..newline]);
            bytes = &bytes[newline + 1..];
            let line = std::mem::take(&mut self.line);
            self.end_line(line.strip_suffix(b"\r").unwrap_or(&line), out);
        }
        self.line.extend_from_slice(bytes);
        if self.line.len() > MAX_LINE_BYTES {
            return Err(FeedEnd::Broken("sse_line_too_long".into()));
        }
        Ok(())
    }

    fn end_line(&mut self, line: &[u8], out: &mut VecDeque<SseMessage>) {
        let line = String::from_utf8_lossy(line);
        if line.is_empty() {
            // The EventSource spec drops a message without data; nchan's
            // heartbeat is exactly that (`event: ping` alone), so a message
            // with an event name is passed on, with empty data, to be counted.
            match (self.event.take(), self.data.take()) {
                (event, Some(data)) => out.push_back(SseMessage::Event { event, data }),
                (Some(event), None) => out.push_back(SseMessage::Event {
                    event: Some(event),
                    data: String::new(),
                }),
                (None, None) => {}
            }
            return;
        }
        if let Some(comment) = line.strip_prefix(':') {
            out.push_back(SseMessage::Comment(comment.trim().to_string()));
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (&*line, ""),
        };
        match field {
            "event" => self.event = Some(value.to_string()),
            "data" => match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_string()),
            },
            // `id` repeats the id inside the data (nchan's is its own, and
            // loadgen's is in the data); `retry` is for browsers.
            _ => {}
        }
    }
}

/// `event: reset` data.
#[derive(Deserialize)]
struct Reset {
    reason: String,
}

pub struct SseStream {
    server: Server,
    stream: TcpStream,
    raw: Vec<u8>,
    /// `None` when the body is not chunked (read until close).
    chunks: Option<ChunkedDecoder>,
    decoded: Vec<u8>,
    parser: SseParser,
    messages: VecDeque<SseMessage>,
}

/// The request that opens the stream.
fn request(subscription: &Subscription<'_>) -> String {
    let path = subscription.path(Transport::Sse);
    let authorization = subscription
        .token
        .map(|token| format!("Authorization: Bearer {token}\r\n"))
        .unwrap_or_default();
    format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\n{authorization}Accept: text/event-stream\r\n\r\n",
        subscription.target.authority
    )
}

impl SseStream {
    pub async fn open(
        mut stream: TcpStream,
        subscription: &Subscription<'_>,
    ) -> Result<SseStream, OpenError> {
        let request = request(subscription);
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(HttpError::from)?;
        let mut raw = Vec::with_capacity(4096);
        let head = http::read_head(&mut stream, &mut raw).await?;
        if head.status != 200 {
            // Error bodies are small and framed by length; read what is
            // there for the error code, without waiting on anything else.
            let code = match head.framing {
                Framing::Length(len) if len <= 4096 => {
                    while raw.len() < len {
                        if http::read_more(&mut stream, &mut raw)
                            .await
                            .map_err(HttpError::from)?
                            == 0
                        {
                            break;
                        }
                    }
                    crate::http::error_code(&raw)
                }
                _ => "-".into(),
            };
            return Err(OpenError::Status {
                status: head.status,
                code,
            });
        }
        let chunks = match head.framing {
            Framing::Chunked => Some(ChunkedDecoder::default()),
            Framing::UntilClose => None,
            Framing::Length(_) => {
                return Err(OpenError::Http(HttpError::Malformed(
                    "an event stream with a Content-Length",
                )));
            }
        };
        let mut sse = SseStream {
            server: subscription.server,
            stream,
            raw: Vec::new(),
            chunks,
            decoded: Vec::new(),
            parser: SseParser::default(),
            messages: VecDeque::new(),
        };
        sse.absorb(&raw).map_err(OpenError::Ended)?;
        sse.raw = raw;
        sse.raw.clear();
        Ok(sse)
    }

    /// Decodes and parses bytes read from the socket.
    fn absorb(&mut self, bytes: &[u8]) -> Result<(), FeedEnd> {
        match &mut self.chunks {
            Some(decoder) => {
                self.decoded.clear();
                decoder
                    .feed(bytes, &mut self.decoded)
                    .map_err(|_| FeedEnd::Broken("bad_chunking".into()))?;
                self.parser.feed(&self.decoded, &mut self.messages)
            }
            None => self.parser.feed(bytes, &mut self.messages),
        }
    }

    pub async fn next(&mut self) -> Result<FeedItem, FeedEnd> {
        loop {
            if let Some(message) = self.messages.pop_front() {
                return interpret(self.server, message);
            }
            if self.chunks.as_ref().is_some_and(ChunkedDecoder::is_done) {
                return Err(FeedEnd::Closed);
            }
            self.raw.clear();
            match http::read_more(&mut self.stream, &mut self.raw).await {
                Ok(0) => return Err(FeedEnd::Closed),
                Ok(_) => {
                    let raw = std::mem::take(&mut self.raw);
                    let absorbed = self.absorb(&raw);
                    self.raw = raw;
                    absorbed?;
                }
                Err(error) => {
                    return Err(FeedEnd::Broken(
                        format!("io_{:?}", error.kind()).to_lowercase(),
                    ));
                }
            }
        }
    }
}

/// What a message means. Events read the same from both servers (nchan's
/// data is the body loadgen published, shaped like a pushlog event); the
/// heartbeats differ, and only pushlog sends `reset`.
fn interpret(server: Server, message: SseMessage) -> Result<FeedItem, FeedEnd> {
    match message {
        SseMessage::Comment(text) if server == Server::Pushlog && text == "ping" => {
            Ok(FeedItem::Heartbeat)
        }
        SseMessage::Comment(_) => Ok(FeedItem::Other),
        SseMessage::Event {
            event: Some(kind), ..
        } if server == Server::Nchan && kind == "ping" => Ok(FeedItem::Heartbeat),
        SseMessage::Event { event: None, data } => Ok(serde_json::from_str::<ReceivedEvent>(&data)
            .map(FeedItem::Event)
            .unwrap_or(FeedItem::Unreadable)),
        SseMessage::Event {
            event: Some(kind),
            data,
        } if server == Server::Pushlog && kind == "reset" => Err(FeedEnd::Reset(
            serde_json::from_str::<Reset>(&data)
                .map(|r| r.reason)
                .unwrap_or_else(|_| "unreadable".into()),
        )),
        SseMessage::Event { .. } => Ok(FeedItem::Other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::Probe;
    use crate::target::Target;
    use crate::transport::Start;

    fn parse(chunks: &[&[u8]]) -> Vec<SseMessage> {
        let mut parser = SseParser::default();
        let mut out = VecDeque::new();
        for chunk in chunks {
            parser.feed(chunk, &mut out).unwrap();
        }
        out.into_iter().collect()
    }

    #[test]
    fn the_opening_comment_and_events_are_parsed() {
        let messages = parse(&[
            b"retry: 2000\n: pushlog stream open\n\n",
            b"id: 5\ndata: {\"id\":5}\n\n: ping\n\n",
        ]);
        assert_eq!(
            messages,
            vec![
                SseMessage::Comment("pushlog stream open".into()),
                SseMessage::Event {
                    event: None,
                    data: "{\"id\":5}".into()
                },
                SseMessage::Comment("ping".into()),
            ]
        );
    }

    #[test]
    fn events_split_anywhere_are_reassembled() {
        let wire =
            b"id: 1\r\ndata: a\r\ndata: b\r\n\r\nevent: reset\ndata: {\"reason\":\"lagged\"}\n\n";
        for split in 0..wire.len() {
            let messages = parse(&[&wire[..split], &wire[split..]]);
            assert_eq!(messages.len(), 2, "split at {split}");
            assert_eq!(
                messages[0],
                SseMessage::Event {
                    event: None,
                    data: "a\nb".into()
                }
            );
        }
    }

    #[test]
    fn a_reset_ends_the_feed_with_its_reason() {
        let reset = SseMessage::Event {
            event: Some("reset".into()),
            data: r#"{"reason":"lagged","oldest_id":1,"head":9}"#.into(),
        };
        assert_eq!(
            interpret(Server::Pushlog, reset).unwrap_err(),
            FeedEnd::Reset("lagged".into())
        );
    }

    #[test]
    fn an_event_without_data_is_passed_on() {
        let messages = parse(&[b"event: ping\n\n", b"\n\n", b"id: 1\n\n"]);
        assert_eq!(
            messages,
            vec![SseMessage::Event {
                event: Some("ping".into()),
                data: String::new()
            }]
        );
    }

    #[test]
    fn nchan_streams_read_like_pushlog_ones() {
        // What nginx+nchan sends: a greeting, pings, then each body as data
        // under nchan's own id.
        let messages = parse(&[
            b": hi\n\nevent: ping\n\n",
            b"id: 1796148698:0\ndata: {\"id\":1,\"payload\":{\"seq\":0,\"sent_us\":5}}\n\n",
        ]);
        let items: Vec<FeedItem> = messages
            .into_iter()
            .map(|message| interpret(Server::Nchan, message).unwrap())
            .collect();
        assert!(matches!(items[0], FeedItem::Other));
        assert!(matches!(items[1], FeedItem::Heartbeat));
        let FeedItem::Event(event) = &items[2] else {
            panic!("not an event: {:?}", items[2]);
        };
        assert_eq!(event.id, 1);
        assert_eq!(event.probe(), Some(Probe { seq: 0, sent_us: 5 }));
        // A body that is not loadgen's is unreadable, not an event.
        let other = SseMessage::Event {
            event: None,
            data: "hello".into(),
        };
        assert!(matches!(
            interpret(Server::Nchan, other),
            Ok(FeedItem::Unreadable)
        ));
        // pushlog's heartbeat is a comment, which nchan's stream never is.
        let comment = SseMessage::Comment("ping".into());
        assert!(matches!(
            interpret(Server::Pushlog, comment),
            Ok(FeedItem::Heartbeat)
        ));
        let comment = SseMessage::Comment("ping".into());
        assert!(matches!(
            interpret(Server::Nchan, comment),
            Ok(FeedItem::Other)
        ));
    }

    #[test]
    fn requests_differ_in_path_and_authorization() {
        let target: Target = "http://127.0.0.1:18090".parse().unwrap();
        let mut subscription = Subscription {
            server: Server::Pushlog,
            target: &target,
            token: Some("tok"),
            topic: "a.b",
            start: Start::After(7),
        };
        assert_eq!(
            request(&subscription),
            "GET /events/stream?topics=a.b&since=7 HTTP/1.1\r\nHost: 127.0.0.1:18090\r\n\
             Authorization: Bearer tok\r\nAccept: text/event-stream\r\n\r\n"
        );
        subscription.server = Server::Nchan;
        subscription.token = None;
        subscription.start = Start::Now;
        assert_eq!(
            request(&subscription),
            "GET /sub/a.b HTTP/1.1\r\nHost: 127.0.0.1:18090\r\nAccept: text/event-stream\r\n\r\n"
        );
    }
}
