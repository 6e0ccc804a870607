//! `GET /ws`: the WebSocket half of the contract.

use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use pushlog::store::Retention;
use pushlog::store::retention::prune_now;
use serde_json::json;

use crate::helpers::{TestApp, event, range, spawn_app, spawn_app_with};
use crate::ws_client::{Received, WsClient};

async fn subscribed_client(app: &TestApp, topics: &[&str], since: Option<i64>) -> WsClient {
    let mut client = app.ws(&app.reader).await;
    client.expect("welcome").await;
    client.subscribe(topics, since, "r1").await;
    client
}

#[actix_web::test]
async fn a_connection_is_welcomed_with_its_id_head_and_heartbeat() {
    let app = spawn_app().await;
    app.publish_many("t", 3).await;

    let mut client = app.ws(&app.reader).await;
    let welcome = client.expect("welcome").await;

    assert_eq!(welcome["head"], 3);
    assert_eq!(welcome["heartbeat_ms"], 30_000);
    assert!(uuid::Uuid::parse_str(welcome["connection_id"].as_str().unwrap()).is_ok());
}

#[actix_web::test]
async fn subscribe_then_live_events_arrive_after_caught_up() {
    let app = spawn_app().await;
    let mut client = subscribed_client(&app, &["alerts"], None).await;
    let caught_up = client.expect("caught_up").await;
    assert_eq!(
        caught_up,
        json!({"type": "caught_up", "head": 0, "request_id": "r1"})
    );

    app.publish(&json!({"topic": "alerts", "type": "notification:fire", "payload": {"room": 3}}))
        .await;

    let message = client.expect("event").await;
    assert_eq!(message["event"]["id"], 1);
    assert_eq!(message["event"]["payload"], json!({"room": 3}));
}

#[actix_web::test]
async fn subscribe_with_since_replays_then_marks_caught_up_then_goes_live() {
    let app = spawn_app().await;
    app.publish_many("t", 5).await;

    let mut client = subscribed_client(&app, &["t"], Some(2)).await;
    let replayed = [
        client.expect("event").await,
        client.expect("event").await,
        client.expect("event").await,
    ];
    let caught_up = client.expect("caught_up").await;
    app.publish_many("t", 2).await;

    assert_eq!(
        replayed.map(|m| m["event"]["id"].as_i64().unwrap()),
        [3, 4, 5]
    );
    assert_eq!(caught_up["head"], 5);
    assert_eq!(client.ids_through(7).await, vec![6, 7]);
}

#[actix_web::test]
async fn each_subscription_has_its_own_cursor() {
    let app = spawn_app().await;
    app.publish(&json!([event("a"), event("b"), event("a"), event("b")]))
        .await;
    let mut client = app.ws(&app.reader).await;
    client.expect("welcome").await;

    client.subscribe(&["a"], Some(0), "ra").await;
    let a_ids = [client.expect("event").await, client.expect("event").await];
    assert_eq!(client.expect("caught_up").await["request_id"], "ra");
    client.subscribe(&["b"], Some(2), "rb").await;
    let b_id = client.expect("event").await;
    assert_eq!(client.expect("caught_up").await["request_id"], "rb");

    assert_eq!(a_ids.map(|m| m["event"]["id"].as_i64().unwrap()), [1, 3]);
    assert_eq!(b_id["event"]["id"], 4);
    app.publish(&json!([event("b"), event("a")])).await;
    assert_eq!(client.ids_through(6).await, vec![5, 6]);
}

#[actix_web::test]
async fn overlapping_subscriptions_deliver_an_event_once() {
    let app = spawn_app().await;
    let mut client = app.ws(&app.reader).await;
    client.expect("welcome").await;
    client.subscribe(&["device:*"], None, "r1").await;
    client.expect("caught_up").await;
    client.subscribe(&["device:1"], None, "r2").await;
    client.expect("caught_up").await;

    app.publish(&json!([event("device:1"), event("device:2")]))
        .await;

    assert_eq!(client.ids_through(2).await, vec![1, 2]);
}

#[actix_web::test]
async fn unsubscribed_topics_stop_arriving() {
    let app = spawn_app().await;
    let mut client = subscribed_client(&app, &["a", "b"], None).await;
    client.expect("caught_up").await;

    client
        .send(json!({"type": "unsubscribe", "topics": ["a"], "request_id": "u1"}))
        .await;
    let unsubscribed = client.expect("unsubscribed").await;
    app.publish(&json!([event("a"), event("b")])).await;

    assert_eq!(
        unsubscribed,
        json!({"type": "unsubscribed", "topics": ["a"], "request_id": "u1"})
    );
    assert_eq!(client.next_event_id().await, 2);
}

