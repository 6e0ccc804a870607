//! `GET /metrics`: the OpenMetrics text format Prometheus scrapes, counting
//! what was committed, delivered, replayed and refused.

use std::collections::BTreeSet;

use serde_json::{Value, json};
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

/// Sends a request head with a header line that has no colon, which actix
/// refuses with a 400 before any handler runs.
async fn send_a_malformed_request_head(app: &TestApp) {
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
}

/// The metrics once no WebSocket session is open any more. A session counts
/// its close as it ends, after the client saw the close: wait for the
/// connection gauge to drop rather than read too early.
async fn metrics_once_websocket_sessions_ended(app: &TestApp) -> String {
    let closed = async {
        loop {
            let text = metrics(app).await;
            if sample(&text, r#"pushlog_connections{transport="ws"}"#) == 0 {
                return text;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(crate::helpers::PATIENCE, closed)
        .await
        .expect("the WebSocket session ends")
}

#[actix_web::test]
async fn malformed_requests_and_websocket_closes_are_counted_not_logged_as_errors() {
    let app = spawn_app().await;
    send_a_malformed_request_head(&app).await;

    let mut ws = app.ws(&app.reader).await;
    ws.expect("welcome").await;
    ws.send_text("not json").await;
    ws.expect("error").await;
    ws.close().await;
    let text = metrics_once_websocket_sessions_ended(&app).await;

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

/// The dashboard operators import, as `deploy/grafana/README.md` describes.
fn grafana_dashboard() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/grafana/pushlog.json");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path} is not JSON: {e}"))
}

/// Every PromQL query in the dashboard: the panels' `expr` and the template
/// variables' `query` (a string, or an object holding one), wherever they
/// sit, so a panel inside a collapsed row counts too.
fn dashboard_queries(value: &Value, queries: &mut Vec<String>) {
    match value {
        Value::Object(fields) => {
            for (key, value) in fields {
                match (key.as_str(), value) {
                    ("expr" | "query", Value::String(query)) => queries.push(query.clone()),
                    _ => dashboard_queries(value, queries),
                }
            }
        }
        Value::Array(values) => values
            .iter()
            .for_each(|value| dashboard_queries(value, queries)),
        _ => {}
    }
}

/// The `pushlog_…` metric names a query mentions.
fn metric_names(query: &str) -> impl Iterator<Item = &str> {
    query.match_indices("pushlog_").map(move |(start, prefix)| {
        let rest = &query[start + prefix.len()..];
        let end = rest
            .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
            .unwrap_or(rest.len());
        &query[start..start + prefix.len() + end]
    })
}

/// Every sample name a `/metrics` exposition declares: each `# TYPE` line's
/// family with the OpenMetrics suffixes of its type. A query for a counter
/// without its `_total`, or for a histogram's bare family name, finds
/// nothing in Prometheus, so here it counts as missing too.
fn exportable_sample_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        let Some(declaration) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let (family, kind) = declaration
            .split_once(' ')
            .unwrap_or_else(|| panic!("a TYPE line without a type: {line}"));
        let suffixes: &[&str] = match kind {
            "counter" => &["_total", "_created"],
            "histogram" => &["_bucket", "_sum", "_count", "_created"],
            "gaugehistogram" => &["_bucket", "_gsum", "_gcount"],
            "summary" => &["", "_sum", "_count", "_created"],
            "info" => &["_info"],
            _ => &[""],
        };
        names.extend(suffixes.iter().map(|suffix| format!("{family}{suffix}")));
    }
    names
}

#[actix_web::test]
async fn every_metric_the_grafana_dashboard_queries_is_exported() {
    let app = spawn_app().await;
    app.publish(&event("t")).await;
    // A labelled family is rendered, `# TYPE` line and all, only once it has
    // a child: count a reset, a malformed request and a WebSocket close.
    let mut stream = app.stream(&app.reader, "topics=t&since=99", None).await;
    stream.expect_reset().await;
    send_a_malformed_request_head(&app).await;
    let mut ws = app.ws(&app.reader).await;
    ws.expect("welcome").await;
    ws.close().await;
    let text = metrics_once_websocket_sessions_ended(&app).await;
    let mut queries = Vec::new();
    dashboard_queries(&grafana_dashboard(), &mut queries);

    let exportable = exportable_sample_names(&text);
    let queried: BTreeSet<&str> = queries.iter().flat_map(|q| metric_names(q)).collect();
    let missing: Vec<&str> = queried
        .iter()
        .copied()
        .filter(|name| !exportable.contains(*name))
        .collect();

    assert!(
        queried.contains("pushlog_events_appended_total") && queried.contains("pushlog_log_head"),
        "the queries were found: {queried:?}"
    );
    assert!(
        missing.is_empty(),
        "the dashboard queries {missing:?}, which /metrics does not export \
         (a labelled family appears only once a child of it is counted):\n{text}"
    );
}

#[test]
fn the_grafana_dashboard_has_titled_panels_under_every_row() {
    let dashboard = grafana_dashboard();
    let top = dashboard["panels"].as_array().expect("a panels array");
    // An expanded row is followed by its panels; a collapsed one holds them.
    let mut rows: Vec<(&str, Vec<&Value>)> = Vec::new();
    let mut all = Vec::new();
    for panel in top {
        all.push(panel);
        if panel["type"] == "row" {
            let inside: Vec<&Value> = panel["panels"]
                .as_array()
                .map(|panels| panels.iter().collect())
                .unwrap_or_default();
            all.extend(&inside);
            rows.push((panel["title"].as_str().unwrap_or(""), inside));
        } else {
            let (_, panels) = rows.last_mut().expect("every panel sits under a row");
            panels.push(panel);
        }
    }

    let row_titles: Vec<&str> = rows.iter().map(|(title, _)| *title).collect();
    for wanted in ["Traffic", "Latency", "Connections", "Catch-up", "Health"] {
        let panels = rows
            .iter()
            .find(|(title, _)| *title == wanted)
            .map(|(_, panels)| panels)
            .unwrap_or_else(|| panic!("no row {wanted:?} among {row_titles:?}"));
        assert!(!panels.is_empty(), "row {wanted:?} has no panel");
    }
    let mut ids = BTreeSet::new();
    for panel in all {
        let title = panel["title"].as_str().unwrap_or("");
        assert!(!title.trim().is_empty(), "a panel without a title: {panel}");
        let id = panel["id"]
            .as_u64()
            .unwrap_or_else(|| panic!("{title:?} has no id"));
        assert!(ids.insert(id), "panel id {id} is used twice");
        if panel["type"] != "row" {
            let targets = panel["targets"].as_array().map_or(&[][..], Vec::as_slice);
            assert!(
                !targets.is_empty()
                    && targets
                        .iter()
                        .all(|t| t["expr"].as_str().is_some_and(|e| !e.is_empty())),
                "{title:?} has a target without a query"
            );
        }
    }
}
