//! `POST /events`: what is acknowledged is in the log, and bad input changes
//! nothing.

use serde_json::json;

use crate::helpers::{event, ids_of, range, spawn_app, spawn_app_with};

#[actix_web::test]
async fn a_published_event_is_acknowledged_with_its_id_and_timestamp() {
    let app = spawn_app().await;

    let reply = app
        .publish(&json!({
            "topic": "faults",
            "type": "entity:updated",
            "entity": {"kind": "fault", "id": "42", "op": "updated"},
            "payload": {"status": "resolved"}
        }))
        .await;

    assert_eq!(reply.status, 201, "{}", reply.body);
    let published = &reply.body["events"][0];
    assert_eq!(published["id"], 1);
    assert_eq!(published["topic"], "faults");
    assert_eq!(published["type"], "entity:updated");
    let timestamp = published["timestamp"].as_str().unwrap();
    assert!(
        timestamp.ends_with('Z') && timestamp.len() == 24,
        "{timestamp}"
    );
    let stored = app.missed(&app.reader, "since=0").await;
    assert_eq!(
        stored.body["events"][0]["payload"],
        json!({"status": "resolved"})
    );
    assert_eq!(stored.body["events"][0]["entity"]["id"], "42");
}

#[actix_web::test]
async fn a_batch_gets_consecutive_ids_in_order() {
    let app = spawn_app().await;
    let batch: Vec<_> = (0..100)
        .map(|i| json!({"topic": "t", "type": "n", "payload": i}))
        .collect();

    let reply = app.publish(&json!(batch)).await;

    assert_eq!(reply.status, 201);
    assert_eq!(ids_of(&reply.body["events"]), range(1, 100));
    let stored = app.missed(&app.reader, "since=0").await;
    let payloads: Vec<i64> = stored.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["payload"].as_i64().unwrap())
        .collect();
    assert_eq!(payloads, (0..100).collect::<Vec<_>>());
}

#[actix_web::test]
async fn concurrent_publishers_all_get_distinct_committed_ids() {
    let app = std::rc::Rc::new(spawn_app().await);
    let mut tasks = Vec::new();
    for publisher in 0..32 {
        let app = app.clone();
        tasks.push(actix_web::rt::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..20 {
                let reply = app
                    .publish(&json!({"topic": "t", "type": "n", "payload": [publisher, i]}))
                    .await;
                assert_eq!(reply.status, 201);
                ids.push(reply.body["events"][0]["id"].as_i64().unwrap());
            }
            ids
        }));
    }
    let mut acknowledged = Vec::new();
    for task in tasks {
        acknowledged.extend(task.await.unwrap());
    }
    acknowledged.sort();

    assert_eq!(acknowledged, range(1, 640));
    assert_eq!(app.all_ids().await, range(1, 640));
}

#[actix_web::test]
async fn republishing_with_a_known_key_returns_the_original_and_appends_nothing() {
    let app = spawn_app().await;
    let body = json!({"topic": "orders", "type": "entity:created", "key": "order-7-created"});
    let first = app.publish(&body).await;

    let retry = app.publish(&body).await;

    assert_eq!(first.status, 201);
    assert_eq!(retry.status, 200);
    assert_eq!(retry.body["events"], first.body["events"]);
    assert_eq!(app.all_ids().await, vec![1]);
}

#[actix_web::test]
async fn a_retried_batch_returns_the_same_ids() {
    let app = spawn_app().await;
    let batch = json!([
        {"topic": "a", "type": "x", "key": "k1"},
        {"topic": "a", "type": "x", "key": "k2"}
    ]);
    let first = app.publish(&batch).await;

    let retry = app.publish(&batch).await;

    assert_eq!(retry.status, 200);
    assert_eq!(ids_of(&retry.body["events"]), ids_of(&first.body["events"]));
    assert_eq!(app.all_ids().await, vec![1, 2]);
}

