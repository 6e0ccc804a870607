//! Durability against `kill -9`: the real binary as a child process, killed
//! while publishes are in flight, restarted on the same file.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::json;

use crate::binary::Server;
use crate::helpers::{PATIENCE, SECRET, client, ids_of, read_reply};

#[actix_web::test]
async fn every_acknowledged_event_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("durable.db");
    let auth = pushlog::auth::Authenticator::from_secret(SECRET.as_bytes()).unwrap();
    let token = Arc::new(auth.mint("pub", &["publisher".into()], None, 600).unwrap());
    let mut server = Server::start(&db, &[]).await;

    // 16 publishers fire until the kill; every 201 is recorded.
    let acknowledged = Arc::new(std::sync::Mutex::new(Vec::<(i64, String)>::new()));
    let mut publishers = Vec::new();
    for publisher in 0..16 {
        let (base, token, acknowledged) =
            (server.base.clone(), token.clone(), acknowledged.clone());
        publishers.push(actix_web::rt::spawn(async move {
            let client = client();
            for i in 0.. {
                let marker = format!("{publisher}-{i}");
                let sent = client
                    .post(format!("{base}/events"))
                    .bearer_auth(token.as_str())
                    .send_json(&json!({"topic": "durable", "type": "t", "payload": marker}))
                    .await;
                let Ok(response) = sent else { return };
                let reply = read_reply(response).await;
                if reply.status != 201 {
                    return;
                }
                let id = reply.body["events"][0]["id"].as_i64().unwrap();
                acknowledged.lock().unwrap().push((id, marker));
            }
        }));
    }
    // Kill once a good number of events is acknowledged, mid-stream.
    while acknowledged.lock().unwrap().len() < 500 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill();
    for publisher in publishers {
        let _ = publisher.await;
    }

    let mut restarted = Server::start(&db, &[]).await;
    let token = auth.mint("reader", &[], None, 600).unwrap();
    let mut stored = Vec::new();
    let mut since = 0;
    loop {
        let page = read_reply(
            client()
                .get(format!(
                    "{}/events/missed?since={since}&limit=10000",
                    restarted.base
                ))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap(),
        )
        .await;
        for event in page.body["events"].as_array().unwrap() {
            stored.push((
                event["id"].as_i64().unwrap(),
                event["payload"].as_str().unwrap().to_owned(),
            ));
        }
        since = page.body["next_since"].as_i64().unwrap();
        if !page.body["has_more"].as_bool().unwrap() {
            break;
        }
    }
    let next = read_reply(
        client()
            .post(format!("{}/events", restarted.base))
            .bearer_auth(auth.mint("pub", &["publisher".into()], None, 60).unwrap())
            .send_json(&json!({"topic": "durable", "type": "after-restart"}))
            .await
            .unwrap(),
    )
    .await;
    restarted.kill();

    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() >= 500);
    let stored_set: std::collections::HashMap<i64, String> = stored.iter().cloned().collect();
    for (id, marker) in &acknowledged {
        assert_eq!(
            stored_set.get(id),
            Some(marker),
            "acknowledged event {id} is in the log as sent"
        );
    }
    let ids: Vec<i64> = stored.iter().map(|(id, _)| *id).collect();
    assert_eq!(
        ids,
        (1..=ids.len() as i64).collect::<Vec<_>>(),
        "the log has no holes"
    );
    let after = ids_of(&next.body["events"])[0];
    assert_eq!(
        after,
        ids.len() as i64 + 1,
        "ids continue after the restart"
    );
}

/// Events the retrying publishers send in all, each under its own key.
const RETRIED_EVENTS: usize = 10_000;
/// Publishers sending them at once, each its share one request at a time.
const RETRYING_PUBLISHERS: usize = 8;
/// Acknowledgements to wait for before the `kill -9`: well inside the run,
/// so that every publisher has a publish in flight when it lands.
const KILL_AFTER_ACKS: usize = 3_000;
/// How long a publisher waits after a failed attempt before trying again,
/// unless the server is back sooner (it is told at once).
const RETRY_BACKOFF: Duration = Duration::from_millis(50);
/// Attempts one event may take before the test gives up on it.
const MAX_ATTEMPTS: usize = 200;

/// What a publish attempt came back with, when it was acknowledged.
struct Acknowledged {
    status: u16,
    id: i64,
}

/// One publish of `key` (its payload is the key, since readers are never
/// shown keys). Anything but a 2xx, a connection cut by the kill included,
/// is an error the publisher retries.
async fn publish_keyed(
    client: &awc::Client,
    base: &str,
    token: &str,
    key: &str,
) -> Result<Acknowledged, String> {
    let sent = client
        .post(format!("{base}/events"))
        .bearer_auth(token)
        .send_json(&json!({"topic": "durable", "type": "t", "key": key, "payload": key}));
    let mut response = tokio::time::timeout(PATIENCE, sent)
        .await
        .map_err(|_| "no answer within the patience window".to_owned())?
        .map_err(|error| format!("request failed: {error}"))?;
    let status = response.status().as_u16();
    let body = tokio::time::timeout(PATIENCE, response.body())
        .await
        .map_err(|_| "no body within the patience window".to_owned())?
        .map_err(|error| format!("body failed: {error}"))?;
    if !(200..300).contains(&status) {
        return Err(format!("{status} {}", String::from_utf8_lossy(&body)));
    }
    let body: serde_json::Value =
        serde_json::from_slice(&body).map_err(|error| format!("body is not JSON: {error}"))?;
    let id = body["events"][0]["id"]
        .as_i64()
        .ok_or_else(|| format!("no id in {body}"))?;
    Ok(Acknowledged { status, id })
}

