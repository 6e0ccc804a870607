//! Several nodes on one PostgreSQL log: every delivery guarantee holds
//! whichever node a client publishes to, subscribes on or resumes on.

use std::time::Duration;

use futures_util::future::join_all;
use serde_json::json;
use sqlx::Connection;

use crate::helpers::{PATIENCE, TestApp, event, ids_of};
use crate::postgres::{TestDatabase, spawn_node};

/// Publishes `count` events on `topic` through `node`, one request each,
/// as `publisher`; returns the ids.
async fn publish_through(node: &TestApp, publisher: usize, count: usize) -> Vec<i64> {
    let mut ids = Vec::with_capacity(count);
    for n in 0..count {
        let reply = node
            .publish(&json!({"topic": "cluster", "type": "t", "payload": {"p": publisher, "n": n}}))
            .await;
        assert_eq!(reply.status, 201, "{}", reply.body);
        ids.push(reply.body["events"][0]["id"].as_i64().expect("an id"));
    }
    ids
}

/// Every id the log holds on `topic`, read back through `node`.
async fn replay_from_zero(node: &TestApp) -> Vec<i64> {
    let reply = node
        .missed(&node.publisher, "since=0&topics=cluster&limit=10000")
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    ids_of(&reply.body["events"])
}

fn strictly_increasing(ids: &[i64]) -> bool {
    ids.windows(2).all(|pair| pair[0] < pair[1])
}

#[actix_web::test]
async fn three_nodes_deliver_every_event_to_every_subscriber_in_one_order() {
    let Some(db) = TestDatabase::create("three_nodes").await else {
        return;
    };
    let nodes = join_all((0..3).map(|_| spawn_node(&db.url))).await;
    let mut sse = Vec::new();
    let mut ws = Vec::new();
    for node in &nodes {
        let mut stream = node.stream(&node.reader, "topics=cluster", None).await;
        stream.opened().await;
        sse.push(stream);
        let mut client = node.ws(&node.reader).await;
        client.expect("welcome").await;
        client.subscribe(&["cluster"], None, "c").await;
        client.expect("caught_up").await;
        ws.push(client);
    }

    // Two concurrent publishers on each node.
    const PER_PUBLISHER: usize = 40;
    let published = join_all(
        (0..6).map(|publisher| publish_through(&nodes[publisher % 3], publisher, PER_PUBLISHER)),
    )
    .await;
    let last = published.iter().flatten().copied().max().expect("ids");
    let everything = replay_from_zero(&nodes[0]).await;
    assert_eq!(everything.len(), 6 * PER_PUBLISHER);
    assert!(strictly_increasing(&everything));
    for (node, replay) in join_all(nodes.iter().map(replay_from_zero))
        .await
        .iter()
        .enumerate()
    {
        assert_eq!(replay, &everything, "node {node} reads the same log");
    }

    for (node, stream) in sse.iter_mut().enumerate() {
        let seen = stream.ids_through(last).await;
        assert_eq!(seen, everything, "SSE subscriber on node {node}");
    }
    for (node, client) in ws.iter_mut().enumerate() {
        let seen = client.ids_through(last).await;
        assert_eq!(seen, everything, "WebSocket subscriber on node {node}");
    }
}

#[actix_web::test]
async fn a_client_resumes_on_another_node_from_a_cursor_that_node_has_not_dispatched_yet() {
    let Some(db) = TestDatabase::create("resume_elsewhere").await else {
        return;
    };
    let (a, b) = (spawn_node(&db.url).await, spawn_node(&db.url).await);
    let ids = publish_through(&a, 0, 5).await;
    // Straight after the publish, node b may not have read it back: the
    // cursor must not look "ahead of the log" there.
    let reply = b
        .missed(&b.reader, &format!("since={}&topics=cluster", ids[2]))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(ids_of(&reply.body["events"]), ids[3..].to_vec());
    let latest = b
        .missed(&b.reader, &format!("since={}&topics=cluster", ids[4]))
        .await;
    assert_eq!(latest.status, 200, "{}", latest.body);

    let mut stream = b.stream(&b.reader, "topics=cluster", Some(ids[1])).await;
    assert_eq!(stream.ids_through(ids[4]).await, ids[2..].to_vec());
    let more = publish_through(&a, 1, 2).await;
    assert_eq!(stream.ids_through(more[1]).await, more);
}

