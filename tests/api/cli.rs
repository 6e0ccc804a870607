//! The binary's own conveniences: `pushlog token`, and development mode when
//! no key is configured.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Output, Stdio};
use std::time::Instant;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::helpers::{PATIENCE, SECRET, client, event, free_port, read_reply, spawn_app};

/// The pushlog binary, with no key inherited from the test's environment.
fn pushlog() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pushlog"));
    command
        .env_remove("PUSHLOG_JWT_SECRET")
        .env_remove("PUSHLOG_JWT_PUBLIC_KEY")
        .env("NO_COLOR", "1");
    command
}

/// A server child process, killed however the test ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What a run that must end by itself (a configuration it refuses) wrote:
/// a server that starts instead is killed after `PATIENCE`, and the test
/// fails saying so rather than hanging.
fn refused(command: &mut Command) -> Output {
    let mut child = Running(
        command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the pushlog binary starts"),
    );
    let started = Instant::now();
    while child.0.try_wait().expect("wait for pushlog").is_none() {
        assert!(
            started.elapsed() < PATIENCE,
            "pushlog kept running on a configuration it should refuse"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let mut output = Output {
        status: child.0.wait().expect("pushlog's exit status"),
        stdout: Vec::new(),
        stderr: Vec::new(),
    };
    let mut stdout = child.0.stdout.take().expect("piped stdout");
    let mut stderr = child.0.stderr.take().expect("piped stderr");
    stdout.read_to_end(&mut output.stdout).expect("read stdout");
    stderr.read_to_end(&mut output.stderr).expect("read stderr");
    output
}

/// Everything a run wrote, stdout then stderr.
fn everything(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Every line the child writes, stdout and stderr together, as it comes.
fn lines_of(child: &mut Child) -> mpsc::UnboundedReceiver<String> {
    fn forward(pipe: impl Read + Send + 'static, lines: mpsc::UnboundedSender<String>) {
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { return };
                if lines.send(line).is_err() {
                    return;
                }
            }
        });
    }
    let (sender, receiver) = mpsc::unbounded_channel();
    forward(child.stdout.take().expect("piped stdout"), sender.clone());
    forward(child.stderr.take().expect("piped stderr"), sender);
    receiver
}

#[actix_web::test]
async fn the_token_command_mints_a_token_the_server_accepts_for_publishing() {
    let minted = pushlog()
        .env("PUSHLOG_JWT_SECRET", SECRET)
        .args([
            "token",
            "--sub",
            "alice",
            "--roles",
            "publisher",
            "--ttl",
            "1h",
        ])
        .output()
        .expect("the binary runs");
    let minted_at = chrono::Utc::now().timestamp();
    let app = spawn_app().await; // verifies with the same secret
    assert!(
        minted.status.success(),
        "{}",
        String::from_utf8_lossy(&minted.stderr)
    );
    let token = String::from_utf8(minted.stdout).unwrap().trim().to_owned();

    let published = app
        .publish_raw(&token, "application/json", event("t").to_string())
        .await;
    let claims: Value = jsonwebtoken::decode(
        &token,
        &DecodingKey::from_secret(SECRET.as_bytes()),
        &Validation::new(Algorithm::HS256),
    )
    .expect("an HS256 token signed with the secret")
    .claims;

    assert_eq!(published.status, 201, "{}", published.body);
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["roles"], json!(["publisher"]));
    let exp = claims["exp"].as_i64().expect("numeric exp");
    assert!(
        (exp - (minted_at + 3600)).abs() <= 60,
        "exp {exp} is not an hour after {minted_at}"
    );
}

#[test]
fn the_token_command_refuses_to_sign_with_a_throwaway_secret() {
    let minted = pushlog()
        .args(["token", "--sub", "alice"])
        .output()
        .expect("the binary runs");

    let stderr = String::from_utf8_lossy(&minted.stderr);
    assert!(!minted.status.success());
    assert!(minted.stdout.is_empty(), "no token is printed");
    assert!(stderr.contains("PUSHLOG_JWT_SECRET"), "{stderr}");
}

