//! Graceful shutdown: open streams end cleanly, nothing acknowledged is lost,
//! and nothing that arrives once the drain has begun is committed.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use awc::Client;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::helpers::{PATIENCE, client, spawn_app};

#[actix_web::test]
async fn shutdown_ends_open_streams_cleanly() {
    let app = spawn_app().await;
    let mut stream = app.stream(&app.reader, "", None).await;
    stream.opened().await;

    app.handle.shutdown.trigger();

    assert_eq!(stream.next_frame().await, None);
}

#[actix_web::test]
async fn health_and_readiness_answer_with_the_log_head() {
    let app = spawn_app().await;
    app.publish_many("t", 2).await;

    let ready = app.get("/readyz").await;
    let alive = app.get("/healthz").await;
    assert_eq!((ready.status, ready.body["head"].as_i64()), (200, Some(2)));
    assert_eq!(alive.status, 200);
}

/// Events per publish request: enough that a half-committed request would
/// show as a partial batch in the log.
const BATCH: usize = 3;

/// One publish request and what became of it.
#[derive(Debug)]
struct Attempt {
    markers: Vec<String>,
    /// Sent after the test had triggered the shutdown.
    after_drain: bool,
    outcome: Outcome,
}

#[derive(Debug)]
enum Outcome {
    Acknowledged(Vec<i64>),
    Refused {
        status: u16,
        error: String,
    },
    /// No HTTP answer at all: the connection was refused or closed.
    NoAnswer,
}

/// Publishes one batch whose payloads are `markers`. Any HTTP answer or
/// connection failure is an outcome; silence past `PATIENCE` fails the test.
async fn attempt(client: &Client, base: &str, token: &str, markers: &[String]) -> Outcome {
    let batch: Vec<Value> = markers
        .iter()
        .map(|marker| json!({"topic": "drain", "type": "t", "payload": marker}))
        .collect();
    let exchange = async {
        let mut response = client
            .post(format!("{base}/events"))
            .bearer_auth(token)
            .send_json(&batch)
            .await
            .ok()?;
        let body = response.body().await.ok()?;
        Some((response.status().as_u16(), body))
    };
    let answer = tokio::time::timeout(PATIENCE, exchange)
        .await
        .expect("a publish is answered or cut off within the patience window");
    let Some((status, body)) = answer else {
        return Outcome::NoAnswer;
    };
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if status == 201 {
        let ids = body["events"]
            .as_array()
            .expect("events")
            .iter()
            .map(|event| event["id"].as_i64().expect("id"))
            .collect();
        Outcome::Acknowledged(ids)
    } else {
        let error = body["error"].as_str().unwrap_or("<none>").to_owned();
        Outcome::Refused { status, error }
    }
}

/// Publishes batches until one is not acknowledged, reporting every attempt.
fn spawn_publisher(
    publisher: usize,
    base: String,
    token: String,
    draining: Arc<AtomicBool>,
    report: mpsc::UnboundedSender<Attempt>,
) -> actix_web::rt::task::JoinHandle<()> {
    actix_web::rt::spawn(async move {
        let client = client();
        for request in 0.. {
            let markers: Vec<String> = (0..BATCH)
                .map(|k| format!("{publisher}-{request}-{k}"))
                .collect();
            let after_drain = draining.load(Ordering::Acquire);
            let outcome = attempt(&client, &base, &token, &markers).await;
            let acknowledged = matches!(outcome, Outcome::Acknowledged(_));
            let reported = report.send(Attempt {
                markers,
                after_drain,
                outcome,
            });
            if reported.is_err() || !acknowledged {
                return;
            }
        }
    })
}