#[actix_web::test]
async fn reusing_a_key_for_a_different_event_is_refused() {
    let app = spawn_app().await;
    app.publish(&json!({"topic": "a", "type": "x", "key": "k"}))
        .await;

    let reuse = app
        .publish(&json!({"topic": "a", "type": "y", "key": "k"}))
        .await;
    let twice_in_one = app
        .publish(&json!([{"topic": "a", "type": "x", "key": "d"}, {"topic": "a", "type": "x", "key": "d"}]))
        .await;

    assert_eq!(
        (reuse.status, reuse.error_code()),
        (422, "idempotency_conflict")
    );
    assert_eq!(
        (twice_in_one.status, twice_in_one.error_code()),
        (422, "duplicate_key")
    );
    assert_eq!(app.all_ids().await, vec![1]);
}

#[actix_web::test]
async fn one_bad_event_in_a_batch_of_100_appends_nothing() {
    let app = spawn_app().await;
    let mut batch: Vec<_> = (0..100).map(|_| event("fine")).collect();
    batch[57] = json!({"topic": "not a topic!", "type": "x"});

    let reply = app.publish(&json!(batch)).await;

    assert_eq!(reply.status, 422);
    assert_eq!(reply.error_code(), "invalid_event");
    assert!(
        reply.body["message"]
            .as_str()
            .unwrap()
            .contains("events[57]")
    );
    assert!(app.all_ids().await.is_empty());
}

#[actix_web::test]
async fn bad_input_gets_a_clear_error_and_changes_nothing() {
    let app = spawn_app_with(|c| c.max_body_bytes = 2 * 1024 * 1024).await;
    let big_payload = "x".repeat(70 * 1024);
    let too_many: Vec<_> = (0..1001).map(|_| event("t")).collect();
    let cases: Vec<(&str, &str, String, u16, &str)> = vec![
        (
            "malformed JSON",
            "application/json",
            "{\"topic\":".into(),
            400,
            "malformed_json",
        ),
        (
            "empty body",
            "application/json",
            "".into(),
            400,
            "malformed_json",
        ),
        (
            "wrong content type",
            "text/plain",
            event("t").to_string(),
            415,
            "unsupported_media_type",
        ),
        (
            "no content type",
            "",
            event("t").to_string(),
            415,
            "unsupported_media_type",
        ),
        (
            "oversized payload",
            "application/json",
            json!({"topic": "t", "type": "x", "payload": big_payload}).to_string(),
            413,
            "payload_too_large",
        ),
        (
            "oversized body",
            "application/json",
            format!("[{}]", "1,".repeat(1024 * 1024)),
            413,
            "body_too_large",
        ),
        (
            "more than 1000 events",
            "application/json",
            json!(too_many).to_string(),
            413,
            "batch_too_large",
        ),
        (
            "bad topic",
            "application/json",
            json!({"topic": "a b", "type": "x"}).to_string(),
            422,
            "invalid_event",
        ),
        (
            "missing type",
            "application/json",
            json!({"topic": "a"}).to_string(),
            422,
            "invalid_event",
        ),
        (
            "client-chosen id",
            "application/json",
            json!({"topic": "a", "type": "x", "id": 9}).to_string(),
            422,
            "invalid_event",
        ),
        (
            "bad entity op",
            "application/json",
            json!({"topic": "a", "type": "x", "entity": {"kind": "k", "id": "1", "op": "merged"}})
                .to_string(),
            422,
            "invalid_event",
        ),
        (
            "empty array",
            "application/json",
            "[]".into(),
            422,
            "invalid_event",
        ),
        (
            "not an object",
            "application/json",
            "\"hello\"".into(),
            422,
            "invalid_event",
        ),
    ];

    for (what, content_type, body, status, code) in cases {
        let reply = app.publish_raw(&app.publisher, content_type, body).await;
        assert_eq!(
            (reply.status, reply.error_code()),
            (status, code),
            "{what}: {}",
            reply.body
        );
        assert!(
            reply.body["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{what}: a human message"
        );
    }
    assert!(app.all_ids().await.is_empty());
}

#[actix_web::test]
async fn publishing_needs_the_publisher_role() {
    let app = spawn_app().await;

    let reply = app
        .publish_raw(&app.reader, "application/json", event("t").to_string())
        .await;

    assert_eq!((reply.status, reply.error_code()), (403, "forbidden"));
    assert!(app.all_ids().await.is_empty());
}

#[actix_web::test]
async fn unknown_routes_answer_with_a_json_error() {
    let app = spawn_app().await;

    let reply = app.get("/nope").await;

    assert_eq!((reply.status, reply.error_code()), (404, "not_found"));
}
