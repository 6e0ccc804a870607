//! `GET /metrics`: the OpenMetrics text format Prometheus scrapes, counting
//! what was committed, delivered, replayed and refused.

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{TestApp, event, spawn_app, spawn_app_with};

/// The value of a sample (its whole series name, labels included).
fn sample(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample {name} in:\n{text}"))
        .parse::<f64>()
        .expect("a numeric sample") as u64
}

async fn metrics(app: &TestApp) -> String {
    let (status, _, text) = app.get_text("/metrics").await;
    assert_eq!(status, 200);
    text
}

async fn appended_total(app: &TestApp) -> u64 {
    let (status, _, text) = app.get_text("/metrics").await;
    assert_eq!(status, 200);
    sample(&text, "pushlog_events_appended_total")
}

#[actix_web::test]
async fn metrics_are_served_in_the_prometheus_text_format() {
    let app = spawn_app().await;

    let (status, content_type, text) = app.get_text("/metrics").await;

    assert_eq!(status, 200);
    assert!(
        content_type.starts_with("application/openmetrics-text; version=1.0.0"),
        "{content_type}"
    );
    assert!(
        text.contains("# TYPE pushlog_events_appended counter\n"),
        "{text}"
    );
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert_eq!(sample(&text, "pushlog_log_head"), 0);
}

#[actix_web::test]
async fn the_appended_events_counter_counts_committed_events_not_retries() {
    let app = spawn_app().await;
    let batch = json!([
        {"topic": "t", "type": "n", "key": "k1"},
        event("t"),
        event("t")
    ]);
    let before = appended_total(&app).await;

    let first = app.publish(&batch).await;
    let after_publish = appended_total(&app).await;
    let retry = app
        .publish(&json!({"topic": "t", "type": "n", "key": "k1"}))
        .await;
    let after_retry = appended_total(&app).await;

    assert_eq!((first.status, retry.status), (201, 200));
    assert_eq!(before, 0);
    assert_eq!(after_publish, 3, "one batch of three events");
    assert_eq!(after_retry, 3, "an idempotent retry appends nothing");
}

#[actix_web::test]
async fn a_publish_is_timed_and_its_commit_counted_in_histograms() {
    let app = spawn_app().await;

    app.publish(&json!([event("t"), event("t")])).await;
    let text = metrics(&app).await;

    assert_eq!(sample(&text, "pushlog_publish_seconds_count"), 1);
    assert_eq!(sample(&text, "pushlog_commit_batch_events_count"), 1);
    assert_eq!(
        sample(&text, "pushlog_commit_batch_events_sum"),
        2,
        "two events in one commit"
    );
}

#[actix_web::test]
async fn replays_are_counted_by_source_and_live_deliveries_timed() {
    // No events kept in memory: every replay reads the log.
    let app = spawn_app_with(|config| config.replay_memory_events = 0).await;
    app.publish_many("t", 3).await;

    let mut replayed = app.stream(&app.reader, "topics=t&since=0", None).await;
    assert_eq!(replayed.ids_through(3).await, vec![1, 2, 3]);
    app.publish(&event("t")).await;
    assert_eq!(replayed.next_event().await.0, 4);
    let text = metrics(&app).await;

    assert_eq!(
        sample(&text, r#"pushlog_replayed_events_total{source="log"}"#),
        3
    );
    assert_eq!(
        sample(&text, "pushlog_replay_events_count"),
        1,
        "one replay, caught up"
    );
    assert_eq!(sample(&text, "pushlog_replay_events_sum"), 3);
    assert_eq!(
        sample(&text, "pushlog_delivery_seconds_count"),
        1,
        "the live event"
    );
    assert_eq!(sample(&text, "pushlog_deliveries_total"), 1);
}

#[actix_web::test]
async fn resets_are_counted_by_transport_and_reason() {
    let app = spawn_app().await;
    app.publish_many("t", 2).await;

    // A cursor beyond the head cannot be resumed.
    let mut stream = app.stream(&app.reader, "topics=t&since=99", None).await;
    let reset = stream.expect_reset().await;
    assert_eq!(reset["reason"], "cursor_unknown");
    let text = metrics(&app).await;

    assert_eq!(
        sample(
            &text,
            r#"pushlog_resets_total{transport="sse",reason="cursor_unknown"}"#
        ),
        1
    );
}

#[actix_web::test]
async fn malformed_requests_and_websocket_closes_are_counted_not_logged_as_errors() {
    let app = spawn_app().await;
    let address = app.base.trim_start_matches("http://").to_owned();
    let mut socket = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connect");
    socket
        .write_all(b"GET / HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n")
        .await
        .expect("send");
    let mut answer = Vec::new();
    socket.read_to_end(&mut answer).await.expect("read");
    assert!(
        answer.starts_with(b"HTTP/1.1 400"),
        "{}",
        String::from_utf8_lossy(&answer)
    );

    let mut ws = app.ws(&app.reader).await;
    ws.expect("welcome").await;
    ws.send_text("not json").await;
    ws.expect("error").await;
    ws.close().await;
    // The session counts its close as it ends: wait for the gauge to drop.
    let closed = async {
        loop {
            let text = metrics(&app).await;
            if sample(&text, r#"pushlog_connections{transport="ws"}"#) == 0 {
                return text;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    };
    let text = tokio::time::timeout(crate::helpers::PATIENCE, closed)
        .await
        .expect("the WebSocket session ends");

    assert_eq!(
        sample(
            &text,
            r#"pushlog_malformed_requests_total{kind="http_request"}"#
        ),
        1
    );
    assert_eq!(
        sample(
            &text,
            r#"pushlog_malformed_requests_total{kind="websocket_message"}"#
        ),
        1
    );
    assert_eq!(
        sample(&text, r#"pushlog_ws_closes_total{reason="client_closed"}"#),
        1
    );
}
