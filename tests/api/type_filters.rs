//! Type filters: `types=` on `/events/stream` and `/events/missed`, and
//! `"types"` in a WebSocket `subscribe`. Only matching events arrive;
//! cursors, resumes, `caught_up` and the live/replay handover work exactly
//! as they do with topics.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Value, json};

use crate::helpers::{Frame, SseStream, TestApp, ids_of, spawn_app, spawn_app_with};
use crate::ws_client::WsClient;

/// The sparse type of the resume tests: one event in `SPARSE_EVERY`.
const SPARSE_TYPE: &str = "notification:alarm";
const SPARSE_EVERY: usize = 20;

/// Publishes `(topic, type)` pairs in one request; returns their ids.
async fn publish_typed(app: &TestApp, events: &[(&str, &str)]) -> Vec<i64> {
    let batch: Vec<Value> = events
        .iter()
        .map(|(topic, kind)| json!({"topic": topic, "type": kind}))
        .collect();
    let reply = app.publish(&json!(batch)).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    ids_of(&reply.body["events"])
}

/// Ids 1–6 on `mixed`: entity:created, entity:updated,
/// notification:battery_low, message:new, notification:door,
/// entity:updated.
async fn publish_one_of_each(app: &TestApp) {
    publish_typed(
        app,
        &[
            ("mixed", "entity:created"),
            ("mixed", "entity:updated"),
            ("mixed", "notification:battery_low"),
            ("mixed", "message:new"),
            ("mixed", "notification:door"),
            ("mixed", "entity:updated"),
        ],
    )
    .await;
}

async fn missed_ids(app: &TestApp, query: &str) -> Vec<i64> {
    let reply = app.missed(&app.reader, query).await;
    assert_eq!(reply.status, 200, "{query}: {}", reply.body);
    ids_of(&reply.body["events"])
}

// ----- /events/missed -----

#[actix_web::test]
async fn missed_returns_exactly_the_events_of_the_named_types_in_order() {
    let app = spawn_app().await;
    publish_one_of_each(&app).await;

    assert_eq!(
        missed_ids(&app, "since=0&types=entity:updated").await,
        [2, 6]
    );
    assert_eq!(
        missed_ids(&app, "since=0&types=notification:*").await,
        [3, 5]
    );
    assert_eq!(
        missed_ids(&app, "since=0&types=message:new,%20entity:*").await,
        [1, 2, 4, 6]
    );
    assert_eq!(missed_ids(&app, "since=0&types=entity:").await, [0; 0]);
    assert_eq!(
        missed_ids(&app, "since=0&types=*").await,
        [1, 2, 3, 4, 5, 6]
    );
    assert_eq!(missed_ids(&app, "since=0&types=").await, [1, 2, 3, 4, 5, 6]);
}

/// 60 events, every 20th of the sparse type, then 5 of another: pages of
/// two skip the rest, `next_since` moves past what no page returns, and
/// `head` is the log's.
async fn pages_skip_non_matching_events(app: TestApp) {
    let kinds: Vec<(&str, &str)> = (1..=60)
        .map(|id| {
            let kind = if id % 20 == 0 {
                SPARSE_TYPE
            } else {
                "entity:updated"
            };
            ("mixed", kind)
        })
        .collect();
    publish_typed(&app, &kinds).await;
    let query = |since: i64| format!("since={since}&types=notification:*&limit=2");

    let first = app.missed(&app.reader, &query(0)).await.body;
    let second = app.missed(&app.reader, &query(40)).await.body;
    publish_typed(&app, &[("mixed", "entity:deleted"); 5]).await;
    let nothing_new = app.missed(&app.reader, &query(60)).await.body;

    assert_eq!(ids_of(&first["events"]), [20, 40]);
    assert_eq!(
        (&first["next_since"], &first["has_more"], &first["head"]),
        (&json!(40), &json!(true), &json!(60))
    );
    assert_eq!(ids_of(&second["events"]), [60]);
    assert_eq!(
        (&second["next_since"], &second["has_more"]),
        (&json!(60), &json!(false))
    );
    assert_eq!(ids_of(&nothing_new["events"]), [0; 0]);
    assert_eq!(
        (
            &nothing_new["next_since"],
            &nothing_new["has_more"],
            &nothing_new["head"]
        ),
        (&json!(65), &json!(false), &json!(65))
    );
}