#[actix_web::test]
async fn a_shutdown_under_fire_keeps_every_acknowledged_publish_and_refuses_later_ones_whole() {
    // Arrange: eight publishers firing batches, well under way.
    let app = spawn_app().await;
    let draining = Arc::new(AtomicBool::new(false));
    let (report, mut reports) = mpsc::unbounded_channel();
    let publishers: Vec<_> = (0..8)
        .map(|publisher| {
            spawn_publisher(
                publisher,
                app.base.clone(),
                app.publisher.clone(),
                draining.clone(),
                report.clone(),
            )
        })
        .collect();
    drop(report);
    let mut attempts = Vec::new();
    let acknowledged = |attempts: &[Attempt]| {
        attempts
            .iter()
            .filter(|a| matches!(a.outcome, Outcome::Acknowledged(_)))
            .count()
    };
    while acknowledged(&attempts) < 100 {
        let attempt = tokio::time::timeout(PATIENCE, reports.recv())
            .await
            .expect("publishes keep being answered")
            .expect("the publishers are still firing");
        attempts.push(attempt);
    }

    // Act: drain while they fire; one more publish once the drain is on;
    // then restart on the same file.
    app.handle.shutdown.trigger();
    draining.store(true, Ordering::Release);
    let probe_markers: Vec<String> = (0..BATCH).map(|k| format!("probe-{k}")).collect();
    let probe = attempt(&client(), &app.base, &app.publisher, &probe_markers).await;
    attempts.push(Attempt {
        markers: probe_markers,
        after_drain: true,
        outcome: probe,
    });
    while let Some(attempt) = tokio::time::timeout(PATIENCE, reports.recv())
        .await
        .expect("every publisher stops once refused")
    {
        attempts.push(attempt);
    }
    for publisher in publishers {
        publisher.await.expect("a publisher task does not panic");
    }
    let app = app.restart().await;
    let log = app.missed(&app.publisher, "since=0&limit=10000").await;

    // Assert
    assert_eq!((log.status, &log.body["has_more"]), (200, &json!(false)));
    let stored: HashMap<String, i64> = log.body["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|event| {
            let marker = event["payload"].as_str().expect("marker payload");
            (marker.to_owned(), event["id"].as_i64().expect("id"))
        })
        .collect();
    assert_eq!(
        stored.values().copied().max().unwrap_or(0),
        stored.len() as i64,
        "the log has no holes"
    );
    for Attempt {
        markers,
        after_drain,
        outcome,
    } in &attempts
    {
        let found: Vec<Option<i64>> = markers.iter().map(|m| stored.get(m).copied()).collect();
        match outcome {
            Outcome::Acknowledged(ids) => {
                assert!(
                    !after_drain,
                    "{markers:?} was acknowledged after the drain began"
                );
                let ids: Vec<Option<i64>> = ids.iter().copied().map(Some).collect();
                assert_eq!(
                    found, ids,
                    "acknowledged {markers:?} is in the log as answered"
                );
            }
            Outcome::Refused { status, error } => {
                assert_eq!(
                    (*status, error.as_str()),
                    (503, "shutting_down"),
                    "{markers:?} was refused as a drain refuses"
                );
                assert_eq!(
                    found, [None; BATCH],
                    "refused {markers:?} left nothing behind"
                );
            }
            Outcome::NoAnswer if *after_drain => {
                assert_eq!(
                    found, [None; BATCH],
                    "{markers:?}, sent while draining, left nothing behind"
                );
            }
            Outcome::NoAnswer => assert!(
                found.iter().all(Option::is_some) || found.iter().all(Option::is_none),
                "unanswered {markers:?} is in the log whole or not at all: {found:?}"
            ),
        }
    }
    assert!(acknowledged(&attempts) >= 100);
    assert!(
        attempts.iter().filter(|a| a.after_drain).count() >= 1,
        "at least the probe was sent while draining"
    );
}

/// One HTTP/1.1 exchange over a blocking socket, so the calling thread (and
/// whatever else it would run) does nothing else meanwhile.
fn blocking_exchange(base: &str, request: &str) -> String {
    use std::io::{Read, Write};
    let address = base.trim_start_matches("http://");
    let mut socket = std::net::TcpStream::connect(address).expect("connect");
    socket.set_read_timeout(Some(PATIENCE)).expect("timeout");
    socket.write_all(request.as_bytes()).expect("send");
    let mut answer = Vec::new();
    socket
        .read_to_end(&mut answer)
        .expect("an answer within the patience window");
    String::from_utf8_lossy(&answer).into_owned()
}

#[actix_web::test]
async fn a_publish_arriving_once_the_drain_has_begun_is_refused_whole() {
    let app = spawn_app().await;
    let body = json!([{"topic": "late", "type": "t"}, {"topic": "late", "type": "t"}]).to_string();
    let request = format!(
        "POST /events HTTP/1.1\r\nHost: pushlog\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        app.publisher,
        body.len()
    );
    assert_eq!(app.get("/readyz").await.status, 200, "the app is serving");

    app.handle.shutdown.trigger();
    // The app's own tasks (the one that stops the server, and the log writer)
    // run on this test's thread, so while it blocks here they cannot act on
    // the drain: the request meets a server, serving on its worker threads,
    // that has begun draining but not yet stopped listening.
    let answer = blocking_exchange(&app.base, &request);
    let app = app.restart().await;

    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains(r#""error":"shutting_down""#), "{answer}");
    assert_eq!(
        app.all_ids().await,
        Vec::<i64>::new(),
        "nothing of it was appended"
    );
}