#[actix_web::test]
async fn a_forbidden_topic_is_an_error_message_not_a_close() {
    let app = spawn_app().await;
    let token = app.token("alice", &[], Some(&["device:*"]));
    let mut client = app.ws(&token).await;
    client.expect("welcome").await;

    client
        .send(json!({"type": "subscribe", "topics": ["alerts"], "request_id": "r9"}))
        .await;
    let error = client.expect("error").await;
    client.subscribe(&["device:1"], None, "r10").await;

    assert_eq!(error["error"], "forbidden_topic");
    assert_eq!(error["request_id"], "r9");
}

#[actix_web::test]
async fn the_application_ping_is_answered_with_pong() {
    let app = spawn_app().await;
    let mut client = app.ws(&app.reader).await;
    client.expect("welcome").await;

    client.send(json!({"type": "ping"})).await;

    assert_eq!(client.json().await, json!({"type": "pong"}));
}

#[actix_web::test]
async fn tokens_are_taken_from_header_cookie_or_a_first_auth_message() {
    let app = spawn_app().await;
    let token = app.reader.clone();

    let mut by_header = app.ws_with(|r| r.bearer_auth(&token), "").await.unwrap();
    let mut by_cookie = app
        .ws_with(
            |r| r.cookie(awc::cookie::Cookie::new("pushlog_token", token.clone())),
            "",
        )
        .await
        .unwrap();
    let mut by_message = app.ws_with(|r| r, "").await.unwrap();
    by_message
        .send(json!({"type": "auth", "token": token}))
        .await;

    by_header.expect("welcome").await;
    by_cookie.expect("welcome").await;
    by_message.expect("welcome").await;
}

#[actix_web::test]
async fn bad_or_missing_tokens_are_closed_with_4001() {
    let app = spawn_app().await;
    let expired = {
        use jsonwebtoken::{EncodingKey, Header};
        let claims = json!({"sub": "alice", "exp": 1_000_000_000});
        jsonwebtoken::encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(crate::helpers::SECRET.as_bytes()),
        )
        .unwrap()
    };

    let mut invalid = app.ws("not-a-token").await;
    let mut stale = app.ws(&expired).await;
    let mut unauthenticated = app.ws_with(|r| r, "").await.unwrap();
    unauthenticated
        .send(json!({"type": "subscribe", "topics": ["a"]}))
        .await;
    let mut wrong_auth = app.ws_with(|r| r, "").await.unwrap();
    wrong_auth
        .send(json!({"type": "auth", "token": "nope"}))
        .await;

    assert_eq!(invalid.close_code().await, Some(4001));
    assert_eq!(stale.close_code().await, Some(4001));
    assert_eq!(unauthenticated.close_code().await, Some(4001));
    assert_eq!(wrong_auth.close_code().await, Some(4001));
}

#[actix_web::test]
async fn a_connection_without_any_token_is_closed_after_five_seconds() {
    let app = spawn_app().await;

    let mut silent = app.ws_with(|r| r, "").await.unwrap();

    assert_eq!(silent.close_code().await, Some(4001));
}

#[actix_web::test]
async fn changing_user_on_an_open_connection_is_closed_with_4003() {
    let app = spawn_app().await;
    let mut client = app.ws(&app.reader).await;
    client.expect("welcome").await;

    client
        .send(json!({"type": "auth", "token": app.token("mallory", &[], None)}))
        .await;

    assert_eq!(client.close_code().await, Some(4003));
}

#[actix_web::test]
async fn a_cookie_from_a_foreign_origin_is_refused_before_the_upgrade() {
    let app = spawn_app_with(|c| c.allowed_origins = vec!["https://app.example.com".into()]).await;
    let cookie = awc::cookie::Cookie::new("pushlog_token", app.reader.clone());

    let foreign = app
        .ws_with(
            |r| r.cookie(cookie.clone()).origin("https://evil.example.net"),
            "",
        )
        .await;
    let allowed = app
        .ws_with(
            |r| r.cookie(cookie.clone()).origin("https://app.example.com"),
            "",
        )
        .await;
    let foreign_with_explicit_token = app
        .ws_with(
            |r| r.origin("https://evil.example.net"),
            &format!("token={}", app.reader),
        )
        .await;

    assert_eq!(foreign.err(), Some(403));
    assert!(allowed.is_ok());
    assert!(
        foreign_with_explicit_token.is_ok(),
        "an explicit token is not ambient authority"
    );
}