#[actix_web::test]
async fn missed_pages_skip_non_matching_events_and_next_since_moves_past_them() {
    pages_skip_non_matching_events(spawn_app().await).await;
}

#[actix_web::test]
async fn missed_pages_read_from_the_log_skip_non_matching_events_alike() {
    pages_skip_non_matching_events(spawn_app_with(|c| c.replay_memory_events = 0).await).await;
}

#[actix_web::test]
async fn an_invalid_type_filter_is_400_invalid_type_filter_on_both_http_reads() {
    let app = spawn_app().await;
    let too_many = vec!["t"; 101].join(",");
    let too_long = "t".repeat(101);
    let invalid = [
        "a*b",
        "*entity",
        "**",
        "bell%07",
        too_long.as_str(),
        too_many.as_str(),
    ];

    for types in invalid {
        let missed = app
            .missed(&app.reader, &format!("since=0&types={types}"))
            .await;
        let stream = app
            .stream(&app.reader, &format!("types={types}"), None)
            .await;

        assert_eq!(
            (missed.status, missed.error_code()),
            (400, "invalid_type_filter"),
            "{types}"
        );
        assert_eq!(stream.status, 400, "{types}");
    }
    let exactly_100 = vec!["t"; 100].join(",");
    assert_eq!(
        app.missed(&app.reader, &format!("since=0&types={exactly_100}"))
            .await
            .status,
        200
    );
}

#[actix_web::test]
async fn the_stream_refuses_an_invalid_type_filter_with_a_json_error_body() {
    let app = spawn_app().await;

    let response = app
        .client
        .get(format!("{}/events/stream?types=a*b", app.base))
        .bearer_auth(&app.reader)
        .send()
        .await
        .expect("stream request");
    let reply = crate::helpers::read_reply(response).await;

    assert_eq!(
        (reply.status, reply.error_code()),
        (400, "invalid_type_filter")
    );
}

// ----- Server-Sent Events -----

#[actix_web::test]
async fn an_sse_stream_replays_then_streams_only_the_named_types() {
    let app = spawn_app().await;
    publish_one_of_each(&app).await;

    let mut exact = app
        .stream(&app.reader, "topics=mixed&types=entity:updated", Some(0))
        .await;
    let mut prefix = app
        .stream(&app.reader, "topics=mixed&types=notification:*", Some(0))
        .await;
    let replayed = (exact.ids_through(6).await, prefix.ids_through(5).await);
    publish_typed(
        &app,
        &[
            ("mixed", "notification:fire"),
            ("mixed", "entity:deleted"),
            ("mixed", "entity:updated"),
            ("mixed", "notification:"),
        ],
    )
    .await;

    assert_eq!(replayed, (vec![2, 6], vec![3, 5]));
    assert_eq!(exact.next_event().await.0, 9);
    assert_eq!(prefix.ids_through(10).await, [7, 10]);
    // A sentinel both admit proves nothing else came in between.
    publish_typed(&app, &[("mixed", "entity:updated")]).await;
    assert_eq!(exact.next_event().await.0, 11);
    publish_typed(&app, &[("mixed", "notification:x")]).await;
    assert_eq!(prefix.next_event().await.0, 12);
}

// ----- WebSocket -----

async fn welcomed(app: &TestApp) -> WsClient {
    let mut client = app.ws(&app.reader).await;
    client.expect("welcome").await;
    client
}

