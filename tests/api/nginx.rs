//! pushlog behind nginx configured by `deploy/nginx/pushlog.conf.template`:
//! what a deployment behind a reverse proxy depends on, proved through a
//! real nginx (Debian's). Without nginx these tests fail under `CI=true`
//! and otherwise say, visibly, that they were skipped.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{PATIENCE, TestApp, client, event, free_port, spawn_app_with};

/// The read timeout the test's nginx gives a silent stream; the app's
/// heartbeat and ping intervals are shorter.
const READ_TIMEOUT_SECS: u64 = 3;

/// An nginx child process in front of one app, stopped however the test
/// ends.
struct Nginx {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn nginx_binary() -> Option<String> {
    ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|path| std::path::Path::new(path).exists())
        .map(str::to_owned)
}

impl Nginx {
    /// nginx proxying to `app`; `None` (after saying so) without nginx
    /// outside CI.
    async fn in_front_of(app: &TestApp, test: &str) -> Option<Nginx> {
        let Some(nginx) = nginx_binary() else {
            if std::env::var("CI").is_ok_and(|ci| ci == "true") {
                panic!("{test}: nginx is required in CI (apt-get install nginx)");
            }
            eprintln!("SKIPPED {test}: nginx is not installed");
            return None;
        };
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("tmp")).expect("temp dirs");
        let port = free_port();
        let upstream = app.base.trim_start_matches("http://").to_owned();
        let rendered = Command::new("bash")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/deploy/nginx/render.sh"
            ))
            .arg(dir.path())
            .arg(format!("127.0.0.1:{port}"))
            .arg(format!("{READ_TIMEOUT_SECS}s"))
            .arg(&upstream)
            .output()
            .expect("render the nginx configuration");
        assert!(rendered.status.success(), "{rendered:?}");
        let conf = dir.path().join("nginx.conf");
        std::fs::write(&conf, &rendered.stdout).expect("write the configuration");
        let child = Command::new(nginx)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf)
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("nginx starts");
        let proxy = Nginx {
            child,
            base: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        };
        proxy.until_it_answers().await;
        Some(proxy)
    }

    /// Polls `/healthz` through nginx: nginx says nothing else when ready.
    async fn until_it_answers(&self) {
        let client = client();
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            if let Ok(response) = client.get(format!("{}/healthz", self.base)).send().await
                && response.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("nginx did not answer within the patience window");
    }
}

/// An app whose clients all go through nginx (`app.base` is nginx's).
async fn app_behind_nginx(test: &str) -> Option<(TestApp, Nginx)> {
    let mut app = spawn_app_with(|c| {
        c.heartbeat_secs = 1;
        c.ws_ping_secs = 1;
    })
    .await;
    let nginx = Nginx::in_front_of(&app, test).await?;
    app.base = nginx.base.clone();
    Some((app, nginx))
}

#[actix_web::test]
async fn an_sse_event_comes_through_nginx_as_it_is_published() {
    let Some((app, _nginx)) = app_behind_nginx("sse_through_nginx").await else {
        return;
    };
    let mut stream = app.stream(&app.reader, "topics=t", None).await;
    assert_eq!(stream.status, 200);
    stream.opened().await;
    let published_at = Instant::now();
    let id = app.publish(&event("t")).await.body["events"][0]["id"]
        .as_i64()
        .expect("an id");
    // A buffering proxy would hold this small event until its buffer
    // filled: it would not come at all.
    assert_eq!(stream.next_event().await.0, id);
    eprintln!(
        "an SSE event through nginx: {} ms from publish to receipt",
        published_at.elapsed().as_millis()
    );
}

#[actix_web::test]
async fn an_idle_stream_outlives_nginx_s_read_timeout_thanks_to_heartbeats() {
    let Some((app, _nginx)) = app_behind_nginx("idle_through_nginx").await else {
        return;
    };
    let mut stream = app.stream(&app.reader, "topics=t", None).await;
    stream.opened().await;
    let mut socket = app.ws(&app.reader).await;
    socket.expect("welcome").await;
    socket.subscribe(&["t"], None, "s").await;
    socket.expect("caught_up").await;

    // Nothing published for longer than nginx lets a silent stream live:
    // only heartbeats (SSE comments, WebSocket pings) cross it. The
    // WebSocket client reads meanwhile, answering pings as a browser does.
    let idle = Duration::from_secs(READ_TIMEOUT_SECS + 2);
    let heard = tokio::time::timeout(idle, socket.next()).await;
    assert!(heard.is_err(), "nothing but pings while idle: {heard:?}");

    let id = app.publish(&event("t")).await.body["events"][0]["id"]
        .as_i64()
        .expect("an id");
    assert_eq!(
        stream.next_event().await.0,
        id,
        "the SSE stream is still open"
    );
    assert_eq!(
        socket.next_event_id().await,
        id,
        "the WebSocket is still open"
    );
    assert!(socket.pings_seen > 0, "pings crossed the proxy");
}

#[actix_web::test]
async fn a_websocket_and_a_last_event_id_resume_work_through_nginx() {
    let Some((app, _nginx)) = app_behind_nginx("resume_through_nginx").await else {
        return;
    };
    let ids = app.publish_many("t", 5).await;

    let mut socket = app.ws(&app.reader).await;
    socket.expect("welcome").await;
    socket.subscribe(&["t"], Some(ids[1]), "r").await;
    assert_eq!(socket.ids_through(ids[4]).await, ids[2..].to_vec());

    let mut stream = app.stream(&app.reader, "topics=t", Some(ids[2])).await;
    assert_eq!(stream.ids_through(ids[4]).await, ids[3..].to_vec());

    let published = app
        .publish(&json!({"topic": "t", "type": "through-nginx"}))
        .await;
    assert_eq!(published.status, 201, "{}", published.body);
    let id = published.body["events"][0]["id"].as_i64().expect("an id");
    assert_eq!(socket.next_event_id().await, id);
    assert_eq!(stream.next_event().await.0, id);
}
