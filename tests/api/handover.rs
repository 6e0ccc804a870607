//! The live/replay handover under fire: clients resume while a publisher
//! keeps publishing, and every event arrives exactly once, in order.

use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::json;

use crate::helpers::{Frame, TestApp, range, spawn_app, spawn_app_with};

/// Publishes single events and small batches until told to stop; returns the
/// last acknowledged id.
fn start_publisher(
    app: Rc<TestApp>,
    stop: Arc<AtomicBool>,
) -> actix_web::rt::task::JoinHandle<i64> {
    actix_web::rt::spawn(async move {
        let mut last = 0;
        let mut round = 0u64;
        while !stop.load(Ordering::Acquire) {
            let size = 1 + (round % 4) as usize;
            let batch: Vec<_> = (0..size)
                .map(|_| json!({"topic": "race", "type": "tick"}))
                .collect();
            let reply = app.publish(&json!(batch)).await;
            assert_eq!(reply.status, 201);
            last = reply.body["events"][size - 1]["id"].as_i64().unwrap();
            round += 1;
        }
        last
    })
}

/// Resumes `iterations` times from the last id seen, reading a varying
/// number of events each time, while the publisher fires; then checks the
/// whole received sequence is exactly `1..=last`.
async fn resume_repeatedly_under_fire(app: Rc<TestApp>, iterations: usize) -> usize {
    let stop = Arc::new(AtomicBool::new(false));
    let publisher = start_publisher(app.clone(), stop.clone());
    let mut received: Vec<i64> = Vec::new();
    let mut lagged = 0;
    for iteration in 0..iterations {
        let cursor = received.last().copied().unwrap_or(0);
        let mut stream = app.stream(&app.reader, "topics=race", Some(cursor)).await;
        for _ in 0..(3 + iteration % 17) {
            match stream.next_frame().await {
                Some(Frame::Event { id, .. }) => received.push(id),
                // Told explicitly, the client resumes from its cursor.
                Some(Frame::Reset(reset)) if reset["reason"] == "lagged" => {
                    lagged += 1;
                    break;
                }
                Some(Frame::Comment(_) | Frame::Retry(_)) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    stop.store(true, Ordering::Release);
    let last = publisher.await.unwrap();
    let cursor = received.last().copied().unwrap_or(0);
    if cursor < last {
        // Nothing is published any more: the replay alone must finish it.
        let mut stream = app.stream(&app.reader, "topics=race", Some(cursor)).await;
        received.extend(stream.ids_through(last).await);
    }

    let duplicates = received.len() - {
        let mut d = received.clone();
        d.dedup();
        d.len()
    };
    assert_eq!(duplicates, 0, "duplicates received");
    assert_eq!(received, range(1, last), "gaps or disorder");
    lagged
}

#[actix_web::test]
async fn resuming_while_a_publisher_fires_has_no_gaps_and_no_duplicates() {
    let app = Rc::new(spawn_app().await);
    let lagged = resume_repeatedly_under_fire(app, 60).await;
    assert_eq!(lagged, 0, "a reader keeping up is never reset");
}

#[actix_web::test]
async fn the_handover_holds_when_every_replay_reads_the_log() {
    let app = Rc::new(spawn_app_with(|c| c.replay_memory_events = 0).await);
    let lagged = resume_repeatedly_under_fire(app, 40).await;
    assert_eq!(lagged, 0);
}

#[actix_web::test]
async fn the_handover_holds_when_the_replay_window_is_smaller_than_the_gap() {
    // 8 recent events: most resumes start before the window, some inside.
    let app = Rc::new(spawn_app_with(|c| c.replay_memory_events = 8).await);
    resume_repeatedly_under_fire(app, 40).await;
}

#[actix_web::test]
async fn the_handover_holds_when_the_live_queue_overflows_during_replay() {
    // A queue of 4 overflows during most replays, forcing the feed to
    // re-subscribe and read further from the log; live, it may also lag,
    // which the client is told and resumes from.
    let app = Rc::new(spawn_app_with(|c| c.subscriber_queue = 4).await);
    resume_repeatedly_under_fire(app, 40).await;
}

#[actix_web::test]
async fn a_client_far_behind_catches_up_across_many_replay_pages() {
    let app = spawn_app().await;
    let batch: Vec<_> = (0..1000)
        .map(|_| json!({"topic": "race", "type": "tick"}))
        .collect();
    for _ in 0..3 {
        app.publish(&json!(batch)).await;
    }

    let mut stream = app.stream(&app.reader, "topics=race", Some(10)).await;
    app.publish(&json!(batch[..5])).await;

    assert_eq!(stream.ids_through(3005).await, range(11, 3005));
}