/// Sends a `subscribe` with `types` and returns the answer to it.
async fn subscribe_typed(
    client: &mut WsClient,
    topics: &[&str],
    types: Value,
    since: Option<i64>,
    request_id: &str,
) -> Value {
    let mut message =
        json!({"type": "subscribe", "topics": topics, "types": types, "request_id": request_id});
    if let Some(since) = since {
        message["since"] = json!(since);
    }
    client.send(message).await;
    client.json().await
}

#[actix_web::test]
async fn a_websocket_subscription_replays_then_streams_only_the_named_types() {
    let app = spawn_app().await;
    publish_one_of_each(&app).await;
    let mut client = welcomed(&app).await;

    let subscribed = subscribe_typed(
        &mut client,
        &["mixed"],
        json!(["message:new", "notification:*"]),
        Some(0),
        "r1",
    )
    .await;
    let replayed = client.ids_through(5).await;
    let caught_up = client.expect("caught_up").await;
    publish_typed(
        &app,
        &[
            ("mixed", "entity:updated"),
            ("mixed", "message:new"),
            ("mixed", "notification:fire"),
        ],
    )
    .await;

    assert_eq!(
        subscribed,
        json!({"type": "subscribed", "topics": ["mixed"], "types": ["message:new", "notification:*"], "request_id": "r1"})
    );
    assert_eq!(replayed, [3, 4, 5]);
    assert_eq!(caught_up["head"], 6, "the log's head, not the last match");
    assert_eq!(client.ids_through(9).await, [8, 9]);
}

#[actix_web::test]
async fn caught_up_names_the_log_head_even_when_no_event_matched() {
    let app = spawn_app().await;
    publish_one_of_each(&app).await;
    let mut client = welcomed(&app).await;

    subscribe_typed(&mut client, &["mixed"], json!(["nothing:*"]), Some(0), "r1").await;
    let caught_up = client.expect("caught_up").await;

    assert_eq!(
        caught_up,
        json!({"type": "caught_up", "head": 6, "request_id": "r1"})
    );
}

#[actix_web::test]
async fn subscribed_echoes_types_only_when_the_subscribe_named_them() {
    let app = spawn_app().await;
    let mut client = welcomed(&app).await;

    client
        .send(json!({"type": "subscribe", "topics": ["a"], "request_id": "plain"}))
        .await;
    let plain = client.expect("subscribed").await;
    client.expect("caught_up").await;
    let everything = subscribe_typed(&mut client, &["b"], json!(["x", "*"]), None, "star").await;
    client.expect("caught_up").await;
    let repeated = subscribe_typed(&mut client, &["c"], json!(["x", "y*", "x"]), None, "rep").await;

    assert_eq!(
        plain,
        json!({"type": "subscribed", "topics": ["a"], "request_id": "plain"})
    );
    assert_eq!(everything["types"], json!(["*"]));
    assert_eq!(repeated["types"], json!(["x", "y*"]));
}

#[actix_web::test]
async fn a_subscriptions_types_apply_to_its_own_topics_only() {
    let app = spawn_app().await;
    let mut client = welcomed(&app).await;
    subscribe_typed(
        &mut client,
        &["alerts"],
        json!(["notification:*"]),
        None,
        "r1",
    )
    .await;
    client.expect("caught_up").await;
    client.subscribe(&["faults"], None, "r2").await;
    client.expect("caught_up").await;

    publish_typed(
        &app,
        &[
            ("alerts", "entity:updated"),
            ("alerts", "notification:fire"),
            ("faults", "entity:updated"),
            ("faults", "notification:fire"),
        ],
    )
    .await;

    assert_eq!(client.ids_through(4).await, [2, 3, 4]);
}

