//! `GET /events/missed`: replay by pages over plain HTTP.

use serde_json::json;

use crate::helpers::{event, ids_of, range, spawn_app, spawn_app_with};

#[actix_web::test]
async fn pages_cover_every_missed_event_exactly_once() {
    // From memory and from the log: the same pages.
    for memory in [0, 20_000] {
        pages_cover_every_event_once(spawn_app_with(|c| c.replay_memory_events = memory).await)
            .await;
    }
}

async fn pages_cover_every_event_once(app: crate::helpers::TestApp) {
    app.publish(&json!((0..25).map(|_| event("t")).collect::<Vec<_>>()))
        .await;

    let mut since = 3;
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let page = app
            .missed(&app.reader, &format!("since={since}&limit=10"))
            .await;
        assert_eq!(page.status, 200, "{}", page.body);
        assert_eq!(page.body["head"], 25);
        seen.extend(ids_of(&page.body["events"]));
        since = page.body["next_since"].as_i64().unwrap();
        pages += 1;
        if !page.body["has_more"].as_bool().unwrap() {
            break;
        }
    }

    assert_eq!(seen, range(4, 25));
    assert_eq!(pages, 3);
    assert_eq!(since, 25);
}

#[actix_web::test]
async fn an_empty_log_answers_with_no_events_and_head_zero() {
    let app = spawn_app().await;

    let page = app.missed(&app.reader, "since=0").await;

    assert_eq!(page.status, 200);
    assert_eq!(
        page.body,
        json!({"events": [], "next_since": 0, "has_more": false, "head": 0})
    );
}

#[actix_web::test]
async fn topic_patterns_select_what_is_returned() {
    let app = spawn_app().await;
    for topic in ["device:1", "alerts", "device:2", "other"] {
        app.publish(&event(topic)).await;
    }

    let devices = app.missed(&app.reader, "since=0&topics=device:*").await;
    let two = app.missed(&app.reader, "since=0&topics=alerts,other").await;

    assert_eq!(ids_of(&devices.body["events"]), vec![1, 3]);
    assert_eq!(ids_of(&two.body["events"]), vec![2, 4]);
    assert_eq!(devices.body["next_since"], 4);
}

#[actix_web::test]
async fn a_timestamp_cursor_returns_the_events_accepted_after_it() {
    let app = spawn_app().await;
    let first = app.publish(&event("t")).await;
    let t = first.body["events"][0]["timestamp"]
        .as_str()
        .unwrap()
        .to_owned();
    app.publish_many("t", 3).await;

    let all = app.missed(&app.reader, "since=2000-01-01T00:00:00Z").await;
    let after = app.missed(&app.reader, &format!("since={t}")).await;
    let future = app
        .missed(&app.reader, "since=2999-01-01T00:00:00.000Z")
        .await;

    assert_eq!(ids_of(&all.body["events"]), range(1, 4));
    for e in after.body["events"].as_array().unwrap() {
        assert!(
            e["timestamp"].as_str().unwrap() > t.as_str(),
            "{e} is not after {t}"
        );
    }
    assert!(!ids_of(&after.body["events"]).contains(&1));
    assert!(ids_of(&future.body["events"]).is_empty());
}

#[actix_web::test]
async fn a_cursor_ahead_of_the_log_is_410_cursor_unknown() {
    let app = spawn_app().await;
    app.publish_many("t", 2).await;

    let reply = app.missed(&app.reader, "since=3").await;

    assert_eq!(reply.status, 410);
    assert_eq!(reply.body["error"], "cursor_unknown");
    assert_eq!(reply.body["head"], 2);
    assert_eq!(reply.body["oldest_id"], 1);
}

#[actix_web::test]
async fn malformed_queries_are_400() {
    let app = spawn_app().await;

    for (query, code) in [
        ("", "invalid_cursor"),
        ("since=", "invalid_cursor"),
        ("since=-1", "invalid_cursor"),
        ("since=abc", "invalid_cursor"),
        ("since=2026-13-45T00:00:00Z", "invalid_cursor"),
        ("since=0&limit=0", "invalid_limit"),
        ("since=0&limit=10001", "invalid_limit"),
        ("since=0&limit=ten", "invalid_limit"),
        ("since=0&topics=a%20b", "invalid_topic"),
    ] {
        let reply = app.missed(&app.reader, query).await;
        assert_eq!(
            (reply.status, reply.error_code()),
            (400, code),
            "{query}: {}",
            reply.body
        );
    }
}
