//! Retention deletes from the old end only, and a cursor it has passed is
//! told so (`410` / `reset`), never served with a silent gap.

use std::time::{Duration, Instant};

use pushlog::store::Retention;
use pushlog::store::retention::prune_now;
use serde_json::json;

use crate::helpers::{PATIENCE, event, ids_of, range, spawn_app, spawn_app_with};

const KEEP_TEN: Retention = Retention {
    max_age: None,
    max_events: Some(10),
    entity_max_age: None,
};

#[actix_web::test]
async fn count_retention_keeps_the_newest_events() {
    let app = spawn_app().await;
    app.publish(&json!((0..30).map(|_| event("t")).collect::<Vec<_>>()))
        .await;

    let deleted = prune_now(&app.handle.log, KEEP_TEN).await.unwrap();

    assert_eq!(deleted, 20);
    assert_eq!(
        app.missed(&app.reader, "since=0").await.status,
        410,
        "since=0 is now expired"
    );
    let kept = app.missed(&app.reader, "since=20").await;
    assert_eq!(ids_of(&kept.body["events"]), range(21, 30));
}

#[actix_web::test]
async fn an_expired_cursor_is_410_on_missed_and_a_reset_on_the_stream() {
    let app = spawn_app().await;
    app.publish(&json!((0..30).map(|_| event("t")).collect::<Vec<_>>()))
        .await;
    prune_now(&app.handle.log, KEEP_TEN).await.unwrap();

    let missed = app.missed(&app.reader, "since=5").await;
    let mut stream = app.stream(&app.reader, "", Some(5)).await;

    assert_eq!(missed.status, 410);
    assert_eq!(missed.body["error"], "cursor_expired");
    assert_eq!(
        (
            missed.body["oldest_id"].as_i64(),
            missed.body["head"].as_i64()
        ),
        (Some(21), Some(30))
    );
    assert_eq!(
        stream.expect_reset().await,
        json!({"reason": "cursor_expired", "oldest_id": 21, "head": 30})
    );
    assert_eq!(stream.next_frame().await, None);
}

#[actix_web::test]
async fn ids_keep_counting_after_retention_empties_the_log() {
    let app = spawn_app().await;
    app.publish_many("t", 3).await;
    let everything = Retention {
        max_age: Some(Duration::from_millis(1)),
        max_events: None,
        entity_max_age: None,
    };
    // Ages are measured in milliseconds; let the events become older than 1 ms.
    tokio::time::sleep(Duration::from_millis(20)).await;
    prune_now(&app.handle.log, everything).await.unwrap();

    let next = app.publish(&event("t")).await;
    let page = app.missed(&app.reader, "since=3").await;

    assert_eq!(next.body["events"][0]["id"], 4);
    assert_eq!(ids_of(&page.body["events"]), vec![4]);
    assert_eq!(app.missed(&app.reader, "since=2").await.status, 410);
}

#[actix_web::test]
async fn the_background_pruner_enforces_count_retention_on_its_own() {
    let app = spawn_app_with(|c| {
        c.retention = pushlog::config::LogRetention {
            max_age: None,
            max_events: Some(10),
        };
        c.prune_interval = Duration::from_secs(1);
    })
    .await;

    app.publish(&json!((0..30).map(|_| event("t")).collect::<Vec<_>>()))
        .await;

    // Nothing announces a prune, so poll until it shows, within a deadline.
    let deadline = Instant::now() + PATIENCE;
    let expired = loop {
        let reply = app.missed(&app.reader, "since=0").await;
        if reply.status != 200 {
            break reply;
        }
        assert!(
            Instant::now() < deadline,
            "the pruner did not run within {PATIENCE:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        (expired.status, expired.error_code()),
        (410, "cursor_expired")
    );
    assert_eq!(
        (
            expired.body["oldest_id"].as_i64(),
            expired.body["head"].as_i64()
        ),
        (Some(21), Some(30))
    );
    let kept = app.missed(&app.reader, "since=20").await;
    assert_eq!(ids_of(&kept.body["events"]), range(21, 30));
}
