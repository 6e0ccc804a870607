//! Hostile clients: each case an adversarial review found, answered as the
//! contract says, while an ordinary client goes on receiving every event.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::binary::Server;
use crate::helpers::{PATIENCE, SECRET, TestApp, event, spawn_app};

/// RFC 6455's close code for a message too big to process.
const MESSAGE_TOO_BIG: u16 = 1009;

/// How a WebSocket is reached: on a fresh connection (carried by pushlog's
/// edge), or after a first request on a kept-alive one (actix's dispatcher).
#[derive(Clone, Copy, Debug)]
enum Path {
    Edge,
    Dispatcher,
}

/// A WebSocket spoken byte by byte, for frames no well-behaved client sends.
struct RawWebSocket {
    socket: TcpStream,
    /// Bytes received after the handshake's head, not yet parsed as frames.
    received: Vec<u8>,
}

impl RawWebSocket {
    /// Upgrades `/ws` of the server at `base` with `token` (empty: none)
    /// along `path`.
    async fn open(base: &str, token: &str, path: Path) -> RawWebSocket {
        let address = base.trim_start_matches("http://");
        let mut socket = TcpStream::connect(address).await.expect("connect");
        let mut received = Vec::new();
        if let Path::Dispatcher = path {
            socket
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: pushlog\r\n\r\n")
                .await
                .expect("send");
            let head = read_head(&mut socket, &mut received).await;
            assert!(head.starts_with("HTTP/1.1 200"), "{head}");
            let length: usize = head
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .expect("a sized health body");
            read_at_least(&mut socket, &mut received, length).await;
            received.drain(..length);
        }
        let query = if token.is_empty() {
            String::new()
        } else {
            format!("?token={token}")
        };
        let handshake = format!(
            "GET /ws{query} HTTP/1.1\r\nHost: pushlog\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        );
        socket.write_all(handshake.as_bytes()).await.expect("send");
        let head = read_head(&mut socket, &mut received).await;
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        RawWebSocket { socket, received }
    }

    /// Sends a frame header declaring `length` payload bytes, then `sent`
    /// zeros (or until the server stops reading); returns the server's
    /// first answer after its welcome.
    async fn send_frame(self, length: u64, sent: usize) -> Answer {
        let RawWebSocket {
            socket,
            mut received,
        } = self;
        let (mut reader, mut writer) = socket.into_split();
        let sending = async move {
            let mut header = vec![0x81, 0xff];
            header.extend_from_slice(&length.to_be_bytes());
            header.extend_from_slice(&[0; 4]);
            writer.write_all(&header).await?;
            let chunk = vec![0u8; 1 << 20];
            let mut left = sent;
            while left > 0 {
                let n = left.min(chunk.len());
                writer.write_all(&chunk[..n]).await?;
                left -= n;
            }
            // Keep the writing half open until the answer is in.
            std::future::pending::<std::io::Result<()>>().await
        };
        let sending = tokio::spawn(sending);
        let answer = tokio::time::timeout(PATIENCE, answer(&mut reader, &mut received))
            .await
            .expect("the server answers within the patience window");
        sending.abort();
        answer
    }
}

impl RawWebSocket {
    /// Sends `bytes` as they are; returns the server's first answer after
    /// its welcome.
    async fn send_bytes(mut self, bytes: &[u8]) -> Answer {
        self.socket.write_all(bytes).await.expect("send");
        let RawWebSocket {
            mut socket,
            mut received,
        } = self;
        tokio::time::timeout(PATIENCE, answer(&mut socket, &mut received))
            .await
            .expect("the server answers within the patience window")
    }
}

/// What the server answered a frame with.
#[derive(Debug, PartialEq)]
enum Answer {
    /// A close frame and its code, or the connection ended without one.
    Closed(Option<u16>),
    Text(String),
}

/// Reads until a response head is complete; returns it, leaving what
/// follows in `received`.
async fn read_head(socket: &mut TcpStream, received: &mut Vec<u8>) -> String {
    loop {
        if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&received[..end]).into_owned();
            received.drain(..end + 4);
            return head;
        }
        let mut buf = [0u8; 4096];
        let n = tokio::time::timeout(PATIENCE, socket.read(&mut buf))
            .await
            .expect("a head within the patience window")
            .expect("read");
        assert!(n > 0, "closed before a head");
        received.extend_from_slice(&buf[..n]);
    }
}