#[actix_web::test]
async fn without_a_key_the_server_prints_development_tokens_that_work() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut server = Running(
        pushlog()
            .env("PUSHLOG_ADDR", format!("127.0.0.1:{port}"))
            .env(
                "PUSHLOG_DATABASE_URL",
                format!("sqlite://{}", dir.path().join("dev.db").display()),
            )
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the pushlog binary starts"),
    );
    let mut output = lines_of(&mut server.0);

    // The warning is logged and the tokens are printed, then the server logs
    // that it listens; the two pipes are read separately, so wait for all of
    // them in any order.
    let (mut publisher, mut reader, mut dashboard) = (None, None, None);
    let (mut listening, mut warned) = (false, false);
    let mut seen = Vec::new();
    while publisher.is_none() || reader.is_none() || dashboard.is_none() || !listening || !warned {
        let line = tokio::time::timeout(PATIENCE, output.recv())
            .await
            .unwrap_or_else(|_| {
                panic!("no warning, tokens and listening line yet; so far: {seen:#?}")
            })
            .unwrap_or_else(|| panic!("pushlog exited; it wrote: {seen:#?}"));
        let words = line.trim();
        if let Some(token) = words.strip_prefix("publisher:") {
            publisher = Some(token.trim().to_owned());
        } else if let Some(token) = words.strip_prefix("reader:") {
            reader = Some(token.trim().to_owned());
        } else if let Some(link) = words.strip_prefix("dashboard:") {
            dashboard = Some(link.trim().to_owned());
        }
        listening |= line.contains("pushlog listening");
        warned |= line.contains("DEVELOPMENT MODE");
        seen.push(line);
    }
    let (publisher, reader, dashboard) = (publisher.unwrap(), reader.unwrap(), dashboard.unwrap());

    let published = read_reply(
        client()
            .post(format!("{base}/events"))
            .bearer_auth(&publisher)
            .send_json(&event("dev"))
            .await
            .expect("publish request"),
    )
    .await;
    let missed = read_reply(
        client()
            .get(format!("{base}/events/missed?since=0"))
            .bearer_auth(&reader)
            .send()
            .await
            .expect("missed request"),
    )
    .await;
    let refused = read_reply(
        client()
            .post(format!("{base}/events"))
            .bearer_auth(&reader)
            .send_json(&event("dev"))
            .await
            .expect("publish request"),
    )
    .await;

    assert_eq!(published.status, 201, "{}", published.body);
    assert_eq!(missed.status, 200, "{}", missed.body);
    assert_eq!(missed.body["events"][0]["topic"], "dev");
    assert_eq!(
        (refused.status, refused.error_code()),
        (403, "forbidden"),
        "the reader token reads but does not publish"
    );
    assert_eq!(
        dashboard,
        format!("http://localhost:{port}/?token={reader}#publisher={publisher}"),
        "the dashboard link reads with the reader token and carries the publisher token, \
         in the fragment that no request sends, for the page's publish form"
    );
}

#[test]
fn a_bad_value_in_the_environment_is_named_by_its_variable() {
    let run = refused(pushlog().env("PUSHLOG_RETENTION", "banana"));

    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "a usage error: {stderr}");
    assert!(stderr.contains("PUSHLOG_RETENTION"), "{stderr}");
    assert!(stderr.contains("\"banana\""), "the bad value: {stderr}");
    assert!(
        stderr.contains("an age") && stderr.contains("a count") && stderr.contains("forever"),
        "what is accepted: {stderr}"
    );
    assert!(
        !stderr.contains("--retention"),
        "not a flag that was never typed: {stderr}"
    );
}

#[test]
fn a_bad_value_on_the_command_line_is_named_by_its_flag() {
    let run = refused(pushlog().args(["--retention", "banana"]));

    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "a usage error: {stderr}");
    assert!(stderr.contains("--retention"), "{stderr}");
    assert!(stderr.contains("\"banana\""), "the bad value: {stderr}");
    assert!(!stderr.contains("PUSHLOG_RETENTION"), "{stderr}");
}

#[test]
fn a_flag_wins_over_the_environment_and_is_the_one_named() {
    let run = refused(
        pushlog()
            .env("PUSHLOG_RETENTION", "7d")
            .args(["--retention", "7y"]),
    );

    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("\"7y\" for --retention"), "{stderr}");
}

#[test]
fn a_database_that_cannot_be_opened_is_named_before_any_development_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-dir");
    let file = missing.join("pushlog.db");

    let run = refused(
        pushlog()
            .env("PUSHLOG_ADDR", format!("127.0.0.1:{}", free_port()))
            .env(
                "PUSHLOG_DATABASE_URL",
                format!("sqlite://{}", file.display()),
            ),
    );

    let output = everything(&run);
    assert!(!run.status.success(), "{output}");
    assert!(
        output.contains(&format!(
            "cannot open the SQLite database {}",
            file.display()
        )),
        "the file is named: {output}"
    );
    assert!(
        output.contains(&format!(
            "the directory {} must exist and be writable",
            missing.display()
        )),
        "what to check: {output}"
    );
    assert!(output.contains("PUSHLOG_DATABASE_URL"), "{output}");
    assert!(
        !output.contains("development tokens") && !output.contains("DEVELOPMENT MODE"),
        "no banner for a server that never ran: {output}"
    );
}