#[actix_web::test]
async fn a_connection_that_has_not_answered_for_two_ping_intervals_is_closed_at_the_second() {
    // Two seconds between pings: the close is due at 4 s, a whole interval
    // late would be 6 s, and the 2 s between leave room for a busy machine.
    const PING: Duration = Duration::from_secs(2);
    let app = spawn_app_with(|c| c.ws_ping_secs = PING.as_secs()).await;
    let mut alive = app.ws(&app.reader).await;
    // Taken before the dead one connects, so its session (and the ping clock)
    // starts after this instant: the close can come no sooner than 2 × PING.
    let connecting = Instant::now();
    let mut dead = app.ws(&app.reader).await;
    dead.answer_pings = false;

    // The live one reads (and so answers pings) while the dead one waits.
    let code = {
        let dead_closed = dead.close_code();
        tokio::pin!(dead_closed);
        loop {
            tokio::select! {
                code = &mut dead_closed => break code,
                message = alive.next() => assert!(matches!(message, Received::Json(_)), "{message:?}"),
            }
        }
    };
    let closed_after = connecting.elapsed();
    alive.send(json!({"type": "ping"})).await;
    let pong = alive.json().await;

    assert_eq!(code, Some(1001));
    assert!(
        closed_after >= 2 * PING,
        "closed after {closed_after:?}, before two intervals of silence"
    );
    assert!(
        closed_after < 3 * PING,
        "closed after {closed_after:?}: an interval after the second tick"
    );
    assert_eq!(
        dead.pings_seen, 1,
        "pinged once, at the first tick, before being dropped"
    );
    assert_eq!(pong["type"], "pong", "the answering connection stays open");
}

#[actix_web::test]
async fn flooding_messages_is_closed_with_1008() {
    let app = spawn_app().await;
    let mut client = app.ws(&app.reader).await;

    for _ in 0..40 {
        client.send(json!({"type": "ping"})).await;
    }

    assert_eq!(client.close_code().await, Some(1008));
}

#[actix_web::test]
async fn garbage_is_answered_then_repeated_garbage_is_closed_with_1008() {
    let app = spawn_app().await;
    let mut client = app.ws(&app.reader).await;
    client.expect("welcome").await;

    client.send_text("this is not json").await;
    let first = client.expect("error").await;
    client.send(json!({"type": "dance"})).await;
    let second = client.expect("error").await;
    for _ in 0..4 {
        client.send_text("{").await;
    }

    assert_eq!(first["error"], "invalid_message");
    assert_eq!(second["error"], "invalid_message");
    assert_eq!(client.close_code().await, Some(1008));
}

#[actix_web::test]
async fn the_subscription_limit_is_an_error_message() {
    let app = spawn_app_with(|c| c.max_subscriptions = 3).await;
    let mut client = app.ws(&app.reader).await;
    client.expect("welcome").await;
    client.subscribe(&["a", "b"], None, "r1").await;
    client.expect("caught_up").await;

    client
        .send(json!({"type": "subscribe", "topics": ["c", "d"], "request_id": "r2"}))
        .await;
    let error = client.expect("error").await;
    client.subscribe(&["c"], None, "r3").await;

    assert_eq!(error["error"], "too_many_subscriptions");
}

#[actix_web::test]
async fn an_oversized_message_is_closed_with_1009() {
    let app = spawn_app_with(|c| c.ws_max_frame_bytes = 1024).await;
    let mut client = app.ws(&app.reader).await;

    client
        .send(json!({"type": "ping", "request_id": "x".repeat(2048)}))
        .await;

    assert_eq!(client.close_code().await, Some(1009));
}

#[actix_web::test]
async fn the_connection_limit_refuses_the_upgrade_with_503() {
    let app = spawn_app_with(|c| c.max_connections = 1).await;
    let mut first = app.ws(&app.reader).await;
    first.expect("welcome").await;

    let second = app.ws_with(|r| r, &format!("token={}", app.reader)).await;

    assert_eq!(second.err(), Some(503));
}

#[actix_web::test]
async fn a_cursor_ahead_of_the_log_is_reset_and_the_subscription_goes_on_live() {
    let app = spawn_app().await;
    app.publish_many("t", 2).await;

    let mut client = subscribed_client(&app, &["t"], Some(50)).await;
    let reset = client.expect("reset").await;
    client.expect("caught_up").await;
    app.publish_many("t", 1).await;

    assert_eq!(
        reset,
        json!({"type": "reset", "reason": "cursor_unknown", "oldest_id": 1, "head": 2, "request_id": "r1"})
    );
    assert_eq!(client.next_event_id().await, 3);
}

