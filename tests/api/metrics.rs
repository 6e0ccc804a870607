//! `GET /metrics`: the Prometheus text format, counting what was committed.

use serde_json::json;

use crate::helpers::{TestApp, event, spawn_app};

/// The value of an unlabelled sample in the text format.
fn sample(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample {name} in:\n{text}"))
        .parse()
        .expect("a numeric sample")
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
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    assert!(
        text.contains("# TYPE pushlog_events_appended_total counter\n"),
        "{text}"
    );
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
