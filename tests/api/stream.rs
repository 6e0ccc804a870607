//! `GET /events/stream`: live delivery, resume, heartbeats and resets.

use serde_json::json;

use crate::helpers::{Frame, event, range, read_reply, spawn_app, spawn_app_with};

#[actix_web::test]
async fn a_stream_opens_at_once_with_proxy_safe_headers() {
    let app = spawn_app().await;

    let mut stream = app.stream(&app.reader, "", None).await;

    assert_eq!(stream.status, 200);
    assert_eq!(stream.content_type, "text/event-stream");
    assert_eq!(
        stream.headers.get("cache-control").unwrap(),
        "no-cache, no-transform"
    );
    assert_eq!(stream.headers.get("x-accel-buffering").unwrap(), "no");
    assert_eq!(stream.next_frame().await, Some(Frame::Retry(2000)));
    assert!(matches!(stream.next_frame().await, Some(Frame::Comment(_))));
}

#[actix_web::test]
async fn a_published_event_reaches_an_open_stream() {
    let app = spawn_app().await;
    let mut stream = app.stream(&app.reader, "topics=faults", None).await;
    stream.opened().await;

    app.publish(&json!({"topic": "faults", "type": "entity:updated", "payload": {"a": 1}}))
        .await;

    let (id, data) = stream.next_event().await;
    assert_eq!(id, 1);
    assert_eq!(data["topic"], "faults");
    assert_eq!(data["payload"], json!({"a": 1}));
}

#[actix_web::test]
async fn a_thousand_events_arrive_in_order() {
    let app = spawn_app().await;
    let mut stream = app.stream(&app.reader, "", None).await;
    stream.opened().await;

    for chunk in 0..10 {
        let batch: Vec<_> = (0..100)
            .map(|i| json!({"topic": "t", "type": "n", "payload": chunk * 100 + i}))
            .collect();
        assert_eq!(app.publish(&json!(batch)).await.status, 201);
    }

    assert_eq!(stream.ids_through(1000).await, range(1, 1000));
}

#[actix_web::test]
async fn a_resumed_stream_gets_exactly_the_missed_events_then_live_ones() {
    let app = spawn_app().await;
    let mut first = app.stream(&app.reader, "topics=t", None).await;
    first.opened().await;
    app.publish_many("t", 5).await;
    assert_eq!(first.ids_through(5).await, range(1, 5));
    drop(first);

    app.publish_many("t", 7).await;
    let mut resumed = app.stream(&app.reader, "topics=t", Some(5)).await;
    let missed = resumed.ids_through(12).await;
    app.publish_many("t", 3).await;
    let live = resumed.ids_through(15).await;

    assert_eq!(missed, range(6, 12));
    assert_eq!(live, range(13, 15));
}

#[actix_web::test]
async fn the_resume_point_may_come_as_a_query_parameter() {
    let app = spawn_app().await;
    app.publish_many("t", 4).await;

    for query in ["lastEventId=2", "last_event_id=2", "since=2"] {
        let mut stream = app.stream(&app.reader, query, None).await;
        assert_eq!(stream.ids_through(4).await, range(3, 4), "{query}");
    }
}

#[actix_web::test]
async fn the_last_event_id_header_wins_over_query_parameters() {
    let app = spawn_app().await;
    app.publish_many("t", 4).await;

    let mut stream = app.stream(&app.reader, "since=0", Some(3)).await;

    assert_eq!(stream.ids_through(4).await, vec![4]);
}

#[actix_web::test]
async fn a_malformed_resume_point_is_refused_even_when_another_one_wins() {
    let app = spawn_app().await;

    for query in [
        "since=abc",
        "lastEventId=1&since=yesterday",
        "since=99999999999999999999999",
    ] {
        let response = app
            .client
            .get(format!("{}/events/stream?{query}", app.base))
            .bearer_auth(&app.reader)
            .insert_header(("Last-Event-ID", "1"))
            .send()
            .await
            .expect("request");
        let reply = read_reply(response).await;
        assert_eq!(reply.status, 400, "{query}");
        assert_eq!(reply.error_code(), "invalid_cursor", "{query}");
    }
}