/// The race that a sequence alone loses: a transaction that took an id
/// first commits last. Here an application transaction holds the log's
/// write lock (as a slow writer on another node would) while publishes
/// queue behind it; a subscriber on a third node must still see every
/// event, in order.
#[actix_web::test]
async fn a_writer_that_commits_late_cannot_make_a_subscriber_skip_its_events() {
    let Some(db) = TestDatabase::create("late_commit").await else {
        return;
    };
    let (a, b, c) = (
        spawn_node(&db.url).await,
        spawn_node(&db.url).await,
        spawn_node(&db.url).await,
    );
    let mut watcher = c.stream(&c.reader, "topics=cluster", None).await;
    watcher.opened().await;
    let first = publish_through(&a, 0, 1).await[0];

    // A writer that has assigned the next id and not committed yet.
    let pool = db.pool().await;
    let mut slow = pool.begin().await.expect("begin");
    let (head,): (i64,) =
        sqlx::query_as("SELECT head FROM pushlog.log_head WHERE singleton FOR UPDATE")
            .fetch_one(&mut *slow)
            .await
            .expect("lock the head");
    assert_eq!(head, first);
    sqlx::query(
        "INSERT INTO pushlog.events (id, topic, type, created_at) VALUES ($1, 'cluster', 'slow', 0)",
    )
    .bind(head + 1)
    .execute(&mut *slow)
    .await
    .expect("insert under the lock");
    sqlx::query("UPDATE pushlog.log_head SET head = $1 WHERE singleton")
        .bind(head + 1)
        .execute(&mut *slow)
        .await
        .expect("move the head");

    // Publishes through b start now and must wait for the lock.
    let queued = actix_web::rt::spawn({
        let base = b.base.clone();
        let token = b.publisher.clone();
        async move {
            let client = crate::helpers::client();
            let response = client
                .post(format!("{base}/events"))
                .bearer_auth(&token)
                .send_json(&json!({"topic": "cluster", "type": "fast"}))
                .await
                .expect("publish");
            crate::helpers::read_reply(response).await
        }
    });
    // Nothing after `first` can be visible while the slow writer holds on.
    let during = c
        .missed(&c.publisher, &format!("since={first}&topics=cluster"))
        .await;
    assert_eq!(ids_of(&during.body["events"]), Vec::<i64>::new());
    slow.commit().await.expect("the slow writer commits");

    let fast = queued.await.expect("the publish task");
    assert_eq!(fast.status, 201, "{}", fast.body);
    let fast_id = fast.body["events"][0]["id"].as_i64().expect("an id");
    assert_eq!(fast_id, head + 2, "ids continue after the slow writer's");
    assert_eq!(
        watcher.ids_through(fast_id).await,
        vec![first, head + 1, fast_id],
        "the subscriber on the third node skipped nothing"
    );
}

