//! The test harness: a real pushlog on a random port with its own temporary
//! SQLite file, and one helper per endpoint so each test reads as a script.

use std::net::TcpListener;
use std::time::Duration;

use awc::Client;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use pushlog::auth::Authenticator;
use pushlog::config::Config;
use pushlog::startup::{AppHandle, Application};
use serde_json::{Value, json};

pub const SECRET: &str = "test-secret-test-secret-test-secret-0123";
/// How long any awaited push may take before the test fails: long enough for
/// a loaded CI box, short enough that a missing event fails fast.
pub const PATIENCE: Duration = Duration::from_secs(10);

pub struct TestApp {
    pub base: String,
    pub handle: AppHandle,
    pub client: Client,
    pub auth: Authenticator,
    pub publisher: String,
    pub reader: String,
    config: Config,
    running: tokio::task::JoinHandle<std::io::Result<()>>,
    db_dir: tempfile::TempDir,
}

pub fn test_config(db_path: &std::path::Path) -> Config {
    let mut config = Config::defaults();
    config.addr = "127.0.0.1:0".into();
    config.database_url = format!("sqlite://{}", db_path.display());
    config.jwt_secret = Some(SECRET.into());
    config
}

/// A port nothing listens on right now, for a child process to bind.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("local address")
        .port()
}

pub fn client() -> Client {
    Client::builder()
        .connector(awc::Connector::new().limit(0))
        .disable_timeout()
        .finish()
}

/// Starts an app with the defaults, adjusted by `tweak`.
pub async fn spawn_app_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
    let db_dir = tempfile::tempdir().expect("temp dir");
    let mut config = test_config(&db_dir.path().join("pushlog.db"));
    tweak(&mut config);
    start(config, db_dir).await
}