async fn read_at_least(socket: &mut TcpStream, received: &mut Vec<u8>, len: usize) {
    let mut buf = [0u8; 4096];
    while received.len() < len {
        let n = socket.read(&mut buf).await.expect("read");
        assert!(n > 0, "closed mid-body");
        received.extend_from_slice(&buf[..n]);
    }
}

/// Reads server frames until a close or a text frame other than the
/// welcome.
async fn answer(reader: &mut (impl AsyncReadExt + Unpin), received: &mut Vec<u8>) -> Answer {
    loop {
        while let Some((opcode, payload, consumed)) = server_frame(received) {
            received.drain(..consumed);
            match opcode {
                0x8 => {
                    let code = payload.get(..2).map(|c| u16::from_be_bytes([c[0], c[1]]));
                    return Answer::Closed(code);
                }
                0x1 => {
                    let text = String::from_utf8_lossy(&payload).into_owned();
                    if !text.contains(r#""type":"welcome""#) {
                        return Answer::Text(text);
                    }
                }
                _ => {}
            }
        }
        let mut buf = [0u8; 4096];
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => return Answer::Closed(None),
            Ok(n) => received.extend_from_slice(&buf[..n]),
        }
    }
}

/// The first complete (unmasked) server frame in `buf`: its opcode, its
/// payload and how many bytes it took.
fn server_frame(buf: &[u8]) -> Option<(u8, Vec<u8>, usize)> {
    let opcode = buf.first()? & 0x0f;
    let (length, start) = match buf.get(1)? & 0x7f {
        126 => (u16::from_be_bytes([*buf.get(2)?, *buf.get(3)?]) as usize, 4),
        127 => (
            u64::from_be_bytes(buf.get(2..10)?.try_into().ok()?) as usize,
            10,
        ),
        short => (short as usize, 2),
    };
    let payload = buf.get(start..start + length)?;
    Some((opcode, payload.to_vec(), start + length))
}

/// A subscriber that must go on receiving while the server is attacked.
async fn bystander(app: &TestApp) -> crate::ws_client::WsClient {
    let mut client = app.ws(&app.reader).await;
    client.expect("welcome").await;
    client.subscribe(&["bystanders"], None, "s").await;
    client.expect("caught_up").await;
    client
}

async fn a_frame_declaring_more_than_the_limit_is_refused_from_its_header(
    token_of: fn(&TestApp) -> String,
    path: Path,
) {
    let app = spawn_app().await;
    let mut bystander = bystander(&app).await;
    let limit = app.config().ws_max_frame_bytes;

    let attacker = RawWebSocket::open(&app.base, &token_of(&app), path).await;
    // 2^63 - 1 bytes declared, and 64 MiB sent: the server must close on
    // the header, long before the auth deadline or the ping timeout.
    let answer = attacker.send_frame(u64::MAX >> 1, 64 << 20).await;
    assert_eq!(
        answer,
        Answer::Closed(Some(MESSAGE_TOO_BIG)),
        "{path:?}, limit {limit}"
    );

    let published = app.publish(&event("bystanders")).await;
    let id = published.body["events"][0]["id"].as_i64().expect("an id");
    assert_eq!(bystander.next_event_id().await, id);
}

fn no_token(_: &TestApp) -> String {
    String::new()
}

fn reader_token(app: &TestApp) -> String {
    app.reader.clone()
}