#[actix_web::test]
async fn a_listener_connection_terminated_mid_stream_misses_nothing() {
    let Some(db) = TestDatabase::create("listener_terminated").await else {
        return;
    };
    let (a, b) = (spawn_node(&db.url).await, spawn_node(&db.url).await);
    let mut stream = b.stream(&b.reader, "topics=cluster", None).await;
    stream.opened().await;
    let before = publish_through(&a, 0, 3).await;
    assert_eq!(stream.ids_through(before[2]).await, before);

    // Every connection that listens: both nodes' followers.
    let pool = db.pool().await;
    let terminated: Vec<(bool,)> = sqlx::query_as(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND query ILIKE 'LISTEN%'",
    )
    .fetch_all(&pool)
    .await
    .expect("terminate the listeners");
    assert!(!terminated.is_empty(), "the followers listen");
    // The followers listen again, on new connections.
    let relistened = async {
        loop {
            let listening: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE datname = current_database() AND query ILIKE 'LISTEN%'",
            )
            .fetch_one(&pool)
            .await
            .expect("count the listeners");
            if listening >= 2 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(PATIENCE, relistened)
        .await
        .expect("both followers listen again");

    let after = publish_through(&a, 1, 5).await;
    assert_eq!(stream.ids_through(after[4]).await, after);
}

#[actix_web::test]
async fn an_outbox_event_is_delivered_after_commit_and_never_after_rollback() {
    let Some(db) = TestDatabase::create("outbox").await else {
        return;
    };
    let node = spawn_node(&db.url).await;
    let mut stream = node.stream(&node.reader, "topics=cluster", None).await;
    stream.opened().await;
    let pool = db.pool().await;

    let mut rolled_back = pool.begin().await.expect("begin");
    outbox_publish(&mut rolled_back, "rolled-back", None).await;
    rolled_back.rollback().await.expect("rollback");

    let mut committed = pool.begin().await.expect("begin");
    outbox_publish(&mut committed, "committed", Some("k-1")).await;
    committed.commit().await.expect("commit");

    let (id, data) = stream.next_event().await;
    assert_eq!(data["type"], "committed");
    assert_eq!(data["payload"], json!({"from": "committed"}));
    // A retry under the same key appends nothing, and a marker published
    // after it is the next event: the rolled-back one never came.
    let mut retried = pool.begin().await.expect("begin");
    outbox_publish(&mut retried, "committed", Some("k-1")).await;
    retried.commit().await.expect("commit");
    let marker = publish_through(&node, 0, 1).await[0];
    assert_eq!(stream.next_event().await.0, marker);
    assert_eq!(replay_from_zero(&node).await, vec![id, marker]);
}

#[actix_web::test]
async fn an_outbox_transaction_held_open_blocks_no_publisher_and_its_event_comes_after_them() {
    let Some(db) = TestDatabase::create("outbox_held").await else {
        return;
    };
    let node = spawn_node(&db.url).await;
    let mut stream = node.stream(&node.reader, "topics=cluster", None).await;
    stream.opened().await;
    let pool = db.pool().await;

    let mut held = pool.begin().await.expect("begin");
    outbox_publish(&mut held, "held", None).await;
    // Publishes go on for 3 s while the transaction stays open; each is
    // delivered meanwhile.
    let started = tokio::time::Instant::now();
    let mut delivered = Vec::new();
    while started.elapsed() < Duration::from_secs(3) {
        let id = publish_through(&node, 0, 1).await[0];
        assert_eq!(
            stream.next_event().await.0,
            id,
            "delivered while the outbox row is held"
        );
        delivered.push(id);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    held.commit().await.expect("commit");

    let (id, data) = stream.next_event().await;
    assert_eq!(data["type"], "held");
    let newest = *delivered.last().expect("publishes went on");
    assert!(id > newest, "the held event {id} comes after {newest}");
}

/// Stages an outbox event in `tx`, as an application would.
async fn outbox_publish(tx: &mut sqlx::PgConnection, kind: &str, key: Option<&str>) {
    sqlx::query("SELECT pushlog.publish(topic => 'cluster', type => $1, payload => $2, key => $3)")
        .bind(kind)
        .bind(json!({"from": kind}))
        .bind(key)
        .execute(tx)
        .await
        .expect("pushlog.publish");
}

#[actix_web::test]
async fn an_invalid_outbox_call_fails_the_application_transaction() {
    let Some(db) = TestDatabase::create("outbox_invalid").await else {
        return;
    };
    let _node = spawn_node(&db.url).await;
    let mut conn = sqlx::PgConnection::connect(&db.url).await.expect("connect");
    for (call, why) in [
        (
            "SELECT pushlog.publish(topic => 'bad topic', type => 't')",
            "topic",
        ),
        ("SELECT pushlog.publish(topic => 't', type => '')", "type"),
        (
            "SELECT pushlog.publish(topic => 't', type => 't', entity => '{\"kind\":\"k\"}')",
            "entity",
        ),
        (
            "SELECT pushlog.publish(topic => 't', type => 't', audience => '{\"users\":[]}')",
            "audience",
        ),
    ] {
        let error = sqlx::query(call).execute(&mut conn).await.expect_err(why);
        assert!(error.to_string().contains(why), "{why}: {error}");
    }
    let staged: i64 = sqlx::query_scalar("SELECT count(*) FROM pushlog.outbox")
        .fetch_one(&mut conn)
        .await
        .expect("count");
    assert_eq!(staged, 0);
}

/// A publish while the log is unreachable: `503 log_unavailable`.
fn unavailable(reply: &crate::helpers::Reply) -> bool {
    reply.status == 503 && reply.body["error"] == "log_unavailable"
}

#[actix_web::test]
async fn postgres_unreachable_then_back_answers_503_and_streams_resume_without_a_gap() {
    let Some(db) = TestDatabase::create("unreachable").await else {
        return;
    };
    let proxy = crate::proxy::TcpProxy::start("127.0.0.1:5432").await;
    let through_proxy = db.url.replace("127.0.0.1:5432", &proxy.address());
    let node = spawn_node(&through_proxy).await;
    let other = spawn_node(&db.url).await;
    let mut stream = node.stream(&node.reader, "topics=cluster", None).await;
    stream.opened().await;
    let before = publish_through(&node, 0, 2).await;
    assert_eq!(stream.ids_through(before[1]).await, before);

    proxy.stop().await;
    let ready = node.get("/readyz").await;
    assert_eq!(ready.status, 503, "{}", ready.body);
    let refused = node.publish(&event("cluster")).await;
    assert!(unavailable(&refused), "{} {}", refused.status, refused.body);
    // Meanwhile the log goes on through a node that can reach it.
    let meanwhile = publish_through(&other, 1, 3).await;

    proxy.resume().await;
    let back = wait_until_ready(&node).await;
    assert_eq!(back.status, 200, "{}", back.body);
    let after = publish_through(&node, 2, 2).await;
    let expected: Vec<i64> = meanwhile.iter().chain(&after).copied().collect();
    assert_eq!(
        stream.ids_through(after[1]).await,
        expected,
        "no gap, no duplicate"
    );
}

async fn wait_until_ready(node: &TestApp) -> crate::helpers::Reply {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let reply = node.get("/readyz").await;
        if reply.status == 200 || tokio::time::Instant::now() > deadline {
            return reply;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Prefix patterns are read from the log as ranges of topics; a database
/// whose default collation orders text as a language does (ignoring
/// punctuation) must still keep `device:*` together.
#[actix_web::test]
async fn a_prefix_pattern_replays_from_a_database_with_a_language_collation() {
    let Some(db) = TestDatabase::create_with(
        "language_collation",
        "TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'",
    )
    .await
    else {
        return;
    };
    // No replay window: every replay reads the log.
    let url = db.url.clone();
    let node = crate::helpers::spawn_app_with(move |config| {
        config.database_url = url;
        config.replay_memory_events = 0;
    })
    .await;
    let body: Vec<_> = ["device:a", "device.b", "device:b", "devicez"]
        .iter()
        .map(|topic| json!({"topic": topic, "type": "t"}))
        .collect();
    let published = node.publish(&json!(body)).await;
    assert_eq!(published.status, 201, "{}", published.body);

    let reply = node.missed(&node.reader, "since=0&topics=device:*").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let topics: Vec<&str> = reply.body["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|event| event["topic"].as_str())
        .collect();
    assert_eq!(topics, ["device:a", "device:b"]);
}

#[actix_web::test]
async fn a_key_an_application_staged_is_taken_for_a_publish_with_other_content() {
    let Some(db) = TestDatabase::create("outbox_key_first").await else {
        return;
    };
    let node = spawn_node(&db.url).await;
    let mut stream = node.stream(&node.reader, "topics=cluster", None).await;
    stream.opened().await;
    let pool = db.pool().await;
    let mut staged = pool.begin().await.expect("begin");
    outbox_publish(&mut staged, "from-the-application", Some("k-shared")).await;
    staged.commit().await.expect("commit");

    // Committed first, so it owns the key, whether or not a relay has moved
    // it into the log yet.
    let reply = node
        .publish(&json!({"topic": "cluster", "type": "from-http", "key": "k-shared"}))
        .await;
    assert_eq!(reply.status, 422, "{}", reply.body);
    assert_eq!(reply.error_code(), "idempotency_conflict");
    // The refusal may be answered before the relay that moved the
    // application's event commits: wait for its delivery.
    let (_, data) = stream.next_event().await;
    assert_eq!(data["type"], "from-the-application");
    let log = node.missed(&node.publisher, "since=0&topics=cluster").await;
    let kinds: Vec<&str> = log.body["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|event| event["type"].as_str())
        .collect();
    assert_eq!(kinds, ["from-the-application"]);
}

#[actix_web::test]
async fn an_outbox_row_that_is_no_event_does_not_hold_up_the_rows_behind_it() {
    let Some(db) = TestDatabase::create("outbox_bad_row").await else {
        return;
    };
    let node = spawn_node(&db.url).await;
    let mut stream = node.stream(&node.reader, "topics=cluster", None).await;
    stream.opened().await;
    let pool = db.pool().await;
    // Written by hand, past `pushlog.publish`'s checks.
    sqlx::query("INSERT INTO pushlog.outbox (draft) VALUES ('{\"topic\": \"bad topic\"}')")
        .execute(&pool)
        .await
        .expect("a bad row");
    let mut tx = pool.begin().await.expect("begin");
    outbox_publish(&mut tx, "behind-the-bad-row", None).await;
    tx.commit().await.expect("commit");

    let (_, data) = stream.next_event().await;
    assert_eq!(data["type"], "behind-the-bad-row");
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM pushlog.outbox")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(left, 0, "the bad row is gone too");
}