#[actix_web::test]
async fn a_cursor_retention_has_passed_is_reset_as_expired_and_the_subscription_goes_on_live() {
    let app = spawn_app().await;
    app.publish(&json!((0..30).map(|_| event("t")).collect::<Vec<_>>()))
        .await;
    let keep_ten = Retention {
        max_age: None,
        max_events: Some(10),
        entity_max_age: None,
    };
    prune_now(&app.handle.log, keep_ten).await.unwrap();

    let mut client = subscribed_client(&app, &["t"], Some(5)).await;
    let reset = client.expect("reset").await;
    let caught_up = client.expect("caught_up").await;
    app.publish_many("t", 1).await;

    assert_eq!(
        reset,
        json!({"type": "reset", "reason": "cursor_expired", "oldest_id": 21, "head": 30, "request_id": "r1"})
    );
    assert_eq!(caught_up["request_id"], "r1");
    assert_eq!(
        client.next_event_id().await,
        31,
        "live from the head, no replay"
    );
}

/// A connection for `token`, subscribed to `news` and past its `caught_up`.
async fn live_on_news(app: &TestApp, token: &str) -> WsClient {
    let mut client = app.ws(token).await;
    client.expect("welcome").await;
    client.subscribe(&["news"], None, "r1").await;
    client.expect("caught_up").await;
    client
}

#[actix_web::test]
async fn the_audience_decides_which_connections_receive_an_event() {
    let app = spawn_app().await;
    let mut alice = live_on_news(&app, &app.token("alice", &[], None)).await;
    let mut bob = live_on_news(&app, &app.token("bob", &[], None)).await;
    let mut manager = live_on_news(&app, &app.token("carol", &["manager"], None)).await;

    app.publish(&json!([
        {"topic": "news", "type": "n", "audience": {"users": ["alice"]}},
        {"topic": "news", "type": "n", "audience": {"roles": ["manager"]}},
        {"topic": "news", "type": "n"}
    ]))
    .await;

    // Each sequence ends with the unaddressed event 3, which everyone gets:
    // whatever was withheld before it was withheld for good (ids are ordered).
    assert_eq!(
        alice.ids_through(3).await,
        vec![1, 3],
        "alice: hers and everyone's"
    );
    assert_eq!(bob.ids_through(3).await, vec![3], "bob: only everyone's");
    assert_eq!(
        manager.ids_through(3).await,
        vec![2, 3],
        "a manager: the role's and everyone's"
    );
}

#[actix_web::test]
async fn readers_are_not_shown_the_audience_on_the_websocket() {
    let app = spawn_app().await;
    let mut alice = subscribed_client(&app, &["news"], None).await;
    alice.expect("caught_up").await;

    app.publish(&json!({"topic": "news", "type": "n", "audience": {"users": ["alice"]}}))
        .await;

    let delivered = alice.expect("event").await;
    assert_eq!(delivered["event"]["id"], 1);
    assert!(delivered["event"].get("audience").is_none(), "{delivered}");
}

#[actix_web::test]
async fn a_reader_that_stops_reading_is_closed_with_4008_while_others_get_everything() {
    let app = spawn_app_with(|c| c.subscriber_queue = 16).await;
    let mut healthy = subscribed_client(&app, &["t"], None).await;
    healthy.expect("caught_up").await;
    let mut stalled = subscribed_client(&app, &["t"], None).await;
    stalled.expect("caught_up").await;
    let payload = "x".repeat(60 * 1024);

    // 36 MiB: more than socket buffers and every queue on the way hold.
    let mut last = 0;
    for _ in 0..600 {
        let reply = app
            .publish(&json!({"topic": "t", "type": "big", "payload": payload}))
            .await;
        last = reply.body["events"][0]["id"].as_i64().unwrap();
        assert_eq!(healthy.next_event_id().await, last);
    }

    let mut received = Vec::new();
    let code = loop {
        match stalled.next().await {
            Received::Json(message) if message["type"] == "event" => {
                received.push(message["event"]["id"].as_i64().unwrap());
            }
            Received::Json(other) => panic!("unexpected {other}"),
            Received::Closed(code) => break code,
        }
    };
    assert_eq!(code, Some(4008));
    assert!(received.len() < 600, "the stalled reader was never cut off");
    assert_eq!(
        received,
        range(1, received.len() as i64),
        "what it got has no gap"
    );
    let mut resumed = subscribed_client(&app, &["t"], received.last().copied()).await;
    assert_eq!(
        resumed.ids_through(last).await,
        range(received.len() as i64 + 1, last)
    );
}