#[actix_web::test]
async fn subscribing_to_a_held_pattern_again_replaces_its_types() {
    let app = spawn_app().await;
    let mut client = welcomed(&app).await;
    subscribe_typed(
        &mut client,
        &["alerts"],
        json!(["notification:*"]),
        None,
        "r1",
    )
    .await;
    client.expect("caught_up").await;
    subscribe_typed(&mut client, &["alerts"], json!(["entity:*"]), None, "r2").await;
    client.expect("caught_up").await;

    publish_typed(
        &app,
        &[
            ("alerts", "notification:fire"),
            ("alerts", "entity:updated"),
        ],
    )
    .await;
    assert_eq!(client.next_event_id().await, 2);

    client.subscribe(&["alerts"], None, "r3").await;
    client.expect("caught_up").await;
    publish_typed(
        &app,
        &[
            ("alerts", "notification:fire"),
            ("alerts", "entity:updated"),
        ],
    )
    .await;
    assert_eq!(client.ids_through(4).await, [3, 4], "no types: every type");
}

#[actix_web::test]
async fn an_event_two_typed_subscriptions_admit_is_sent_once() {
    let app = spawn_app().await;
    let mut client = welcomed(&app).await;
    subscribe_typed(
        &mut client,
        &["device:*"],
        json!(["notification:*"]),
        None,
        "wide",
    )
    .await;
    client.expect("caught_up").await;
    subscribe_typed(
        &mut client,
        &["device:1"],
        json!(["entity:*", "notification:battery"]),
        None,
        "narrow",
    )
    .await;
    client.expect("caught_up").await;

    publish_typed(
        &app,
        &[
            ("device:1", "notification:battery"),
            ("device:1", "entity:updated"),
            ("device:1", "message:new"),
            ("device:2", "notification:door"),
            ("device:2", "entity:updated"),
            ("device:1", "notification:door"),
        ],
    )
    .await;

    assert_eq!(client.ids_through(6).await, [1, 2, 4, 6]);
}

#[actix_web::test]
async fn unsubscribing_some_topics_keeps_the_types_of_the_rest() {
    let app = spawn_app().await;
    publish_typed(&app, &[("b", "entity:updated"), ("b", "notification:x")]).await;
    let mut client = welcomed(&app).await;
    subscribe_typed(
        &mut client,
        &["a", "b"],
        json!(["notification:*"]),
        Some(0),
        "r1",
    )
    .await;
    assert_eq!(client.next_event_id().await, 2);
    client.expect("caught_up").await;

    client
        .send(json!({"type": "unsubscribe", "topics": ["a"], "request_id": "r2"}))
        .await;
    client.expect("unsubscribed").await;
    publish_typed(
        &app,
        &[
            ("a", "notification:x"),
            ("b", "entity:updated"),
            ("b", "notification:y"),
        ],
    )
    .await;

    assert_eq!(client.next_event_id().await, 5);
}

#[actix_web::test]
async fn an_invalid_type_filter_is_an_error_message_and_changes_nothing() {
    let app = spawn_app().await;
    let mut client = welcomed(&app).await;
    client.subscribe(&["alerts"], None, "r1").await;
    client.expect("caught_up").await;
    let too_long = "t".repeat(101);

    let mut answers = Vec::new();
    for types in [
        json!(["a*b"]),
        json!(["bell\u{7}"]),
        json!([""]),
        json!([too_long]),
        json!([]),
    ] {
        answers.push(subscribe_typed(&mut client, &["alerts"], types, None, "bad").await);
    }
    publish_typed(&app, &[("alerts", "entity:updated")]).await;

    for answer in &answers {
        assert_eq!(answer["type"], "error", "{answer}");
        assert_eq!(answer["error"], "invalid_type_filter", "{answer}");
        assert_eq!(answer["request_id"], "bad", "{answer}");
    }
    // The subscription to `alerts` still admits every type.
    assert_eq!(client.next_event_id().await, 1);
}

