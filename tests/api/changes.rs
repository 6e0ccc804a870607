//! `GET /events/changes`: the latest readable event of each entity changed
//! after a cursor, served from the entity index even after the log has
//! pruned the events, and checked against a model the test keeps.

use std::collections::BTreeMap;
use std::time::Duration;

use pushlog::store::Retention;
use pushlog::store::retention::prune_now;
use serde_json::{Value, json};

use crate::helpers::{TestApp, ids_of, spawn_app};

on_both_backends!(
    changes_from_a_cursor_older_than_the_log_are_the_latest_event_of_each_entity_changed_after_it,
    a_cursor_older_than_the_entity_index_is_expired_and_since_0_is_what_the_index_holds,
    audience_and_the_token_topics_claim_apply_as_on_missed,
    events_the_index_has_not_taken_in_yet_are_served_the_same,
);

/// The log keeps the newest 25 events; the entity index keeps everything.
const KEEP_25: Retention = Retention {
    max_age: None,
    max_events: Some(25),
    entity_max_age: None,
};

/// (topic, kind, id): what the index keeps one latest event of.
type EntityKey = (String, String, String);

fn key_of(event: &Value) -> Option<EntityKey> {
    let entity = event.get("entity")?;
    Some((
        event["topic"].as_str()?.to_owned(),
        entity["kind"].as_str()?.to_owned(),
        entity["id"].as_str()?.to_owned(),
    ))
}

fn entity_event(topic: &str, kind: &str, id: &str, op: &str, n: u64) -> Value {
    json!({
        "topic": topic,
        "type": format!("{kind}:{op}"),
        "entity": {"kind": kind, "id": id, "op": op},
        "payload": {"n": n},
    })
}

/// A deterministic mix of entity changes over two topics and a dozen
/// entities, with deletes and notifications (no entity) between them.
fn workload(count: u64) -> Vec<Value> {
    let mut state = 0x2545_f491_u64;
    (0..count)
        .map(|n| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            let pick = state >> 33;
            if pick.is_multiple_of(7) {
                return json!({"topic": "alerts", "type": "notification:info", "payload": {"n": n}});
            }
            let topic = if pick.is_multiple_of(2) {
                "orders"
            } else {
                "devices"
            };
            let id = format!("e{}", pick % 12);
            let op = ["created", "updated", "updated", "deleted"][(pick % 4) as usize];
            entity_event(topic, "item", &id, op, n)
        })
        .collect()
}

/// Every page of `/events/changes?since=…&{query}`, `limit` at a time,
/// following `next_since`; the events, and each page's `log_complete`.
async fn all_changes(
    app: &TestApp,
    token: &str,
    since: i64,
    query: &str,
) -> (Vec<Value>, Vec<bool>) {
    let (mut events, mut complete) = (Vec::new(), Vec::new());
    let mut cursor = since;
    loop {
        let reply = app
            .get_as(token, &format!("/events/changes?since={cursor}&{query}"))
            .await;
        assert_eq!(reply.status, 200, "since={cursor}: {}", reply.body);
        events.extend(
            reply.body["events"]
                .as_array()
                .expect("events")
                .iter()
                .cloned(),
        );
        complete.push(reply.body["log_complete"].as_bool().expect("log_complete"));
        let next = reply.body["next_since"].as_i64().expect("next_since");
        assert!(next >= cursor, "next_since never goes back");
        cursor = next;
        if !reply.body["has_more"].as_bool().expect("has_more") {
            return (events, complete);
        }
    }
}

/// The model: of `published` (every event, in id order), the latest event of
/// each entity with an id above `since`, in id order.
fn latest_per_entity_after(published: &[Value], since: i64) -> Vec<i64> {
    let mut latest: BTreeMap<EntityKey, i64> = BTreeMap::new();
    for event in published {
        let id = event["id"].as_i64().expect("id");
        if let Some(key) = key_of(event).filter(|_| id > since) {
            latest.insert(key, id);
        }
    }
    let mut ids: Vec<i64> = latest.into_values().collect();
    ids.sort_unstable();
    ids
}