/// Every event of the log, as `(id, payload)`, paging `/events/missed`.
async fn read_whole_log(base: &str, token: &str) -> Vec<(i64, String)> {
    let mut stored = Vec::new();
    let mut since = 0;
    loop {
        let page = read_reply(
            client()
                .get(format!("{base}/events/missed?since={since}&limit=10000"))
                .bearer_auth(token)
                .send()
                .await
                .expect("a page of the log"),
        )
        .await;
        assert_eq!(page.status, 200, "{}", page.body);
        for event in page.body["events"].as_array().expect("events") {
            stored.push((
                event["id"].as_i64().expect("an id"),
                event["payload"].as_str().expect("a key").to_owned(),
            ));
        }
        since = page.body["next_since"].as_i64().expect("next_since");
        if !page.body["has_more"].as_bool().expect("has_more") {
            return stored;
        }
    }
}

#[actix_web::test]
async fn publishers_retrying_with_idempotency_keys_through_kill_9_land_every_event_exactly_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("durable.db");
    let auth = pushlog::auth::Authenticator::from_secret(SECRET.as_bytes()).expect("secret");
    let token = Arc::new(
        auth.mint("pub", &["publisher".into()], None, 600)
            .expect("mint"),
    );
    let mut server = Server::start(&db, &[]).await;
    // Where the server is now: a publisher that fails waits for a change
    // here (or its backoff), then sends the same event again.
    let (restarted, base) = tokio::sync::watch::channel(server.base.clone());
    let acks = Arc::new(AtomicUsize::new(0));
    let enough_acks = Arc::new(tokio::sync::Notify::new());

    let mut publishers = Vec::new();
    for publisher in 0..RETRYING_PUBLISHERS {
        let (mut base, token) = (base.clone(), token.clone());
        let (acks, enough_acks) = (acks.clone(), enough_acks.clone());
        publishers.push(actix_web::rt::spawn(async move {
            let client = client();
            let mut acknowledged = Vec::new();
            for n in (publisher..RETRIED_EVENTS).step_by(RETRYING_PUBLISHERS) {
                let key = format!("key-{n}");
                let mut attempts = 0;
                let ack = loop {
                    attempts += 1;
                    let to = base.borrow_and_update().clone();
                    match publish_keyed(&client, &to, &token, &key).await {
                        Ok(ack) => break ack,
                        Err(error) => {
                            assert!(
                                attempts < MAX_ATTEMPTS,
                                "{key}: {attempts} attempts, the last: {error}"
                            );
                            let _ = tokio::time::timeout(RETRY_BACKOFF, base.changed()).await;
                        }
                    }
                };
                // A key is found in the log (200) only by a retry of a
                // publish whose answer the kill cut off.
                assert!(
                    ack.status == 201 || attempts > 1,
                    "{key}: {} on its first attempt",
                    ack.status
                );
                if acks.fetch_add(1, Ordering::Relaxed) + 1 == KILL_AFTER_ACKS {
                    enough_acks.notify_one();
                }
                acknowledged.push((key, ack));
            }
            acknowledged
        }));
    }

    enough_acks.notified().await;
    server.kill();
    let server = Server::start(&db, &[]).await;
    restarted.send_replace(server.base.clone());
    let mut acknowledged = HashMap::new();
    let mut retries_found_committed = 0;
    for publisher in publishers {
        for (key, ack) in publisher.await.expect("a publisher finishes") {
            retries_found_committed += usize::from(ack.status == 200);
            acknowledged.insert(key, ack.id);
        }
    }
    assert_eq!(
        acknowledged.len(),
        RETRIED_EVENTS,
        "every event acknowledged"
    );

    let reader = auth.mint("reader", &[], None, 600).expect("mint");
    let stored = read_whole_log(&server.base, &reader).await;
    let ids: Vec<i64> = stored.iter().map(|(id, _)| *id).collect();
    assert!(
        ids.windows(2).all(|pair| pair[0] < pair[1]),
        "ids strictly increase"
    );
    let mut stored_ids: HashMap<&str, Vec<i64>> = HashMap::new();
    for (id, key) in &stored {
        stored_ids.entry(key.as_str()).or_default().push(*id);
    }
    for (key, id) in &acknowledged {
        assert_eq!(
            stored_ids.get(key.as_str()),
            Some(&vec![*id]),
            "{key} is in the log exactly once, under the id it was acknowledged with"
        );
    }
    assert_eq!(
        stored.len(),
        RETRIED_EVENTS,
        "nothing in the log but the acknowledged events ({retries_found_committed} retries found theirs committed)"
    );
}