#[actix_web::test]
async fn type_patterns_count_against_the_connections_subscription_limit() {
    let app = spawn_app_with(|c| c.max_subscriptions = 4).await;
    let mut client = welcomed(&app).await;

    let five_at_once = subscribe_typed(
        &mut client,
        &["a"],
        json!(["1", "2", "3", "4", "5"]),
        None,
        "r1",
    )
    .await;
    let three = subscribe_typed(&mut client, &["a"], json!(["1", "2", "3"]), None, "r2").await;
    client.expect("caught_up").await;
    let two_more = subscribe_typed(&mut client, &["b"], json!(["1", "2"]), None, "r3").await;
    let replacing =
        subscribe_typed(&mut client, &["a"], json!(["1", "2", "3", "4"]), None, "r4").await;
    client.expect("caught_up").await;

    assert_eq!(
        five_at_once["error"], "too_many_subscriptions",
        "{five_at_once}"
    );
    assert_eq!(three["type"], "subscribed", "{three}");
    assert_eq!(two_more["error"], "too_many_subscriptions", "{two_more}");
    assert_eq!(
        replacing["type"], "subscribed",
        "the replaced types are freed: {replacing}"
    );
}

// ----- Resuming through a sparse filter, on every transport -----

/// Every event published to `mixed`, by id, with its type.
#[derive(Default)]
struct Published(Vec<(i64, String)>);

impl Published {
    /// The ids of the sparse type after `after`, in order.
    fn sparse_after(&self, after: i64) -> Vec<i64> {
        self.0
            .iter()
            .filter(|(id, kind)| *id > after && kind == SPARSE_TYPE)
            .map(|(id, _)| *id)
            .collect()
    }
}

/// Publishes `count` events to `mixed` in batches, one in `SPARSE_EVERY`
/// of the sparse type, counting on from `published`.
async fn publish_sparse(app: &TestApp, published: &RefCell<Published>, count: usize, batch: usize) {
    let mut left = count;
    while left > 0 {
        let size = batch.min(left);
        let start = published.borrow().0.len();
        let kinds: Vec<(&str, &str)> = (start..start + size)
            .map(|n| {
                let kind = if n % SPARSE_EVERY == SPARSE_EVERY - 1 {
                    SPARSE_TYPE
                } else {
                    "entity:updated"
                };
                ("mixed", kind)
            })
            .collect();
        let ids = publish_typed(app, &kinds).await;
        published.borrow_mut().0.extend(
            ids.into_iter()
                .zip(kinds.iter().map(|(_, k)| k.to_string())),
        );
        left -= size;
    }
}

/// A reader on one transport, filtered to `notification:*` on `mixed`.
enum Reader {
    Sse(SseStream),
    Ws(WsClient),
}

#[derive(Clone, Copy)]
enum Transport {
    Sse,
    Ws,
}

impl Reader {
    async fn open(app: &TestApp, transport: Transport, cursor: i64) -> Reader {
        match transport {
            Transport::Sse => Reader::Sse(
                app.stream(
                    &app.reader,
                    "topics=mixed&types=notification:*",
                    Some(cursor),
                )
                .await,
            ),
            Transport::Ws => {
                let mut client = welcomed(app).await;
                let subscribed = subscribe_typed(
                    &mut client,
                    &["mixed"],
                    json!(["notification:*"]),
                    Some(cursor),
                    "r",
                )
                .await;
                assert_eq!(subscribed["type"], "subscribed", "{subscribed}");
                Reader::Ws(client)
            }
        }
    }

    /// The next event's id and type.
    async fn next(&mut self) -> (i64, String) {
        let event = match self {
            Reader::Sse(stream) => loop {
                match stream.next_frame().await {
                    Some(Frame::Event { data, .. }) => break data,
                    Some(Frame::Comment(_) | Frame::Retry(_)) => {}
                    other => panic!("expected an event, got {other:?}"),
                }
            },
            Reader::Ws(client) => loop {
                let message = client.json().await;
                match message["type"].as_str() {
                    Some("event") => break message["event"].clone(),
                    Some("caught_up") => {}
                    _ => panic!("unexpected message {message}"),
                }
            },
        };
        let kind = event["type"].as_str().expect("type").to_owned();
        (event["id"].as_i64().expect("id"), kind)
    }
}