async fn changes_from_a_cursor_older_than_the_log_are_the_latest_event_of_each_entity_changed_after_it(
    app: TestApp,
) {
    for chunk in workload(300).chunks(40) {
        let reply = app.publish(&json!(chunk)).await;
        assert_eq!(reply.status, 201, "{}", reply.body);
    }
    // The whole log as the reader saw it before retention: the model's input.
    let before = app.missed(&app.reader, "since=0&limit=10000").await;
    let published = before.body["events"].as_array().expect("events").clone();
    assert_eq!(published.len(), 300);
    prune_now(&app.handle.log, KEEP_25).await.expect("prune");
    assert_eq!(
        app.missed(&app.reader, "since=100").await.status,
        410,
        "the log itself cannot serve the cursor any more"
    );

    for since in [0, 1, 100, 199, 274, 275, 290, 300] {
        let (events, complete) = all_changes(&app, &app.reader, since, "limit=7").await;
        assert_eq!(
            ids_of(&json!(events)),
            latest_per_entity_after(&published, since),
            "since={since}"
        );
        let by_id: BTreeMap<i64, &Value> = published
            .iter()
            .map(|e| (e["id"].as_i64().unwrap_or(0), e))
            .collect();
        for event in &events {
            let id = event["id"].as_i64().expect("id");
            assert_eq!(
                event, by_id[&id],
                "the index serves the event exactly as it was published"
            );
        }
        // Each page answers for its own `since`: once a page starts inside
        // what the log still holds, the log is complete from there on.
        assert_eq!(complete[0], since >= 275, "since={since}: {complete:?}");
        assert!(
            complete.windows(2).all(|pair| pair[0] <= pair[1]),
            "since={since}: {complete:?}"
        );
    }
    let (orders, _) = all_changes(&app, &app.reader, 0, "topics=orders").await;
    assert!(!orders.is_empty());
    assert!(
        orders.iter().all(|e| e["topic"] == "orders"),
        "topics filter"
    );
}

async fn a_cursor_older_than_the_entity_index_is_expired_and_since_0_is_what_the_index_holds(
    app: TestApp,
) {
    let first = app
        .publish(&json!([
            entity_event("t", "doc", "a", "created", 1),
            entity_event("t", "doc", "b", "created", 2),
        ]))
        .await;
    assert_eq!(ids_of(&first.body["events"]), vec![1, 2]);
    // Ages are whole milliseconds: let the first two become older than the
    // entity retention below, then age them out.
    tokio::time::sleep(Duration::from_millis(30)).await;
    // The log lets them go first; only then can their index rows age out.
    let entities_10ms = Retention {
        max_age: Some(Duration::from_millis(10)),
        max_events: None,
        entity_max_age: Some(Duration::from_millis(10)),
    };
    prune_now(&app.handle.log, entities_10ms)
        .await
        .expect("prune");
    let later = app
        .publish(&json!([
            entity_event("t", "doc", "b", "updated", 3),
            entity_event("t", "doc", "c", "created", 4),
        ]))
        .await;
    assert_eq!(ids_of(&later.body["events"]), vec![3, 4]);

    let expired = app.get_as(&app.reader, "/events/changes?since=1").await;
    assert_eq!(expired.status, 410, "{}", expired.body);
    assert_eq!(expired.body["error"], "cursor_expired");
    assert_eq!(expired.body["oldest_id"], 3, "{}", expired.body);
    assert_eq!(expired.body["head"], 4);

    let (from_mark, complete) = all_changes(&app, &app.reader, 2, "").await;
    assert_eq!(ids_of(&json!(from_mark)), vec![3, 4]);
    assert_eq!(complete, vec![true], "the log holds every event after 2");

    let (initial, _) = all_changes(&app, &app.reader, 0, "").await;
    assert_eq!(
        ids_of(&json!(initial)),
        vec![3, 4],
        "`a` aged out of the index; `b` and `c` are there"
    );
}

async fn audience_and_the_token_topics_claim_apply_as_on_missed(app: TestApp) {
    let events = json!([
        entity_event("orders", "order", "1", "created", 1),
        // The same entity, later, for bob alone: alice's latest is the first.
        {"topic": "orders", "type": "order:updated", "entity": {"kind": "order", "id": "1", "op": "updated"},
         "audience": {"users": ["bob"]}},
        {"topic": "orders", "type": "order:created", "entity": {"kind": "order", "id": "2", "op": "created"},
         "audience": {"roles": ["manager"]}},
        entity_event("devices", "device", "d1", "updated", 4),
        entity_event("orders", "order", "3", "created", 5),
    ]);
    assert_eq!(app.publish(&events).await.status, 201);

    let alice = app.token("alice", &[], None);
    let bob = app.token("bob", &[], None);
    let manager = app.token("carol", &["manager"], None);
    let orders_only = app.token("dave", &[], Some(&["orders"]));
    for (who, token, expected) in [
        ("alice", &alice, vec![1, 4, 5]),
        ("bob", &bob, vec![2, 4, 5]),
        ("a manager", &manager, vec![1, 3, 4, 5]),
        ("a token for orders", &orders_only, vec![1, 5]),
    ] {
        let (changes, _) = all_changes(&app, token, 0, "").await;
        assert_eq!(ids_of(&json!(changes)), expected, "{who}");
        let missed = app.missed(token, "since=0").await;
        assert_eq!(
            latest_per_entity_after(missed.body["events"].as_array().expect("events"), 0),
            expected,
            "{who}: the same as the latest of what /events/missed shows"
        );
        for event in &changes {
            assert!(event.get("audience").is_none(), "{who} is shown {event}");
        }
    }
    let forbidden = app
        .get_as(&orders_only, "/events/changes?since=0&topics=devices")
        .await;
    assert_eq!(forbidden.status, 403);
    assert_eq!(forbidden.error_code(), "forbidden_topic");
}

