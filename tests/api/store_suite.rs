//! One store suite, two backends: every scenario is written once against a
//! running app and run on the embedded SQLite log (`sqlite_…`) and on a
//! PostgreSQL log (`postgres_…`), so the two stores keep one contract.

use std::time::Duration;

use futures_util::future::{join, join_all};
use pushlog::store::Retention;
use pushlog::store::retention::prune_now;
use serde_json::{Value, json};

use crate::helpers::{TestApp, event, ids_of, range};
use crate::postgres::{TestDatabase, spawn_node};

on_both_backends!(
    ids_follow_publish_order_and_pages_cover_the_log_once,
    an_idempotency_key_makes_a_retry_return_the_original,
    a_cursor_retention_has_passed_is_expired_on_both_paths,
    a_cursor_ahead_of_the_head_is_unknown_on_both_paths,
    a_timestamp_cursor_returns_the_events_accepted_after_it,
    an_event_addressed_to_a_user_is_replayed_to_that_user_only,
    a_resumed_stream_gets_the_rest_then_live_events_each_once,
);

const KEEP_TEN: Retention = Retention {
    max_age: None,
    max_events: Some(10),
    entity_max_age: None,
};

/// The single id a `201`/`200` publish answer carries.
fn only_id(reply: &crate::helpers::Reply) -> i64 {
    let ids = ids_of(&reply.body["events"]);
    assert_eq!(ids.len(), 1, "one event acknowledged: {}", reply.body);
    ids[0]
}

/// Every event in the log, as a publisher reads it from `since=0`.
async fn whole_log(app: &TestApp) -> Vec<Value> {
    let reply = app.missed(&app.publisher, "since=0&limit=10000").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body["events"].as_array().expect("events").clone()
}

async fn ids_follow_publish_order_and_pages_cover_the_log_once(app: TestApp) {
    // One at a time, then a batch: 1..3, then 4..8 in the batch's order.
    assert_eq!(app.publish_many("t", 3).await, range(1, 3));
    let batch: Vec<_> = (0..5)
        .map(|i| json!({"topic": "t", "type": "batch", "payload": i}))
        .collect();
    let batched = app.publish(&json!(batch)).await;
    assert_eq!(batched.status, 201, "{}", batched.body);
    assert_eq!(ids_of(&batched.body["events"]), range(4, 8));

    // A batch with one invalid event appends nothing and uses up no id.
    let mut bad: Vec<_> = (0..5).map(|_| event("t")).collect();
    bad[3] = json!({"topic": "not a topic!", "type": "x"});
    let refused = app.publish(&json!(bad)).await;
    assert_eq!(
        (refused.status, refused.error_code()),
        (422, "invalid_event")
    );
    assert_eq!(only_id(&app.publish(&event("t")).await), 9);

    // Concurrent batches are never interleaved: each gets a contiguous run.
    let batches: Vec<Value> = (0..4)
        .map(|b| {
            json!(
                (0..5)
                    .map(|i| json!({"topic": "t", "type": "concurrent", "payload": [b, i]}))
                    .collect::<Vec<_>>()
            )
        })
        .collect();
    let replies = join_all(batches.iter().map(|b| app.publish(b))).await;
    let mut runs = Vec::new();
    for reply in &replies {
        assert_eq!(reply.status, 201, "{}", reply.body);
        let ids = ids_of(&reply.body["events"]);
        assert_eq!(ids, range(ids[0], ids[0] + 4), "a contiguous batch");
        runs.extend(ids);
    }
    runs.sort();
    assert_eq!(runs, range(10, 29));
    let log = whole_log(&app).await;
    for (b, reply) in replies.iter().enumerate() {
        let first = reply.body["events"][0]["id"].as_i64().expect("id") as usize;
        let stored: Vec<&Value> = log[first - 1..first + 4]
            .iter()
            .map(|e| &e["payload"])
            .collect();
        let expected: Vec<Value> = (0..5).map(|i| json!([b, i])).collect();
        assert_eq!(stored, expected.iter().collect::<Vec<_>>(), "batch {b}");
    }

    // Pages of 4 from the start: every event once, in order.
    let (mut since, mut seen, mut pages) = (0, Vec::new(), 0);
    loop {
        let page = app
            .missed(&app.reader, &format!("since={since}&limit=4"))
            .await;
        assert_eq!(page.status, 200, "{}", page.body);
        assert_eq!(page.body["head"], 29);
        let ids = ids_of(&page.body["events"]);
        assert_eq!(page.body["next_since"].as_i64(), ids.last().copied());
        seen.extend(ids);
        since = page.body["next_since"].as_i64().expect("next_since");
        pages += 1;
        if !page.body["has_more"].as_bool().expect("has_more") {
            break;
        }
    }
    assert_eq!(seen, range(1, 29));
    assert_eq!((pages, since), (8, 29));
}

