//! The connection edge: a stream request that opens a connection is
//! carried on the bare socket; anything else, and a stream request later on
//! a kept-alive connection, is served by actix. Both must look the same to
//! a client, apart from how the connection ends.

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use crate::helpers::{PATIENCE, TestApp, event, spawn_app, spawn_app_with};
use crate::raw::{Raw, masked_text_frame, websocket_handshake};

#[actix_web::test]
async fn a_stream_that_opens_a_connection_is_chunked_and_delivers_events() {
    let app = spawn_app().await;
    let mut raw = Raw::open(&app).await;
    raw.send("GET /events/stream?topics=edge", &app.reader)
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

    let published = app.publish(&event("edge")).await;
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

    raw.send("GET /events/stream?topics=edge", &app.reader)
        .await;
    let head = raw.head().await;
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-type"), Some("text/event-stream"));
    assert_ne!(head.header("connection"), Some("close"), "actix's own head");
    let published = app.publish(&event("edge")).await;
    let id = published.body["events"][0]["id"].as_i64().expect("an id");
    assert!(raw.read_until(&format!("id: {id}\n")).await);
}

#[actix_web::test]
async fn a_refused_stream_gets_the_json_error_and_the_connection_closes() {
    let app = spawn_app().await;
    let mut raw = Raw::open(&app).await;
    raw.send("GET /events/stream?topics=edge", "not-a-token")
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
    raw.send("GET /events/stream?topics=edge&since=999999", &app.reader)
        .await;
    let head = raw.head().await;
    assert_eq!(head.status, 200);
    raw.until_closed().await;
    assert!(raw.read.contains("event: reset"), "{}", raw.read);
    assert!(raw.read.ends_with("\r\n0\r\n\r\n"), "{:?}", raw.read);
}

#[actix_web::test]
async fn a_websocket_that_opens_a_connection_is_upgraded_and_reads_the_frames_sent_with_its_head() {
    let app = spawn_app().await;
    let mut raw = Raw::open(&app).await;
    let mut request = websocket_handshake(&app.reader);
    // The subscription rides in the same write as the handshake.
    request.extend(masked_text_frame(
        r#"{"type":"subscribe","topics":["edge"]}"#,
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

    let published = app.publish(&event("edge")).await;
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
    gauge(app, r#"pushlog_connections{transport="sse"}"#).await
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
    until_gauge(&app, r#"pushlog_connections{transport="sse"}"#, 0).await;
}

#[actix_web::test]
async fn a_websocket_client_that_vanishes_gives_its_session_and_slot_back() {
    let app = spawn_app().await;
    let mut raw = Raw::open(&app).await;
    let request = websocket_handshake(&app.reader);
    raw.socket.write_all(&request).await.expect("send");
    assert_eq!(raw.head().await.status, 101);
    assert!(raw.read_until(r#""type":"welcome""#).await);
    until_gauge(&app, r#"pushlog_connections{transport="ws"}"#, 1).await;

    // No close frame: the TCP connection just goes.
    drop(raw);
    until_gauge(&app, r#"pushlog_connections{transport="ws"}"#, 0).await;
}