/// 12,000 events wait in the log (600 matching, more than one replay page
/// of 500); a reader takes 50, then resumes again and again while a
/// publisher keeps adding events, and at last reads to the final match.
/// It must have received every match exactly once, in order, and nothing
/// else.
async fn resume_through_a_sparse_filter(app: TestApp, transport: Transport) {
    let app = Rc::new(app);
    let published = Rc::new(RefCell::new(Published::default()));
    publish_sparse(&app, &published, 12_000, 1000).await;
    let mut received: Vec<(i64, String)> = Vec::new();
    let mut reader = Reader::open(&app, transport, 0).await;
    for _ in 0..50 {
        received.push(reader.next().await);
    }
    drop(reader);

    let stop = Arc::new(AtomicBool::new(false));
    let publisher = {
        let (app, published, stop) = (app.clone(), published.clone(), stop.clone());
        actix_web::rt::spawn(async move {
            let mut round = 0;
            while !stop.load(Ordering::Acquire) {
                publish_sparse(&app, &published, 1 + round % 7, 7).await;
                round += 1;
            }
        })
    };
    for take in [560, 7, 13, 3, 11] {
        let cursor = received.last().map_or(0, |(id, _)| *id);
        let mut reader = Reader::open(&app, transport, cursor).await;
        for _ in 0..take {
            received.push(reader.next().await);
        }
    }
    stop.store(true, Ordering::Release);
    publisher.await.expect("the publisher finishes");
    let cursor = received.last().map_or(0, |(id, _)| *id);
    let rest = published.borrow().sparse_after(cursor).len();
    let mut reader = Reader::open(&app, transport, cursor).await;
    for _ in 0..rest {
        received.push(reader.next().await);
    }

    assert!(
        received.iter().all(|(_, kind)| kind == SPARSE_TYPE),
        "only the named type arrives"
    );
    let ids: Vec<i64> = received.iter().map(|(id, _)| *id).collect();
    assert_eq!(
        ids,
        published.borrow().sparse_after(0),
        "gaps, duplicates or disorder"
    );
    assert!(
        ids.len() > 630,
        "the publisher added matches during the resumes"
    );
}

#[actix_web::test]
async fn an_sse_reader_resumes_through_a_sparse_type_filter_without_gap_or_duplicate() {
    resume_through_a_sparse_filter(spawn_app().await, Transport::Sse).await;
}

#[actix_web::test]
async fn an_sse_reader_resumes_through_a_sparse_type_filter_read_from_the_log() {
    let app = spawn_app_with(|c| c.replay_memory_events = 0).await;
    resume_through_a_sparse_filter(app, Transport::Sse).await;
}

#[actix_web::test]
async fn a_websocket_reader_resumes_through_a_sparse_type_filter_without_gap_or_duplicate() {
    resume_through_a_sparse_filter(spawn_app().await, Transport::Ws).await;
}

#[actix_web::test]
async fn a_websocket_reader_resumes_through_a_sparse_type_filter_read_from_the_log() {
    let app = spawn_app_with(|c| c.replay_memory_events = 0).await;
    resume_through_a_sparse_filter(app, Transport::Ws).await;
}

#[actix_web::test]
async fn paging_missed_through_a_sparse_type_filter_returns_every_match_once() {
    let app = spawn_app_with(|c| c.replay_memory_events = 0).await;
    let published = RefCell::new(Published::default());
    publish_sparse(&app, &published, 3_000, 1000).await;

    let mut ids = Vec::new();
    let mut since = 0;
    let mut pages = 0;
    loop {
        let reply = app
            .missed(
                &app.reader,
                &format!("since={since}&types=notification:*&limit=40"),
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        ids.extend(ids_of(&reply.body["events"]));
        since = reply.body["next_since"].as_i64().expect("next_since");
        pages += 1;
        if reply.body["has_more"] == false {
            break;
        }
    }

    assert_eq!(ids, published.borrow().sparse_after(0));
    assert_eq!(since, 3_000, "the last page moves the cursor to the head");
    assert_eq!(pages, 4, "150 matches in pages of 40");
}