#[actix_web::test]
async fn an_oversized_frame_header_without_a_token_closes_with_1009_on_the_edge() {
    a_frame_declaring_more_than_the_limit_is_refused_from_its_header(no_token, Path::Edge).await;
}

#[actix_web::test]
async fn an_oversized_frame_header_without_a_token_closes_with_1009_through_actix() {
    a_frame_declaring_more_than_the_limit_is_refused_from_its_header(no_token, Path::Dispatcher)
        .await;
}

#[actix_web::test]
async fn an_oversized_frame_header_with_a_token_closes_with_1009_on_the_edge() {
    a_frame_declaring_more_than_the_limit_is_refused_from_its_header(reader_token, Path::Edge)
        .await;
}

#[actix_web::test]
async fn an_oversized_frame_header_with_a_token_closes_with_1009_through_actix() {
    a_frame_declaring_more_than_the_limit_is_refused_from_its_header(
        reader_token,
        Path::Dispatcher,
    )
    .await;
}

#[actix_web::test]
async fn a_frame_of_exactly_the_limit_is_read_whole() {
    let app = spawn_app().await;
    let limit = app.config().ws_max_frame_bytes;
    let client = RawWebSocket::open(&app.base, &app.reader, Path::Edge).await;
    // NULs are UTF-8 but no JSON message: read whole, then answered as
    // one the server does not understand, not as one too big.
    let answer = client.send_frame(limit as u64, limit).await;
    match answer {
        Answer::Text(text) => assert!(text.contains("invalid_message"), "{text}"),
        closed => panic!("a frame within the limit was refused: {closed:?}"),
    }
}

#[actix_web::test]
async fn a_subscribe_naming_more_patterns_than_a_connection_may_hold_is_refused_before_parsing() {
    let app = spawn_app().await;
    let mut bystander = bystander(&app).await;
    let mut client = app.ws(&app.reader).await;
    client.expect("welcome").await;
    // 10,800 patterns in one 64 KiB message, all the same: deduplicated
    // they would fit, but they are counted as sent.
    let topics = vec!["p"; 10_800];
    client
        .send(serde_json::json!({"type": "subscribe", "topics": topics, "request_id": "flood"}))
        .await;
    let error = client.expect("error").await;
    assert_eq!(error["error"], "too_many_subscriptions", "{error}");
    assert_eq!(error["request_id"], "flood");

    let published = app.publish(&event("bystanders")).await;
    let id = published.body["events"][0]["id"].as_i64().expect("an id");
    assert_eq!(bystander.next_event_id().await, id);
}

/// The status a WebSocket upgrade without a token is answered with; the
/// connection is kept open (in the returned socket) while it lasts.
async fn tokenless_upgrade(app: &TestApp) -> (u16, TcpStream) {
    tokenless_upgrade_with(app, "").await
}

/// The same, with `extra` header lines (each ending in CRLF).
async fn tokenless_upgrade_with(app: &TestApp, extra: &str) -> (u16, TcpStream) {
    let address = app.base.trim_start_matches("http://");
    let mut socket = TcpStream::connect(address).await.expect("connect");
    let head = format!(
        "GET /ws HTTP/1.1\r\nHost: pushlog\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n"
    );
    socket.write_all(head.as_bytes()).await.expect("send");
    let mut received = Vec::new();
    let head = read_head(&mut socket, &mut received).await;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("a status line");
    (status, socket)
}

#[actix_web::test]
async fn connections_without_a_token_do_not_take_the_slots_of_those_with_one() {
    let app = crate::helpers::spawn_app_with(|c| {
        c.max_connections = 2;
        c.max_pending_connections = 30;
        c.max_pending_per_address = 30;
    })
    .await;
    let mut waiting = Vec::new();
    for _ in 0..30 {
        let (status, socket) = tokenless_upgrade(&app).await;
        assert_eq!(status, 101);
        waiting.push(socket);
    }
    let (status, _refused) = tokenless_upgrade(&app).await;
    assert_eq!(status, 503, "the pending budget is spent");

    // Every slot is still there for clients that bring a token.
    let mut stream = app.stream(&app.reader, "topics=bystanders", None).await;
    assert_eq!(stream.status, 200);
    stream.opened().await;
    let mut client = bystander(&app).await;
    let published = app.publish(&event("bystanders")).await;
    let id = published.body["events"][0]["id"].as_i64().expect("an id");
    assert_eq!(stream.next_event().await.0, id);
    assert_eq!(client.next_event_id().await, id);
}

