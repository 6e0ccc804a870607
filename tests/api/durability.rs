//! Durability against `kill -9`: the real binary as a child process, killed
//! while publishes are in flight, restarted on the same file.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::binary::Server;
use crate::helpers::{SECRET, client, ids_of, read_reply};

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
