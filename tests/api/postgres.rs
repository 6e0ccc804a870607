//! A fresh PostgreSQL database per test, on the server named by
//! `PUSHLOG_TEST_POSTGRES_URL` (default: the machine's own, trust auth).
//!
//! Without a reachable server these tests fail under `CI=true`, and
//! otherwise say on stderr, visibly, that they were skipped and why.

use sqlx::postgres::{PgConnection, PgPool};
use sqlx::{AssertSqlSafe, Connection};

use crate::helpers::{TestApp, spawn_app_with};

const DEFAULT_SERVER: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A database that exists for one test and is dropped after it.
pub struct TestDatabase {
    /// Where pushlog nodes connect.
    pub url: String,
    server: String,
    name: String,
}

impl TestDatabase {
    /// Creates a database; `None` (after saying so) when no server can be
    /// reached outside CI.
    pub async fn create(test: &str) -> Option<TestDatabase> {
        TestDatabase::create_with(test, "").await
    }

    /// Creates a database with `options` appended to `CREATE DATABASE`
    /// (a locale, say).
    pub async fn create_with(test: &str, options: &str) -> Option<TestDatabase> {
        let server = std::env::var("PUSHLOG_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| DEFAULT_SERVER.to_owned());
        let mut admin = match PgConnection::connect(&server).await {
            Ok(admin) => admin,
            Err(error) => {
                if std::env::var("CI").is_ok_and(|ci| ci == "true") {
                    panic!("{test}: PostgreSQL at {server} is required in CI: {error}");
                }
                eprintln!("SKIPPED {test}: PostgreSQL at {server} is unreachable: {error}");
                return None;
            }
        };
        let name = format!("pushlog_test_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name} {options}")))
            .execute(&mut admin)
            .await
            .expect("create a test database");
        let _ = admin.close().await;
        let (base, _) = server.rsplit_once('/').expect("a URL with a database");
        Some(TestDatabase {
            url: format!("{base}/{name}"),
            server,
            name,
        })
    }

    /// A pool on the test database, as an application sharing it would have.
    pub async fn pool(&self) -> PgPool {
        PgPool::connect(&self.url)
            .await
            .expect("connect to the test database")
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (server, name) = (self.server.clone(), self.name.clone());
        // Drop is not async: a thread of its own with a runtime of its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let mut admin = PgConnection::connect(&server)
                    .await
                    .map_err(std::io::Error::other)?;
                sqlx::query(AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&mut admin)
                .await
                .map_err(std::io::Error::other)?;
                Ok::<_, std::io::Error>(())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test database {}", self.name);
        }
    }
}

/// A pushlog node on `database_url`.
pub async fn spawn_node(database_url: &str) -> TestApp {
    let url = database_url.to_owned();
    spawn_app_with(move |config| config.database_url = url).await
}