/// Resumes over fresh WebSocket connections while a publisher fires on
/// `topics`; the whole received sequence must be exactly 1..=last.
async fn resume_across_reconnects_under_fire(
    app: Rc<TestApp>,
    topics: &'static [&'static str],
    iterations: usize,
) {
    let stop = Arc::new(AtomicBool::new(false));
    let publisher = {
        let (app, stop) = (app.clone(), stop.clone());
        actix_web::rt::spawn(async move {
            let mut last = 0;
            let mut round = 0usize;
            while !stop.load(Ordering::Acquire) {
                let batch: Vec<_> = (0..1 + round % 3)
                    .map(|i| event(topics[(round + i) % topics.len()]))
                    .collect();
                let reply = app.publish(&json!(batch)).await;
                last = reply.body["events"].as_array().unwrap().last().unwrap()["id"]
                    .as_i64()
                    .unwrap();
                round += 1;
            }
            last
        })
    };
    let mut received: Vec<i64> = Vec::new();
    for iteration in 0..iterations {
        let cursor = received.last().copied().unwrap_or(0);
        let mut client = subscribed_client(&app, topics, Some(cursor)).await;
        for _ in 0..(2 + iteration % 13) {
            received.push(client.next_event_id().await);
        }
    }
    stop.store(true, Ordering::Release);
    let last = publisher.await.unwrap();
    let cursor = received.last().copied().unwrap_or(0);
    if cursor < last {
        let mut client = subscribed_client(&app, topics, Some(cursor)).await;
        received.extend(client.ids_through(last).await);
    }
    assert_eq!(received, range(1, last), "gaps, duplicates or disorder");
}

#[actix_web::test]
async fn resuming_across_reconnects_while_a_publisher_fires_loses_and_repeats_nothing() {
    let app = Rc::new(spawn_app().await);
    resume_across_reconnects_under_fire(app, &["race"], 50).await;
}

#[actix_web::test]
async fn the_handover_holds_for_several_topics_at_once() {
    let app = Rc::new(spawn_app().await);
    resume_across_reconnects_under_fire(app, &["x", "y", "z"], 40).await;
}

#[actix_web::test]
async fn shutdown_closes_connections_with_1001() {
    let app = spawn_app().await;
    let mut client = app.ws(&app.reader).await;
    client.expect("welcome").await;

    app.handle.shutdown.trigger();

    assert_eq!(client.close_code().await, Some(1001));
}

#[actix_web::test]
async fn a_client_close_is_answered_with_a_close_frame() {
    let app = spawn_app().await;
    let mut client = app.ws(&app.reader).await;
    client.expect("welcome").await;

    client.close().await;

    assert_eq!(client.close_code().await, Some(1000));
}

#[actix_web::test]
async fn a_subscription_narrowed_while_it_replays_still_gets_its_caught_up_and_every_event_once() {
    // A queue of 4 frames: the session hands over to the socket every few
    // events, so the unsubscribe is read while the replay is under way. A
    // replay long enough that it is still under way on a loaded machine
    // when the unsubscribe, sent right after the subscribe, arrives.
    const EVENTS: i64 = 2000;
    let app = spawn_app_with(|c| c.subscriber_queue = 4).await;
    for _ in 0..EVENTS / 100 {
        let batch: Vec<_> = (0..100).map(|_| event("a")).collect();
        app.publish(&json!(batch)).await;
    }
    let mut client = app.ws(&app.reader).await;
    client.expect("welcome").await;
    client
        .send(json!({"type": "subscribe", "topics": ["a", "b"], "since": 0, "request_id": "r1"}))
        .await;
    client
        .send(json!({"type": "unsubscribe", "topics": ["b"], "request_id": "u1"}))
        .await;

    let mut ids = Vec::new();
    let mut unsubscribed_after = None;
    let caught_up = loop {
        let message = client.json().await;
        match message["type"].as_str() {
            Some("subscribed") => {}
            Some("unsubscribed") => unsubscribed_after = Some(ids.len()),
            Some("event") => ids.push(message["event"]["id"].as_i64().expect("event id")),
            Some("caught_up") => break message,
            _ => panic!("unexpected message {message}"),
        }
    };

    let narrowed_at = unsubscribed_after.expect("the unsubscribe is answered");
    assert!(
        narrowed_at < EVENTS as usize,
        "the unsubscribe landed mid-replay (after {narrowed_at} events)"
    );
    assert_eq!(caught_up["request_id"], "r1");
    assert_eq!(caught_up["head"], EVENTS);
    assert_eq!(ids, (1..=EVENTS).collect::<Vec<_>>());
}