/// Starts an app on `config`, whose database lives in `db_dir`.
async fn start(config: Config, db_dir: tempfile::TempDir) -> TestApp {
    // Tokens are minted with the test secret; the server verifies with
    // whatever key the (tweaked) configuration names.
    let auth = Authenticator::from_secret(SECRET.as_bytes()).expect("secret");
    let (verifier, _) = pushlog::startup::authenticator(&config).expect("key config");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let app = Application::build_on(listener, &config, verifier)
        .await
        .expect("app builds");
    let base = format!("http://127.0.0.1:{}", app.port());
    let handle = app.handle();
    let running = tokio::spawn(app.run_until_stopped());
    let publisher = auth
        .mint("pub", &["publisher".into()], None, 3600)
        .expect("mint");
    let reader = auth.mint("alice", &[], None, 3600).expect("mint");
    TestApp {
        base,
        handle,
        client: client(),
        auth,
        publisher,
        reader,
        config,
        running,
        db_dir,
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// A status and a parsed JSON body (or `Null`).
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

impl Reply {
    pub fn error_code(&self) -> &str {
        self.body["error"].as_str().unwrap_or("<no error code>")
    }
}

pub async fn read_reply(
    mut response: awc::ClientResponse<
        impl futures_util::Stream<Item = Result<Bytes, awc::error::PayloadError>> + Unpin,
    >,
) -> Reply {
    let status = response.status().as_u16();
    let bytes = response
        .body()
        .limit(256 * 1024 * 1024)
        .await
        .expect("body");
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Reply { status, body }
}

impl TestApp {
    /// The configuration the app runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Shuts the app down, waits until it has stopped completely (server,
    /// writer, database closed), then starts a fresh one on the same
    /// database file and configuration, as an operator's restart would.
    pub async fn restart(self) -> TestApp {
        self.handle.shutdown.trigger();
        tokio::time::timeout(PATIENCE, self.running)
            .await
            .expect("the app stops within the patience window")
            .expect("the app's task does not panic")
            .expect("the app stops cleanly");
        start(self.config, self.db_dir).await
    }

    pub fn token(&self, user: &str, roles: &[&str], topics: Option<&[&str]>) -> String {
        let roles: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
        let topics: Option<Vec<String>> = topics.map(|t| t.iter().map(|p| p.to_string()).collect());
        self.auth
            .mint(user, &roles, topics.as_deref(), 3600)
            .expect("mint")
    }

    /// Publishes a JSON body as the publisher.
    pub async fn publish(&self, body: &Value) -> Reply {
        self.publish_raw(&self.publisher, "application/json", body.to_string())
            .await
    }

    pub async fn publish_raw(
        &self,
        token: &str,
        content_type: &str,
        body: impl Into<Bytes>,
    ) -> Reply {
        let response = self
            .client
            .post(format!("{}/events", self.base))
            .bearer_auth(token)
            .insert_header(("Content-Type", content_type))
            .send_body(body.into())
            .await
            .expect("publish request");
        read_reply(response).await
    }

    /// Publishes `count` events on `topic` one request each; returns their ids.
    pub async fn publish_many(&self, topic: &str, count: usize) -> Vec<i64> {
        let mut ids = Vec::with_capacity(count);
        for i in 0..count {
            let reply = self
                .publish(&json!({"topic": topic, "type": "test:event", "payload": {"n": i}}))
                .await;
            assert_eq!(reply.status, 201, "publish failed: {}", reply.body);
            ids.push(reply.body["events"][0]["id"].as_i64().expect("id"));
        }
        ids
    }

    pub async fn missed(&self, token: &str, query: &str) -> Reply {
        let response = self
            .client
            .get(format!("{}/events/missed?{query}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .expect("missed request");
        read_reply(response).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("request");
        read_reply(response).await
    }

    /// A GET with `token` as the bearer.
    pub async fn get_as(&self, token: &str, path: &str) -> Reply {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .expect("request");
        read_reply(response).await
    }

    /// A GET whose body is text: status, `Content-Type` and body.
    pub async fn get_text(&self, path: &str) -> (u16, String, String) {
        let mut response = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("request");
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let body = response.body().await.expect("body");
        let body = String::from_utf8(body.to_vec()).expect("UTF-8 body");
        (response.status().as_u16(), content_type, body)
    }

    /// The ids of every event in the log, as a publisher reads them.
    pub async fn all_ids(&self) -> Vec<i64> {
        let reply = self.missed(&self.publisher, "since=0&limit=10000").await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        ids_of(&reply.body["events"])
    }

    /// Opens an SSE stream; `query` is appended to `/events/stream?`.
    pub async fn stream(&self, token: &str, query: &str, last_event_id: Option<i64>) -> SseStream {
        let mut request = self
            .client
            .get(format!("{}/events/stream?{query}", self.base))
            .bearer_auth(token);
        if let Some(id) = last_event_id {
            request = request.insert_header(("Last-Event-ID", id.to_string()));
        }
        let response = request.send().await.expect("stream request");
        SseStream::new(response)
    }
}

pub fn ids_of(events: &Value) -> Vec<i64> {
    events
        .as_array()
        .expect("events array")
        .iter()
        .map(|e| e["id"].as_i64().expect("id"))
        .collect()
}

/// One SSE message.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    Event { id: i64, data: Value },
    Reset(Value),
    Comment(String),
    Retry(u64),
}

type Body =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<Bytes, awc::error::PayloadError>>>>;

pub struct SseStream {
    pub status: u16,
    pub content_type: String,
    pub headers: awc::http::header::HeaderMap,
    body: Body,
    buffer: BytesMut,
    frames: std::collections::VecDeque<Frame>,
    ended: bool,
}

impl SseStream {
    fn new(
        response: awc::ClientResponse<
            impl futures_util::Stream<Item = Result<Bytes, awc::error::PayloadError>> + Unpin + 'static,
        >,
    ) -> SseStream {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let content_type = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        SseStream {
            status,
            content_type,
            headers,
            body: Box::pin(response),
            buffer: BytesMut::new(),
            frames: Default::default(),
            ended: false,
        }
    }

    /// The next frame, or `None` when the server ended the response.
    /// Panics after `PATIENCE` without one.
    pub async fn next_frame(&mut self) -> Option<Frame> {
        tokio::time::timeout(PATIENCE, self.next_frame_inner())
            .await
            .expect("no SSE frame within the patience window")
    }

    async fn next_frame_inner(&mut self) -> Option<Frame> {
        loop {
            if let Some(frame) = self.frames.pop_front() {
                return Some(frame);
            }
            if self.ended {
                return None;
            }
            match self.body.next().await {
                Some(Ok(chunk)) => {
                    self.buffer.extend_from_slice(&chunk);
                    self.parse();
                }
                Some(Err(_)) | None => self.ended = true,
            }
        }
    }

    fn parse(&mut self) {
        while let Some(end) = find(&self.buffer, b"\n\n") {
            let block = self.buffer.split_to(end + 2);
            let text = String::from_utf8_lossy(&block[..end]).into_owned();
            let (mut id, mut event, mut data) = (None, None, None);
            for line in text.lines() {
                if let Some(comment) = line.strip_prefix(':') {
                    self.frames
                        .push_back(Frame::Comment(comment.trim().to_owned()));
                } else if let Some(v) = line.strip_prefix("retry: ") {
                    self.frames
                        .push_back(Frame::Retry(v.parse().expect("retry ms")));
                } else if let Some(v) = line.strip_prefix("id: ") {
                    id = Some(v.parse::<i64>().expect("numeric id"));
                } else if let Some(v) = line.strip_prefix("event: ") {
                    event = Some(v.to_owned());
                } else if let Some(v) = line.strip_prefix("data: ") {
                    assert!(data.is_none(), "one data line per event");
                    data = Some(serde_json::from_str::<Value>(v).expect("data is JSON"));
                }
            }
            match (event.as_deref(), id, data) {
                (Some("reset"), _, Some(data)) => self.frames.push_back(Frame::Reset(data)),
                (None, Some(id), Some(data)) => {
                    assert_eq!(data["id"].as_i64(), Some(id), "id line matches the event");
                    self.frames.push_back(Frame::Event { id, data });
                }
                (None, None, None) => {}
                other => panic!("unexpected SSE block {other:?}"),
            }
        }
    }

    /// The next event, skipping comments; panics on a reset or the end.
    pub async fn next_event(&mut self) -> (i64, Value) {
        loop {
            match self.next_frame().await {
                Some(Frame::Event { id, data }) => return (id, data),
                Some(Frame::Comment(_) | Frame::Retry(_)) => continue,
                other => panic!("expected an event, got {other:?}"),
            }
        }
    }

    /// Event ids until (and including) `last`.
    pub async fn ids_through(&mut self, last: i64) -> Vec<i64> {
        let mut ids = Vec::new();
        loop {
            let (id, _) = self.next_event().await;
            ids.push(id);
            if id >= last {
                return ids;
            }
        }
    }

    /// The reset frame's data, skipping comments; panics on anything else.
    pub async fn expect_reset(&mut self) -> Value {
        loop {
            match self.next_frame().await {
                Some(Frame::Reset(data)) => return data,
                Some(Frame::Comment(_) | Frame::Retry(_)) => continue,
                other => panic!("expected a reset, got {other:?}"),
            }
        }
    }

    /// Waits until the stream is open (its opening comment arrived).
    pub async fn opened(&mut self) {
        loop {
            match self.next_frame().await {
                Some(Frame::Comment(c)) if c.contains("open") => return,
                Some(Frame::Retry(_)) => continue,
                other => panic!("expected the opening comment, got {other:?}"),
            }
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// `(first..=last)` as a Vec, for comparing id sequences.
pub fn range(first: i64, last: i64) -> Vec<i64> {
    (first..=last).collect()
}

pub fn event(topic: &str) -> Value {
    json!({"topic": topic, "type": "test:event"})
}

/// For each scenario, a module of two tests: `sqlite` (a fresh SQLite app)
/// and `postgres` (a node on a fresh PostgreSQL database, kept for the
/// whole test), so a failure reads `<file>::<scenario>::<backend>`.
macro_rules! on_both_backends {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            use crate::helpers::spawn_app;
            use crate::postgres::{TestDatabase, spawn_node};

            #[actix_web::test]
            async fn sqlite() {
                super::$scenario(spawn_app().await).await;
            }

            #[actix_web::test]
            async fn postgres() {
                let Some(db) = TestDatabase::create(stringify!($scenario)).await else {
                    return;
                };
                super::$scenario(spawn_node(&db.url).await).await;
            }
        }
    )*};
}