#[actix_web::test]
async fn one_address_may_hold_only_its_share_of_the_pending_budget() {
    let app = crate::helpers::spawn_app_with(|c| {
        c.max_pending_connections = 30;
        c.max_pending_per_address = 3;
    })
    .await;
    let mut waiting = Vec::new();
    for _ in 0..3 {
        let (status, socket) = tokenless_upgrade(&app).await;
        assert_eq!(status, 101);
        waiting.push(socket);
    }
    let (status, _refused) = tokenless_upgrade(&app).await;
    assert_eq!(status, 503);
    // A client with a token is not pending, wherever it comes from.
    let mut client = bystander(&app).await;
    let published = app.publish(&event("bystanders")).await;
    let id = published.body["events"][0]["id"].as_i64().expect("an id");
    assert_eq!(client.next_event_id().await, id);
    // A waiting connection that leaves gives its place back.
    waiting.pop();
    let reopened = async {
        loop {
            let (status, socket) = tokenless_upgrade(&app).await;
            if status == 101 {
                return socket;
            }
            // The server notices the close on its next read.
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(PATIENCE, reopened)
        .await
        .expect("the place is given back");
}

#[actix_web::test]
async fn a_pending_connection_that_authenticates_when_every_slot_is_taken_is_closed_with_1013() {
    let app = crate::helpers::spawn_app_with(|c| c.max_connections = 1).await;
    let _holder = bystander(&app).await;
    let mut late = app
        .ws_with(|request| request, "")
        .await
        .expect("upgraded while pending");
    late.send(serde_json::json!({"type": "auth", "token": app.reader}))
        .await;
    assert_eq!(late.close_code().await, Some(1013));
}

#[actix_web::test]
async fn payloads_that_other_readers_could_not_parse_are_refused_with_422() {
    let app = spawn_app().await;
    let deep = format!(
        r#"{{"topic":"t","type":"deep","payload":{}1{}}}"#,
        "[".repeat(32_000),
        "]".repeat(32_000)
    );
    let lone_surrogate = r#"{"topic":"t","type":"lone","payload":{"s":"\ud800"}}"#;
    for (body, why) in [(deep.as_str(), "nested"), (lone_surrogate, "surrogate")] {
        let reply = app
            .publish_raw(&app.publisher, "application/json", body.to_owned())
            .await;
        assert_eq!(reply.status, 422, "{why}: {}", reply.body);
        assert_eq!(reply.error_code(), "invalid_event", "{why}");
        assert!(
            reply.body["message"].as_str().unwrap_or("").contains(why),
            "{why}: {}",
            reply.body
        );
    }
    // Nothing was stored; the log stays readable by every JSON parser.
    assert_eq!(app.all_ids().await, Vec::<i64>::new());
    let fine = r#"{"topic":"t","type":"ok","payload":{"s":"\ud83d\ude00","d":[[[1]]]}}"#;
    let reply = app
        .publish_raw(&app.publisher, "application/json", fine.to_owned())
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
}

/// RFC 6455 §8.1: a text message that is not UTF-8 fails the connection
/// with 1007, not 1002.
#[actix_web::test]
async fn a_text_message_that_is_not_utf8_closes_with_1007() {
    let app = spawn_app().await;
    for path in [Path::Edge, Path::Dispatcher] {
        let client = RawWebSocket::open(&app.base, &app.reader, path).await;
        // A masked text frame (mask of zeros) holding the byte 0xff.
        let frame = [0x81, 0x81, 0, 0, 0, 0, 0xff];
        assert_eq!(
            client.send_bytes(&frame).await,
            Answer::Closed(Some(1007)),
            "{path:?}"
        );
    }
}

/// A handshake head as sent, and the response's status and headers.
async fn upgrade_with(app: &TestApp, headers: &[u8]) -> crate::raw::Head {
    let mut raw = crate::raw::Raw::open(app).await;
    let mut request = b"GET /ws HTTP/1.1\r\nHost: pushlog\r\n".to_vec();
    request.extend_from_slice(headers);
    request.extend_from_slice(b"\r\n");
    raw.socket.write_all(&request).await.expect("send");
    raw.head().await
}

const KEY: &[u8] = b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";

#[actix_web::test]
async fn an_unsupported_websocket_version_is_told_which_one_is_spoken() {
    let app = spawn_app().await;
    let headers = [
        b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 8\r\n".as_slice(),
        KEY,
    ]
    .concat();
    let head = upgrade_with(&app, &headers).await;
    assert_eq!(head.status, 400);
    assert_eq!(head.header("sec-websocket-version"), Some("13"));
}

#[actix_web::test]
async fn an_upgrade_to_something_else_than_websocket_is_refused() {
    let app = spawn_app().await;
    for upgrade in ["notwebsocket", "websockets", "h2c"] {
        let headers = [
            format!("Upgrade: {upgrade}\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n")
                .as_bytes(),
            KEY,
        ]
        .concat();
        assert_eq!(upgrade_with(&app, &headers).await.status, 400, "{upgrade}");
    }
    let listed = [
        b"Upgrade: h2c, WebSocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            .as_slice(),
        KEY,
    ]
    .concat();
    assert_eq!(
        upgrade_with(&app, &listed).await.status,
        101,
        "a token in a list"
    );
}

#[actix_web::test]
async fn a_cookie_upgrade_with_an_origin_that_is_not_text_is_refused_as_foreign() {
    let app = spawn_app().await;
    let headers = [
        b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n".as_slice(),
        KEY,
        format!("Cookie: pushlog_token={}\r\n", app.reader).as_bytes(),
        b"Origin: https://\xffevil.example\r\n",
    ]
    .concat();
    assert_eq!(upgrade_with(&app, &headers).await.status, 403);
}

/// Behind a reverse proxy every peer address is the proxy's: the pending
/// cap per address counts the clients the proxy names, and only when the
/// proxy is trusted (a client could name anyone).
#[actix_web::test]
async fn the_pending_cap_counts_the_client_a_trusted_proxy_names() {
    let trusting = crate::helpers::spawn_app_with(|c| {
        c.max_pending_per_address = 1;
        c.trusted_proxies = vec!["127.0.0.0/8".parse().expect("a network")];
    })
    .await;
    let mut waiting = Vec::new();
    for client in ["198.51.100.1", "198.51.100.2", "198.51.100.3"] {
        let forwarded = format!("X-Forwarded-For: {client}\r\n");
        let (status, socket) = tokenless_upgrade_with(&trusting, &forwarded).await;
        assert_eq!(status, 101, "{client} has its own share");
        waiting.push(socket);
    }
    let again = "X-Forwarded-For: 198.51.100.1\r\n";
    assert_eq!(tokenless_upgrade_with(&trusting, again).await.0, 503);

    let untrusting = crate::helpers::spawn_app_with(|c| c.max_pending_per_address = 1).await;
    let (first, _held) =
        tokenless_upgrade_with(&untrusting, "X-Forwarded-For: 198.51.100.1\r\n").await;
    assert_eq!(first, 101);
    let (second, _) =
        tokenless_upgrade_with(&untrusting, "X-Forwarded-For: 198.51.100.2\r\n").await;
    assert_eq!(second, 503, "an untrusted X-Forwarded-For names nobody");
}

/// A client frame with the first byte `fin_and_opcode`, masked with a mask
/// of zeros (so the payload is sent as it is), in the shortest length form.
fn client_frame(fin_and_opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![fin_and_opcode];
    match payload.len() {
        short @ 0..126 => frame.push(0x80 | short as u8),
        medium @ 126..65_536 => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(medium as u16).to_be_bytes());
        }
        long => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(long as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&[0; 4]);
    frame.extend_from_slice(payload);
    frame
}

const TEXT_NOT_FINAL: u8 = 0x01;
const CONTINUATION_NOT_FINAL: u8 = 0x00;
const CONTINUATION_FINAL: u8 = 0x80;
const PING: u8 = 0x89;

/// RFC 6455 §5.4: a message may come in fragments, with control frames
/// between them; the server reads it whole.
#[actix_web::test]
async fn a_message_sent_in_fragments_is_read_whole_on_both_paths() {
    let app = spawn_app().await;
    let message = br#"{"type":"subscribe","topics":["fragmented"],"request_id":"f"}"#;
    let (first, rest) = message.split_at(10);
    let (middle, last) = rest.split_at(20);
    for path in [Path::Edge, Path::Dispatcher] {
        let client = RawWebSocket::open(&app.base, &app.reader, path).await;
        let mut frames = client_frame(TEXT_NOT_FINAL, first);
        frames.extend(client_frame(PING, b"between"));
        frames.extend(client_frame(CONTINUATION_NOT_FINAL, middle));
        frames.extend(client_frame(CONTINUATION_FINAL, last));
        match client.send_bytes(&frames).await {
            Answer::Text(text) => {
                assert!(text.contains(r#""type":"subscribed""#), "{path:?}: {text}")
            }
            closed => panic!("{path:?}: a fragmented message was refused: {closed:?}"),
        }
    }
}

#[actix_web::test]
async fn fragments_adding_up_to_more_than_the_limit_close_with_1009() {
    let app = spawn_app().await;
    let mut bystander = bystander(&app).await;
    let limit = app.config().ws_max_frame_bytes;
    let half = vec![b' '; limit / 2 + 1];
    for path in [Path::Edge, Path::Dispatcher] {
        let client = RawWebSocket::open(&app.base, &app.reader, path).await;
        // Each fragment is within the limit; together they are not.
        let mut frames = client_frame(TEXT_NOT_FINAL, &half);
        frames.extend(client_frame(CONTINUATION_FINAL, &half));
        assert_eq!(
            client.send_bytes(&frames).await,
            Answer::Closed(Some(MESSAGE_TOO_BIG)),
            "{path:?}"
        );
    }

    let published = app.publish(&event("bystanders")).await;
    let id = published.body["events"][0]["id"].as_i64().expect("an id");
    assert_eq!(bystander.next_event_id().await, id);
}

/// The critical hole, measured where it showed: the real binary's peak
/// resident memory while clients with and without a token, on both paths,
/// each declare a 2^63-byte frame and send 64 MiB of it.
#[actix_web::test]
async fn oversized_frames_cost_the_real_server_no_memory() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let server = Server::start(&dir.path().join("memory.db"), &[]).await;
    let auth = pushlog::auth::Authenticator::from_secret(SECRET.as_bytes()).expect("a key");
    let reader = auth.mint("reader", &[], None, 600).expect("a token");
    let before = server.memory_kib("VmRSS");

    for token in ["", reader.as_str()] {
        for path in [Path::Edge, Path::Dispatcher] {
            let attacker = RawWebSocket::open(&server.base, token, path).await;
            let answer = attacker.send_frame(u64::MAX >> 1, 64 << 20).await;
            assert_eq!(answer, Answer::Closed(Some(MESSAGE_TOO_BIG)), "{path:?}");
        }
    }

    let peak = server.memory_kib("VmHWM");
    assert!(
        peak < before + 16 * 1024,
        "resident memory peaked at {peak} KiB, from {before} KiB before the attack"
    );
}