/// `count` distinct comma-separated names starting with `stem`.
fn many(stem: &str, count: usize) -> String {
    (0..count)
        .map(|i| format!("{stem}{i}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Every way in is bounded before any work: no token, a page over the
/// limit, more patterns than a request may name.
#[actix_web::test]
async fn bad_parameters_are_refused_and_a_cursor_ahead_is_unknown() {
    let app = spawn_app().await;
    app.publish(&entity_event("t", "doc", "a", "created", 1))
        .await;
    for (query, status, code) in [
        ("", 400, "invalid_cursor"),
        ("since=abc", 400, "invalid_cursor"),
        ("since=0&limit=0", 400, "invalid_limit"),
        ("since=0&limit=10001", 400, "invalid_limit"),
        ("since=0&topics=bad%20topic", 400, "invalid_topic"),
        (
            &format!("since=0&topics={}", many("t", 101)),
            400,
            "too_many_topics",
        ),
        (
            &format!("since=0&types={}", many("x", 101)),
            400,
            "invalid_type_filter",
        ),
        ("since=2", 410, "cursor_unknown"),
    ] {
        let reply = app
            .get_as(&app.reader, &format!("/events/changes?{query}"))
            .await;
        assert_eq!(reply.status, status, "{query}: {}", reply.body);
        assert_eq!(reply.error_code(), code, "{query}");
    }
    let anonymous = app.get("/events/changes?since=0").await;
    assert_eq!(anonymous.status, 401);
}

/// A log written before the entity index existed is indexed by the upgrade:
/// the latest event of each entity (and audience) it holds.
#[actix_web::test]
async fn a_log_from_before_the_index_is_indexed_when_it_is_upgraded() {
    use sqlx::Connection;

    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("old.db");
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let mut old = sqlx::SqliteConnection::connect(&url).await.expect("open");
    let mut first_schema = sqlx::migrate!("./migrations/sqlite");
    first_schema.migrations = std::borrow::Cow::Owned(first_schema.migrations[..1].to_vec());
    first_schema.run(&mut old).await.expect("the first schema");
    for (kind, id, op) in [
        ("doc", "a", "created"),
        ("doc", "b", "created"),
        ("doc", "a", "updated"),
        ("", "", ""),
        ("doc", "b", "deleted"),
    ] {
        let entity = (!kind.is_empty()).then_some((kind, id, op));
        sqlx::query(
            "INSERT INTO events (topic, type, entity_kind, entity_id, entity_op, created_at) \
             VALUES ('t', 'doc:change', ?, ?, ?, ?)",
        )
        .bind(entity.map(|e| e.0))
        .bind(entity.map(|e| e.1))
        .bind(entity.map(|e| e.2))
        .bind(chrono::Utc::now().timestamp_millis())
        .execute(&mut old)
        .await
        .expect("insert");
    }
    old.close().await.expect("close");

    let app = crate::helpers::spawn_app_with(|config| {
        config.database_url = format!("sqlite://{}", path.display());
    })
    .await;

    let (changes, complete) = all_changes(&app, &app.reader, 0, "").await;
    assert_eq!(ids_of(&json!(changes)), vec![3, 5]);
    assert_eq!(changes[1]["entity"]["op"], "deleted");
    assert_eq!(complete, vec![true]);
}

/// The index takes the log's events in a moment after they commit; until it
/// has, a read takes them from the log. Either way the answer is the same:
/// read before and after the index catches up, against the model.
async fn events_the_index_has_not_taken_in_yet_are_served_the_same(app: TestApp) {
    let work = workload(200);
    let (indexed, fresh) = work.split_at(120);
    assert_eq!(app.publish(&json!(indexed)).await.status, 201);
    prune_now(&app.handle.log, Retention::default())
        .await
        .expect("index");
    // Newer changes of entities the index holds, and new entities, with an
    // audience variant among them.
    let mut fresh = fresh.to_vec();
    fresh.push(
        json!({"topic": "orders", "type": "item:updated", "audience": {"users": ["bob"]},
                      "entity": {"kind": "item", "id": "e1", "op": "updated"}}),
    );
    fresh.push(entity_event("orders", "item", "e2", "updated", 999));
    assert_eq!(app.publish(&json!(fresh)).await.status, 201);
    let published = app.missed(&app.reader, "since=0&limit=10000").await.body["events"]
        .as_array()
        .expect("events")
        .clone();

    let read = |since| {
        let app = &app;
        async move {
            ids_of(&json!(
                all_changes(app, &app.reader, since, "limit=9").await.0
            ))
        }
    };
    let before: Vec<Vec<i64>> = futures_util::future::join_all([0, 60, 120, 150].map(read)).await;
    prune_now(&app.handle.log, Retention::default())
        .await
        .expect("index");
    let after: Vec<Vec<i64>> = futures_util::future::join_all([0, 60, 120, 150].map(read)).await;

    for (i, since) in [0, 60, 120, 150].into_iter().enumerate() {
        let expected = latest_per_entity_after(&published, since);
        assert_eq!(before[i], expected, "since={since}, with a tail");
        assert_eq!(after[i], expected, "since={since}, all indexed");
    }
}
