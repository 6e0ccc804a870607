//! The connection front: a stream request that opens a connection is
//! carried on the bare socket; anything else, and a stream request later on
//! a kept-alive connection, is served by actix. Both must look the same to
//! a client, apart from how the connection ends.

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{PATIENCE, TestApp, event, spawn_app, spawn_app_with};

/// One raw HTTP/1.1 connection, read as text.
struct Raw {
    socket: TcpStream,
    read: String,
}

/// A response head: the status and the headers, names lowercased.
struct Head {
    status: u16,
    headers: Vec<(String, String)>,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

impl Raw {
    async fn open(app: &TestApp) -> Raw {
        let address = app.base.trim_start_matches("http://");
        Raw {
            socket: TcpStream::connect(address).await.expect("connect"),
            read: String::new(),
        }
    }

    async fn send(&mut self, method_and_path: &str, token: &str) {
        let request = format!(
            "{method_and_path} HTTP/1.1\r\nHost: pushlog\r\nAuthorization: Bearer {token}\r\n\r\n"
        );
        self.socket
            .write_all(request.as_bytes())
            .await
            .expect("send");
    }

    /// Reads until `needle` has been received; `false` if the server closed
    /// the connection first.
    async fn read_until(&mut self, needle: &str) -> bool {
        let reading = async {
            let mut buf = [0u8; 4096];
            while !self.read.contains(needle) {
                match self.socket.read(&mut buf).await {
                    // A reset counts as the server closing.
                    Ok(0) | Err(_) => return false,
                    Ok(n) => self.read.push_str(&String::from_utf8_lossy(&buf[..n])),
                }
            }
            true
        };
        tokio::time::timeout(PATIENCE, reading)
            .await
            .expect("the server answers within the patience window")
    }

    /// The next response head; what follows it stays in `read`.
    async fn head(&mut self) -> Head {
        assert!(self.read_until("\r\n\r\n").await, "closed before a head");
        let (head, rest) = self.read.split_once("\r\n\r\n").expect("a head");
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|line| line.split(' ').nth(1))
            .and_then(|code| code.parse().ok())
            .expect("a status line");
        let headers = lines
            .filter_map(|line| line.split_once(": "))
            .map(|(n, v)| (n.to_ascii_lowercase(), v.to_owned()))
            .collect();
        self.read = rest.to_owned();
        Head { status, headers }
    }