async fn an_idempotency_key_makes_a_retry_return_the_original(app: TestApp) {
    let body = json!({"topic": "orders", "type": "entity:created", "key": "order-7"});
    let first = app.publish(&body).await;
    let batch = json!([
        {"topic": "orders", "type": "x", "key": "k1"},
        {"topic": "orders", "type": "x", "key": "k2"}
    ]);
    let first_batch = app.publish(&batch).await;

    let retry = app.publish(&body).await;
    let retried_batch = app.publish(&batch).await;

    assert_eq!(first.status, 201, "{}", first.body);
    assert_eq!(only_id(&first), 1);
    assert_eq!(retry.status, 200, "{}", retry.body);
    assert_eq!(retry.body["events"], first.body["events"]);
    assert_eq!(first_batch.status, 201, "{}", first_batch.body);
    assert_eq!(ids_of(&first_batch.body["events"]), vec![2, 3]);
    assert_eq!(retried_batch.status, 200, "{}", retried_batch.body);
    assert_eq!(retried_batch.body["events"], first_batch.body["events"]);

    // The same key for different content, alone or next to a fresh key,
    // and one key twice in one request: refused, nothing appended.
    let reuse = app
        .publish(&json!({"topic": "orders", "type": "entity:deleted", "key": "order-7"}))
        .await;
    let reuse_in_batch = app
        .publish(&json!([
            {"topic": "orders", "type": "x", "key": "fresh"},
            {"topic": "orders", "type": "y", "key": "k2"}
        ]))
        .await;
    let twice_in_one = app
        .publish(&json!([
            {"topic": "orders", "type": "x", "key": "d"},
            {"topic": "orders", "type": "x", "key": "d"}
        ]))
        .await;
    assert_eq!(
        (reuse.status, reuse.error_code()),
        (422, "idempotency_conflict"),
        "{}",
        reuse.body
    );
    assert_eq!(
        (reuse_in_batch.status, reuse_in_batch.error_code()),
        (422, "idempotency_conflict"),
        "{}",
        reuse_in_batch.body
    );
    assert_eq!(
        (twice_in_one.status, twice_in_one.error_code()),
        (422, "duplicate_key"),
        "{}",
        twice_in_one.body
    );
    assert_eq!(app.all_ids().await, range(1, 3));

    // The refused batch's fresh key was not taken, nor was an id.
    let fresh = app
        .publish(&json!({"topic": "orders", "type": "x", "key": "fresh"}))
        .await;
    assert_eq!(fresh.status, 201, "{}", fresh.body);
    assert_eq!(only_id(&fresh), 4);
}

async fn a_cursor_retention_has_passed_is_expired_on_both_paths(app: TestApp) {
    app.publish(&json!((0..30).map(|_| event("t")).collect::<Vec<_>>()))
        .await;

    let deleted = prune_now(&app.handle.log, KEEP_TEN).await.expect("prune");

    assert_eq!(deleted, 20);
    for since in [0, 19] {
        let expired = app.missed(&app.reader, &format!("since={since}")).await;
        assert_eq!(
            (
                expired.status,
                expired.error_code(),
                expired.body["oldest_id"].as_i64(),
                expired.body["head"].as_i64()
            ),
            (410, "cursor_expired", Some(21), Some(30)),
            "since={since}: {}",
            expired.body
        );
    }
    let kept = app.missed(&app.reader, "since=20").await;
    assert_eq!(kept.status, 200, "{}", kept.body);
    assert_eq!(ids_of(&kept.body["events"]), range(21, 30));
    assert_eq!(
        (&kept.body["has_more"], &kept.body["next_since"]),
        (&json!(false), &json!(30))
    );
    let mut stream = app.stream(&app.reader, "", Some(5)).await;
    assert_eq!(stream.status, 200);
    assert_eq!(
        stream.expect_reset().await,
        json!({"reason": "cursor_expired", "oldest_id": 21, "head": 30})
    );
    assert_eq!(
        stream.next_frame().await,
        None,
        "the server ends the stream"
    );
}

async fn a_cursor_ahead_of_the_head_is_unknown_on_both_paths(app: TestApp) {
    app.publish_many("t", 2).await;

    let at_head = app.missed(&app.reader, "since=2").await;
    let ahead = app.missed(&app.reader, "since=3").await;
    let mut stream = app.stream(&app.reader, "", Some(3)).await;

    assert_eq!(
        at_head.body,
        json!({"events": [], "next_since": 2, "has_more": false, "head": 2})
    );
    assert_eq!(
        (
            ahead.status,
            ahead.error_code(),
            ahead.body["oldest_id"].as_i64(),
            ahead.body["head"].as_i64()
        ),
        (410, "cursor_unknown", Some(1), Some(2)),
        "{}",
        ahead.body
    );
    assert_eq!(
        stream.expect_reset().await,
        json!({"reason": "cursor_unknown", "oldest_id": 1, "head": 2})
    );
    assert_eq!(
        stream.next_frame().await,
        None,
        "the server ends the stream"
    );
}