#[actix_web::test]
async fn an_idle_stream_gets_heartbeat_comments() {
    let app = spawn_app_with(|c| c.heartbeat_secs = 1).await;
    let mut stream = app.stream(&app.reader, "", None).await;
    stream.opened().await;

    assert_eq!(
        stream.next_frame().await,
        Some(Frame::Comment("ping".into()))
    );
}

#[actix_web::test]
async fn a_cursor_ahead_of_the_log_gets_a_reset_and_the_stream_ends() {
    let app = spawn_app().await;
    app.publish_many("t", 3).await;

    let mut stream = app.stream(&app.reader, "", Some(99)).await;

    let reset = stream.expect_reset().await;
    assert_eq!(
        reset,
        json!({"reason": "cursor_unknown", "oldest_id": 1, "head": 3})
    );
    assert_eq!(stream.next_frame().await, None);
}

#[actix_web::test]
async fn a_malformed_resume_point_is_a_400_before_the_stream_opens() {
    let app = spawn_app().await;

    let stream = app.stream(&app.reader, "since=yesterday", None).await;

    assert_eq!(stream.status, 400);
}

#[actix_web::test]
async fn a_client_that_stops_reading_is_reset_as_lagged_and_loses_nothing_on_resume() {
    let app = spawn_app_with(|c| c.subscriber_queue = 4).await;
    let mut healthy = app.stream(&app.reader, "", None).await;
    healthy.opened().await;
    let mut slow = app.stream(&app.reader, "", None).await;
    slow.opened().await;
    let payload = "x".repeat(60 * 1024);

    // Far more than socket buffers hold (24 MiB): the slow stream's queue
    // must fill, while the healthy reader takes each event as it comes.
    let mut last = 0;
    for _ in 0..400 {
        let reply = app
            .publish(&json!({"topic": "t", "type": "big", "payload": payload}))
            .await;
        last = reply.body["events"][0]["id"].as_i64().unwrap();
        assert_eq!(healthy.next_event().await.0, last);
    }

    let mut received = Vec::new();
    let reset = loop {
        match slow.next_frame().await {
            Some(Frame::Event { id, .. }) => received.push(id),
            Some(Frame::Reset(reset)) => break reset,
            Some(_) => continue,
            None => panic!("the slow stream ended without a reset"),
        }
    };
    assert_eq!(reset["reason"], "lagged");
    assert!(received.len() < 400, "the slow reader was never cut off");
    assert_eq!(
        received,
        range(1, received.len() as i64),
        "what it got has no gap"
    );
    let mut resumed = app.stream(&app.reader, "", received.last().copied()).await;
    assert_eq!(
        resumed.ids_through(last).await,
        range(received.len() as i64 + 1, last)
    );
}

#[actix_web::test]
async fn a_stream_only_carries_the_topics_it_asked_for() {
    let app = spawn_app().await;
    let mut stream = app
        .stream(&app.reader, "topics=device:*,alerts", None)
        .await;
    stream.opened().await;

    for topic in ["device:1", "other", "alerts", "devices", "device:2"] {
        app.publish(&event(topic)).await;
    }

    let mut topics = Vec::new();
    for _ in 0..3 {
        topics.push(
            stream.next_event().await.1["topic"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(topics, ["device:1", "alerts", "device:2"]);
}

#[actix_web::test]
async fn a_stream_ends_when_its_token_expires() {
    let app = spawn_app().await;
    // `exp` 29 s ago: still accepted within the 30 s clock-skew leeway, and
    // out of it one second later.
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 29;
    let claims = json!({"sub": "alice", "exp": exp});
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(crate::helpers::SECRET.as_bytes()),
    )
    .unwrap();
    let mut stream = app.stream(&token, "", None).await;
    stream.opened().await;

    assert_eq!(stream.next_frame().await, None);
}