    /// Reads until `len` bytes follow the last head.
    async fn read_body(&mut self, len: usize) {
        let mut buf = [0u8; 4096];
        while self.read.len() < len {
            let n = tokio::time::timeout(PATIENCE, self.socket.read(&mut buf))
                .await
                .expect("the body within the patience window")
                .expect("read");
            assert!(n > 0, "closed mid-body");
            self.read.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    }

    /// Reads until the server closes; what it sent meanwhile is in `read`.
    async fn until_closed(&mut self) {
        assert!(
            !self.read_until("\u{0}never sent\u{0}").await,
            "the connection stays open"
        );
    }
}

#[actix_web::test]
async fn a_stream_that_opens_a_connection_is_chunked_and_delivers_events() {
    let app = spawn_app().await;
    let mut raw = Raw::open(&app).await;
    raw.send("GET /events/stream?topics=front", &app.reader)
        .await;

    let head = raw.head().await;
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-type"), Some("text/event-stream"));
    assert_eq!(head.header("cache-control"), Some("no-cache, no-transform"));
    assert_eq!(head.header("x-accel-buffering"), Some("no"));
    assert_eq!(head.header("transfer-encoding"), Some("chunked"));
    assert_eq!(head.header("connection"), Some("close"));
    assert!(head.header("date").is_some(), "every response is dated");
    assert!(raw.read_until(": pushlog stream open").await);

    let published = app.publish(&event("front")).await;
    assert_eq!(published.status, 201, "{}", published.body);
    let id = published.body["events"][0]["id"].as_i64().expect("an id");
    assert!(raw.read_until(&format!("id: {id}\n")).await);
}

#[actix_web::test]
async fn a_stream_later_on_a_kept_alive_connection_is_served_by_actix_and_delivers_events() {
    let app = spawn_app().await;
    let mut raw = Raw::open(&app).await;
    raw.send("GET /healthz", &app.reader).await;
    let health = raw.head().await;
    assert_eq!(health.status, 200);
    assert_ne!(health.header("connection"), Some("close"), "kept alive");
    let length: usize = health
        .header("content-length")
        .and_then(|l| l.parse().ok())
        .expect("a sized body");
    raw.read_body(length).await;
    raw.read.clear();

    raw.send("GET /events/stream?topics=front", &app.reader)
        .await;
    let head = raw.head().await;
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-type"), Some("text/event-stream"));
    assert_ne!(head.header("connection"), Some("close"), "actix's own head");
    let published = app.publish(&event("front")).await;
    let id = published.body["events"][0]["id"].as_i64().expect("an id");
    assert!(raw.read_until(&format!("id: {id}\n")).await);
}

#[actix_web::test]
async fn a_refused_stream_gets_the_json_error_and_the_connection_closes() {
    let app = spawn_app().await;
    let mut raw = Raw::open(&app).await;
    raw.send("GET /events/stream?topics=front", "not-a-token")
        .await;

    let head = raw.head().await;
    assert_eq!(head.status, 401);
    assert_eq!(head.header("content-type"), Some("application/json"));
    assert_eq!(head.header("connection"), Some("close"));
    let length: usize = head
        .header("content-length")
        .and_then(|l| l.parse().ok())
        .expect("a sized body");
    raw.until_closed().await;
    assert_eq!(raw.read.len(), length, "exactly the body, then the close");
    let body: Value = serde_json::from_str(&raw.read).expect("a JSON body");
    assert_eq!(body["error"], "invalid_token", "{body}");
}

#[actix_web::test]
async fn a_stream_the_server_ends_sends_the_last_chunk_before_closing() {
    let app = spawn_app().await;
    let mut raw = Raw::open(&app).await;
    // A cursor past the head cannot be resumed: the stream says `reset`
    // and ends.
    raw.send("GET /events/stream?topics=front&since=999999", &app.reader)
        .await;
    let head = raw.head().await;
    assert_eq!(head.status, 200);
    raw.until_closed().await;
    assert!(raw.read.contains("event: reset"), "{}", raw.read);
    assert!(raw.read.ends_with("\r\n0\r\n\r\n"), "{:?}", raw.read);
}

/// A WebSocket upgrade request with the token in the query, and RFC 6455's
/// own example key (whose accept value the server's answer must carry).
fn websocket_handshake(token: &str) -> Vec<u8> {
    format!(
        "GET /ws?token={token} HTTP/1.1\r\nHost: pushlog\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
    .into_bytes()
}

/// A client's text frame: masked, as RFC 6455 requires of clients.
fn masked_text_frame(text: &str) -> Vec<u8> {
    let payload = text.as_bytes();
    assert!(payload.len() < 126, "short frames only");
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let mut frame = vec![0x81, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

#[actix_web::test]
async fn a_websocket_that_opens_a_connection_is_upgraded_and_reads_the_frames_sent_with_its_head() {
    let app = spawn_app().await;
    let mut raw = Raw::open(&app).await;
    let mut request = websocket_handshake(&app.reader);
    // The subscription rides in the same write as the handshake.
    request.extend(masked_text_frame(
        r#"{"type":"subscribe","topics":["front"]}"#,
    ));
    raw.socket.write_all(&request).await.expect("send");

    let head = raw.head().await;
    assert_eq!(head.status, 101);
    assert_eq!(head.header("connection"), Some("upgrade"));
    assert_eq!(head.header("upgrade"), Some("websocket"));
    // RFC 6455's own example key and answer.
    assert_eq!(
        head.header("sec-websocket-accept"),
        Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    );
    assert!(raw.read_until(r#""type":"subscribed""#).await);

    let published = app.publish(&event("front")).await;
    let id = published.body["events"][0]["id"].as_i64().expect("an id");
    assert!(raw.read_until(&format!(r#""id":{id}"#)).await);
}

/// A gauge from `/metrics`.
async fn gauge(app: &TestApp, name: &str) -> i64 {
    let (status, _, metrics) = app.get_text("/metrics").await;
    assert_eq!(status, 200);
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} is exported"))
}

async fn sse_connections(app: &TestApp) -> i64 {
    gauge(app, "pushlog_sse_connections").await
}

/// Waits until the gauge `name` reads `value`; fails after `PATIENCE`.
async fn until_gauge(app: &TestApp, name: &str, value: i64) {
    let reached = async {
        while gauge(app, name).await != value {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(PATIENCE, reached)
        .await
        .unwrap_or_else(|_| panic!("{name} never reached {value}"));
}

#[actix_web::test]
async fn a_client_that_stops_reading_is_dropped_once_a_write_has_waited_the_stall_limit() {
    let app = spawn_app_with(|config| config.stalled_write_secs = 1).await;
    // A small receive window, so the server's writes back up soon.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("buffer size");
    let address = app
        .base
        .trim_start_matches("http://")
        .parse()
        .expect("address");
    let mut raw = Raw {
        socket: socket.connect(address).await.expect("connect"),
        read: String::new(),
    };
    raw.send("GET /events/stream?topics=stalled", &app.reader)
        .await;
    assert_eq!(raw.head().await.status, 200);
    assert_eq!(sse_connections(&app).await, 1, "the stream is open");

    // Far more than the socket buffers hold, and then the client reads
    // nothing more.
    let payload = "x".repeat(1000);
    for _ in 0..40 {
        let batch: Vec<Value> = (0..100)
            .map(|_| json!({"topic": "stalled", "type": "t", "payload": {"p": payload}}))
            .collect();
        assert_eq!(app.publish(&json!(batch)).await.status, 201);
    }

    // The stalled stream is dropped and its slot given back.
    until_gauge(&app, "pushlog_sse_connections", 0).await;
}

#[actix_web::test]
async fn a_websocket_client_that_vanishes_gives_its_session_and_slot_back() {
    let app = spawn_app().await;
    let mut raw = Raw::open(&app).await;
    let request = websocket_handshake(&app.reader);
    raw.socket.write_all(&request).await.expect("send");
    assert_eq!(raw.head().await.status, 101);
    assert!(raw.read_until(r#""type":"welcome""#).await);
    until_gauge(&app, "pushlog_ws_connections", 1).await;

    // No close frame: the TCP connection just goes.
    drop(raw);
    until_gauge(&app, "pushlog_ws_connections", 0).await;
}