async fn a_timestamp_cursor_returns_the_events_accepted_after_it(app: TestApp) {
    let first = app.publish(&event("t")).await;
    let t = first.body["events"][0]["timestamp"]
        .as_str()
        .expect("timestamp")
        .to_owned();
    // Timestamps have millisecond resolution: once the clock has left t's
    // millisecond, "accepted after t" means exactly the events below.
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(app.publish_many("t", 3).await, range(2, 4));

    let all = app.missed(&app.reader, "since=2000-01-01T00:00:00Z").await;
    let after = app.missed(&app.reader, &format!("since={t}")).await;
    let future = app
        .missed(&app.reader, "since=2999-01-01T00:00:00.000Z")
        .await;

    assert_eq!(all.status, 200, "{}", all.body);
    assert_eq!(ids_of(&all.body["events"]), range(1, 4));
    assert_eq!(after.status, 200, "{}", after.body);
    assert_eq!(ids_of(&after.body["events"]), range(2, 4), "after {t}");
    assert_eq!(future.status, 200, "{}", future.body);
    assert_eq!(ids_of(&future.body["events"]), Vec::<i64>::new());
    assert_eq!(future.body["head"], 4);
}

async fn an_event_addressed_to_a_user_is_replayed_to_that_user_only(app: TestApp) {
    let published = app
        .publish(&json!([
            {"topic": "news", "type": "n"},
            {"topic": "news", "type": "n", "audience": {"users": ["bob"]}},
            {"topic": "news", "type": "n", "audience": {"users": ["alice"]}},
            {"topic": "news", "type": "n", "audience": {"roles": ["manager"]}},
            {"topic": "news", "type": "n", "audience": {"users": ["bob"]}}
        ]))
        .await;
    assert_eq!(ids_of(&published.body["events"]), range(1, 5));

    for (user, roles, expected) in [
        ("alice", &[][..], vec![1, 3]),
        ("bob", &[][..], vec![1, 2, 5]),
        ("carol", &["manager"][..], vec![1, 4]),
        ("dave", &[][..], vec![1]),
    ] {
        let token = app.token(user, roles, None);
        let reply = app.missed(&token, "since=0").await;
        assert_eq!(reply.status, 200, "{user}: {}", reply.body);
        assert_eq!(ids_of(&reply.body["events"]), expected, "{user}");
        assert_eq!(reply.body["head"], 5, "{user}");
        for e in reply.body["events"].as_array().expect("events") {
            assert!(e.get("audience").is_none(), "{user} is shown {e}");
        }
    }
}

async fn a_resumed_stream_gets_the_rest_then_live_events_each_once(app: TestApp) {
    app.publish_many("t", 10).await;

    let mut stream = app.stream(&app.reader, "topics=t", Some(4)).await;
    let mut client = app.ws(&app.reader).await;
    client.expect("welcome").await;
    client.subscribe(&["t"], Some(4), "resume").await;
    // Published while both replays may still be running: the handover must
    // deliver it once, from the replay or live.
    assert_eq!(app.publish_many("t", 1).await, vec![11]);

    assert_eq!(stream.ids_through(11).await, range(5, 11));
    assert_eq!(client.ids_through(11).await, range(5, 11));
    // A later live event comes next: 11 was not repeated.
    assert_eq!(app.publish_many("t", 1).await, vec![12]);
    assert_eq!(stream.next_event().await.0, 12);
    assert_eq!(client.next_event_id().await, 12);
}

/// Two nodes race to publish the same keyed event: one appends it, the other
/// answers with the original, and the log holds it once.
#[actix_web::test]
async fn an_idempotency_key_is_unique_across_nodes() {
    let Some(db) = TestDatabase::create("an_idempotency_key_is_unique_across_nodes").await else {
        return;
    };
    let (a, b) = (spawn_node(&db.url).await, spawn_node(&db.url).await);
    const ROUNDS: i64 = 10;

    let mut acknowledged = Vec::new();
    for round in 0..ROUNDS {
        let body =
            json!({"topic": "keys", "type": "t", "key": format!("key-{round}"), "payload": round});
        let (through_a, through_b) = join(a.publish(&body), b.publish(&body)).await;
        let mut statuses = [through_a.status, through_b.status];
        statuses.sort();
        assert_eq!(
            statuses,
            [200, 201],
            "round {round}: one appends, one is a retry: {} / {}",
            through_a.body,
            through_b.body
        );
        assert_eq!(
            through_a.body["events"], through_b.body["events"],
            "round {round}: both answer with the same event"
        );
        acknowledged.push(only_id(&through_a));
    }

    assert_eq!(acknowledged, range(1, ROUNDS));
    for node in [&a, &b] {
        let log = whole_log(node).await;
        let payloads: Vec<&Value> = log.iter().map(|e| &e["payload"]).collect();
        let expected: Vec<Value> = (0..ROUNDS).map(|round| json!(round)).collect();
        assert_eq!(ids_of(&json!(log)), acknowledged);
        assert_eq!(payloads, expected.iter().collect::<Vec<_>>());
    }
}
