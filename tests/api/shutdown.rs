//! Graceful shutdown: open streams end cleanly, nothing acknowledged is lost.

use crate::helpers::spawn_app;

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
