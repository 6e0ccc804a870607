//! Audience and topic claims decide who reads what, on the stream and on
//! `/events/missed` alike.

use serde_json::{Value, json};

use crate::helpers::{TestApp, event, ids_of, spawn_app};

/// 1: everyone; 2: bob; 3: role manager; 4: everyone on `device:9`.
async fn publish_addressed_events(app: &TestApp) {
    app.publish(&json!([
        {"topic": "news", "type": "n"},
        {"topic": "news", "type": "n", "audience": {"users": ["bob"]}},
        {"topic": "news", "type": "n", "audience": {"roles": ["manager"]}},
        {"topic": "device:9", "type": "n"}
    ]))
    .await;
}

async fn missed_ids(app: &TestApp, token: &str) -> Vec<i64> {
    let reply = app.missed(token, "since=0").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    ids_of(&reply.body["events"])
}

async fn streamed_ids(app: &TestApp, token: &str, expected: usize) -> Vec<i64> {
    let mut stream = app.stream(token, "", Some(0)).await;
    let mut ids = Vec::new();
    for _ in 0..expected {
        ids.push(stream.next_event().await.0);
    }
    // A sentinel everyone may read proves nothing else came in between.
    app.publish(&event("device:sentinel")).await;
    assert_eq!(stream.next_event().await.1["topic"], "device:sentinel");
    ids
}

#[actix_web::test]
async fn audience_decides_who_receives_an_event_on_both_paths() {
    let app = spawn_app().await;
    publish_addressed_events(&app).await;
    let alice = app.token("alice", &[], None);
    let bob = app.token("bob", &[], None);
    let manager = app.token("carol", &["manager"], None);

    assert_eq!(missed_ids(&app, &alice).await, vec![1, 4]);
    assert_eq!(missed_ids(&app, &bob).await, vec![1, 2, 4]);
    assert_eq!(missed_ids(&app, &manager).await, vec![1, 3, 4]);
    assert_eq!(streamed_ids(&app, &alice, 2).await, vec![1, 4]);
    assert_eq!(streamed_ids(&app, &bob, 3).await, vec![1, 2, 4]);
    assert_eq!(streamed_ids(&app, &manager, 3).await, vec![1, 3, 4]);
}

#[actix_web::test]
async fn live_events_respect_the_audience_too() {
    let app = spawn_app().await;
    let alice = app.token("alice", &[], None);
    let mut stream = app.stream(&alice, "", None).await;
    stream.opened().await;

    publish_addressed_events(&app).await;
    app.publish(&json!({"topic": "news", "type": "n", "audience": {"users": ["alice"]}}))
        .await;

    let ids = [
        stream.next_event().await.0,
        stream.next_event().await.0,
        stream.next_event().await.0,
    ];
    assert_eq!(ids, [1, 4, 5]);
}

#[actix_web::test]
async fn only_publishers_see_the_audience_field() {
    let app = spawn_app().await;
    app.publish(&json!({"topic": "news", "type": "n", "audience": {"users": ["bob"], "roles": ["publisher"]}}))
        .await;
    let bob = app.token("bob", &[], None);

    let as_reader: Value = app.missed(&bob, "since=0").await.body["events"][0].clone();
    let as_publisher: Value = app.missed(&app.publisher, "since=0").await.body["events"][0].clone();
    let mut stream = app.stream(&bob, "", Some(0)).await;
    let streamed = stream.next_event().await.1;

    assert!(as_reader.get("audience").is_none(), "{as_reader}");
    assert!(streamed.get("audience").is_none(), "{streamed}");
    assert_eq!(
        as_publisher["audience"],
        json!({"users": ["bob"], "roles": ["publisher"]})
    );
}

#[actix_web::test]
async fn the_topics_claim_limits_what_a_token_reads() {
    let app = spawn_app().await;
    publish_addressed_events(&app).await;
    let devices_only = app.token("alice", &[], Some(&["device:*"]));

    let everything = app.missed(&devices_only, "since=0").await;
    let forbidden = app.missed(&devices_only, "since=0&topics=news").await;
    let forbidden_stream = app.stream(&devices_only, "topics=news", None).await;

    assert_eq!(ids_of(&everything.body["events"]), vec![4]);
    assert_eq!(
        (forbidden.status, forbidden.error_code()),
        (403, "forbidden_topic")
    );
    assert_eq!(forbidden_stream.status, 403);
    assert_eq!(streamed_ids(&app, &devices_only, 1).await, vec![4]);
}