#[test]
fn a_relative_database_path_is_named_from_the_working_directory() {
    let dir = tempfile::tempdir().unwrap();

    let run = refused(
        pushlog()
            .current_dir(dir.path())
            .env("PUSHLOG_ADDR", format!("127.0.0.1:{}", free_port()))
            .env("PUSHLOG_DATABASE_URL", "sqlite://data/pushlog.db"),
    );

    let output = everything(&run);
    let expected = dir.path().join("data").join("pushlog.db");
    assert!(
        output.contains(&format!(
            "cannot open the SQLite database {}",
            expected.display()
        )),
        "{output}"
    );
}

#[test]
fn an_unsupported_database_url_is_reported_before_any_development_tokens() {
    let run = refused(
        pushlog()
            .env("PUSHLOG_ADDR", format!("127.0.0.1:{}", free_port()))
            .env("PUSHLOG_DATABASE_URL", "mysql://localhost/pushlog"),
    );

    let output = everything(&run);
    assert!(!run.status.success(), "{output}");
    assert!(output.contains("unsupported database URL"), "{output}");
    assert!(!output.contains("development tokens"), "{output}");
}

#[test]
fn an_address_that_cannot_be_bound_is_reported_before_any_development_tokens() {
    let dir = tempfile::tempdir().unwrap();

    let run = refused(
        pushlog()
            .env(
                "PUSHLOG_DATABASE_URL",
                format!("sqlite://{}", dir.path().join("dev.db").display()),
            )
            .env("PUSHLOG_ADDR", "not-an-address"),
    );

    let output = everything(&run);
    assert!(!run.status.success(), "{output}");
    assert!(
        output.contains("cannot listen on not-an-address"),
        "{output}"
    );
    assert!(
        output.contains("PUSHLOG_ADDR"),
        "the setting to fix: {output}"
    );
    assert!(!output.contains("development tokens"), "{output}");
}

/// The line where the server says it listens, as `format` writes it.
async fn listening_line(format: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut command = pushlog();
    command
        .env_remove("NO_COLOR")
        .env("PUSHLOG_JWT_SECRET", SECRET)
        .env("PUSHLOG_LOG_FORMAT", format)
        .env("PUSHLOG_ADDR", format!("127.0.0.1:{port}"))
        .env(
            "PUSHLOG_DATABASE_URL",
            format!("sqlite://{}", dir.path().join("logs.db").display()),
        )
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut server = Running(command.spawn().expect("the pushlog binary starts"));
    let mut output = lines_of(&mut server.0);
    let mut seen = Vec::new();
    loop {
        let line = tokio::time::timeout(PATIENCE, output.recv())
            .await
            .unwrap_or_else(|_| panic!("no listening line yet; so far: {seen:#?}"))
            .unwrap_or_else(|| panic!("pushlog exited; it wrote: {seen:#?}"));
        if line.contains("pushlog listening") {
            return line;
        }
        seen.push(line);
    }
}

#[actix_web::test]
async fn json_logs_are_one_object_a_line() {
    let line = listening_line("json").await;
    let parsed: Value = serde_json::from_str(&line).expect("a JSON object");
    assert_eq!(parsed["level"], "INFO", "{line}");
    assert_eq!(parsed["fields"]["message"], "pushlog listening", "{line}");
}

#[actix_web::test]
async fn text_logs_into_a_pipe_carry_no_colour_codes() {
    let line = listening_line("text").await;
    assert!(!line.contains('\u{1b}'), "{line:?}");
}

#[actix_web::test]
async fn every_answer_carries_the_request_id_it_was_given_or_a_new_one() {
    let app = spawn_app().await;
    let id_of = |response: &awc::ClientResponse<_>| {
        response
            .headers()
            .get("x-request-id")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    let given = app
        .client
        .get(format!("{}/healthz", app.base))
        .insert_header(("X-Request-Id", "lb-7f3a.42"))
        .send()
        .await
        .expect("request");
    assert_eq!(id_of(&given).as_deref(), Some("lb-7f3a.42"));

    let too_long = "x".repeat(200);
    for sent in [None, Some("two words"), Some(too_long.as_str())] {
        let mut request = app.client.get(format!("{}/readyz", app.base));
        if let Some(id) = sent {
            request = request.insert_header(("X-Request-Id", id));
        }
        let response = request.send().await.expect("request");
        let id = id_of(&response).expect("an id is generated");
        assert!(uuid::Uuid::parse_str(&id).is_ok(), "{sent:?} → {id}");
    }
}
