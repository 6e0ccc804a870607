//! The SQLite backend: the SQL pushlog runs against SQLite alone (what both
//! backends share is in `rows`).
//!
//! WAL journal with `synchronous = FULL`: a commit returns only after the WAL
//! is fsynced, so an acknowledged event survives `kill -9` and an OS crash.
//! Group commit (see `writer`) is what keeps that affordable.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Connection, QueryBuilder, Sqlite};

use super::StoreError;
use super::backend::{Decide, Locked, LogBackend, PruneScope, Pruned};
use super::position::LogPosition;
use super::rows::{
    COLUMNS, ENTITY_INDEX_UPSERT, EntityPage, EntityTables, event_from_row, newer_variants_query,
    range_query, read_entity_page,
};
use crate::domain::event::{Entity, Event, EventId, Topic, TopicPattern};

/// Readers a replay storm may use at once; SQLite WAL readers do not block
/// the writer, and more connections than cores buy nothing.
const READ_CONNECTIONS: u32 = 4;
/// Events the entity index takes in per transaction: each of its pages is
/// written once per batch, whatever number of the batch's events land on it.
const INDEX_BATCH: u32 = 100_000;
/// SQLite's default bound on host parameters is 32766; batches stay far below.
const ROWS_PER_INSERT: usize = 500;

fn connect_options(database_url: &str) -> Result<SqliteConnectOptions, StoreError> {
    if !database_url.starts_with("sqlite:") {
        return Err(StoreError::UnsupportedUrl(database_url.to_owned()));
    }
    Ok(SqliteConnectOptions::from_str(database_url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(5)))
}

/// The database file as an operator should look for it: a relative path
/// is resolved against the working directory, which is what SQLite does and
/// what a first run in the wrong directory gets wrong.
fn shown_path(path: &Path) -> PathBuf {
    if path.is_relative() && path != Path::new(":memory:") {
        std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
    } else {
        path.to_owned()
    }
}

/// What to check when SQLite cannot open (`SQLITE_CANTOPEN`) or create the
/// file beside its journal (`SQLITE_READONLY`): the file's directory. Other
/// failures (a file that is not a database) get no guess.
pub(super) fn open_hint(path: &Path, error: &sqlx::Error) -> String {
    const CANTOPEN: i32 = 14;
    const READONLY: i32 = 8;
    let primary = match error {
        sqlx::Error::Database(database) => database
            .code()
            .and_then(|code| code.parse::<i32>().ok())
            .map(|code| code & 0xff),
        _ => None,
    };
    match (primary, path.parent()) {
        (Some(CANTOPEN | READONLY), Some(directory)) if !directory.as_os_str().is_empty() => {
            format!(
                " (the directory {} must exist and be writable by this user)",
                directory.display()
            )
        }
        _ => String::new(),
    }
}

/// Opens the database, applies the migrations, and reads where the log is.
pub(super) async fn open(
    database_url: &str,
) -> Result<(Reader, SqliteWriter, LogPosition), StoreError> {
    let options = connect_options(database_url)?;
    let mut conn = SqliteConnection::connect_with(&options)
        .await
        .map_err(|source| StoreError::SqliteOpen {
            path: shown_path(options.get_filename()),
            source,
        })?;
    sqlx::migrate!("./migrations/sqlite").run(&mut conn).await?;
    let position = load_position(&mut conn).await?;
    let last_timestamp = last_timestamp(&mut conn).await?;
    let pool = SqlitePoolOptions::new()
        .max_connections(READ_CONNECTIONS)
        .connect_with(options.clone().read_only(true))
        .await?;
    let writer = SqliteWriter {
        conn,
        options,
        broken: false,
        head: position.bounds().head.get(),
        last_timestamp,
    };
    Ok((Reader { pool }, writer, position))
}

/// The write connection. The only writer of an embedded log, so the head
/// and the newest timestamp are kept here rather than read under the lock.
pub(super) struct SqliteWriter {
    conn: SqliteConnection,
    options: SqliteConnectOptions,
    /// A transaction on `conn` failed. SQLite may have rolled it back by
    /// itself (a full disk at `COMMIT` does), leaving sqlx believing it is
    /// still open, so that every later `BEGIN` fails: the connection is
    /// replaced before the next use instead.
    broken: bool,
    head: i64,
    last_timestamp: i64,
}

impl SqliteWriter {
    async fn usable(&mut self) -> Result<&mut SqliteConnection, StoreError> {
        if self.broken {
            self.conn = SqliteConnection::connect_with(&self.options).await?;
            self.broken = false;
            tracing::info!("the log's write connection was replaced after a failure");
        }
        Ok(&mut self.conn)
    }

    /// `result`, noting whether the connection may be left unusable.
    fn checked<T>(&mut self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        self.broken = result.is_err();
        result
    }

    async fn try_append(
        &mut self,
        keys: Vec<String>,
        decide: &mut Decide<'_>,
    ) -> Result<Vec<Event>, StoreError> {
        let mut tx = self.conn.begin_with("BEGIN IMMEDIATE").await?;
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let known = find_by_keys(&mut tx, &keys).await?;
        let events = decide(Locked {
            head: self.head,
            last_timestamp: self.last_timestamp,
            known,
            staged: Vec::new(),
        });
        if events.is_empty() {
            return Ok(events);
        }
        let rows: Vec<&Event> = events.iter().collect();
        insert(&mut tx, &rows).await?;
        tx.commit().await?;
        if let Some(last) = events.last() {
            self.head = last.id.get();
            self.last_timestamp = last.timestamp.timestamp_millis();
        }
        Ok(events)
    }

    /// Moves `log_meta`'s row one way and back: SQLite skips a write that
    /// leaves a row as it was (no page gets dirty, the commit writes
    /// nothing), but a row changed and restored in one transaction is a
    /// dirty page, so the commit appends one frame to the WAL and fsyncs
    /// it, just as an append's commit would.
    async fn try_probe(&mut self) -> Result<(), StoreError> {
        let mut tx = self.conn.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query("UPDATE log_meta SET pruned_through = pruned_through + 1 WHERE singleton = 1")
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE log_meta SET pruned_through = pruned_through - 1 WHERE singleton = 1")
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn try_prune(
        &mut self,
        scope: PruneScope,
        position: &LogPosition,
    ) -> Result<Pruned, StoreError> {
        let indexed = self.try_index_entities(INDEX_BATCH).await?;
        if indexed >= u64::from(INDEX_BATCH) {
            // Nothing is pruned before it is indexed: the next step goes on.
            return Ok(Pruned {
                indexed,
                index_behind: true,
                deleted: 0,
            });
        }
        let pruned = position.bounds().pruned_through.get();
        let mut deleted = 0;
        if let Some(plan) = plan_prune(&mut self.conn, pruned, self.head, scope).await? {
            // Raised before the delete commits; see `LogPosition::raise_pruned`.
            position.raise_pruned(plan.through, plan.through_at);
            let mut tx = self.conn.begin_with("BEGIN IMMEDIATE").await?;
            deleted = delete_through(&mut tx, &plan).await?;
            tx.commit().await?;
            tracing::debug!(through = plan.through, deleted, "retention pruned events");
        }
        if let Some(keep_after_ms) = scope.entity_keep_after_ms {
            let log_pruned = position.bounds().pruned_through.get();
            deleted += self
                .try_prune_entities(keep_after_ms, log_pruned, scope.batch)
                .await?;
        }
        Ok(Pruned {
            indexed,
            index_behind: false,
            deleted,
        })
    }

    /// Takes the next `batch` events after the index's mark into the entity
    /// index, each the latest of its entity unless a newer one is there
    /// already, and moves the mark, in one transaction. Returns how many
    /// events of the log it covered. The batch is grouped by entity: one
    /// upsert per entity, in key order, so the index's pages are visited in
    /// order (SQLite's `max()` gives the other columns of the row it picks).
    async fn try_index_entities(&mut self, batch: u32) -> Result<u64, StoreError> {
        let mut tx = self.conn.begin_with("BEGIN IMMEDIATE").await?;
        let through: i64 =
            sqlx::query_scalar("SELECT entities_indexed_through FROM log_meta WHERE singleton = 1")
                .fetch_one(&mut *tx)
                .await?;
        let upto = self.head.min(through.saturating_add(i64::from(batch)));
        if upto <= through {
            return Ok(0);
        }
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO entity_index AS current (topic, entity_kind, entity_id, audience_key, \
                 id, type, entity_op, payload, audience, idem_key, created_at) \
             SELECT topic, entity_kind, entity_id, audience_key, id, type, entity_op, payload, \
                 audience, idem_key, created_at FROM ( \
                 SELECT topic, entity_kind, entity_id, COALESCE(audience, '') AS audience_key, \
                     max(id) AS id, type, entity_op, payload, audience, idem_key, created_at \
                 FROM events WHERE id > ?1 AND id <= ?2 AND entity_kind IS NOT NULL \
                 GROUP BY topic, entity_kind, entity_id, audience_key) \
             WHERE true {ENTITY_INDEX_UPSERT}"
        )))
        .bind(through)
        .bind(upto)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE log_meta SET entities_indexed_through = ? WHERE singleton = 1")
            .bind(upto)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(u64::try_from(upto - through).unwrap_or(0))
    }

    /// Deletes the oldest entity index rows created before `keep_after_ms`
    /// whose events the log has let go (ids up to `log_pruned`), at most
    /// `batch`, and raises the index's mark to the newest id among them in
    /// the same transaction. `created_at` never decreases with `id`, so what
    /// has aged out is a prefix of the index by id: of its oldest `batch`
    /// rows, those older than the cutoff. A cursor at or above the mark has
    /// lost no entity.
    async fn try_prune_entities(
        &mut self,
        keep_after_ms: i64,
        log_pruned: i64,
        batch: u32,
    ) -> Result<u64, StoreError> {
        let mut tx = self.conn.begin_with("BEGIN IMMEDIATE").await?;
        let through: Option<i64> = sqlx::query_scalar(
            "SELECT max(id) FROM ( \
                 SELECT id, created_at FROM entity_index WHERE id <= ?1 ORDER BY id LIMIT ?2) \
             WHERE created_at < ?3",
        )
        .bind(log_pruned)
        .bind(i64::from(batch))
        .bind(keep_after_ms)
        .fetch_one(&mut *tx)
        .await?;
        let Some(through) = through else {
            return Ok(0);
        };
        let deleted = sqlx::query("DELETE FROM entity_index WHERE id <= ?")
            .bind(through)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query(
            "UPDATE log_meta SET entities_pruned_through = max(entities_pruned_through, ?) \
             WHERE singleton = 1",
        )
        .bind(through)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        tracing::debug!(through, deleted, "entity retention pruned index rows");
        Ok(deleted)
    }
}

impl LogBackend for SqliteWriter {
    const ANNOUNCES_COMMITS: bool = true;

    async fn append(
        &mut self,
        keys: Vec<String>,
        _relay: bool,
        decide: &mut Decide<'_>,
    ) -> Result<Vec<Event>, StoreError> {
        self.usable().await?;
        let appended = self.try_append(keys, decide).await;
        self.checked(appended)
    }

    async fn probe(&mut self) -> Result<(), StoreError> {
        self.usable().await?;
        let probed = self.try_probe().await;
        self.checked(probed)
    }

    async fn prune(
        &mut self,
        scope: PruneScope,
        position: &LogPosition,
    ) -> Result<Pruned, StoreError> {
        self.usable().await?;
        let pruned = self.try_prune(scope, position).await;
        self.checked(pruned)
    }
}

async fn load_position(conn: &mut SqliteConnection) -> Result<LogPosition, StoreError> {
    // The sequence, not max(id): after retention empties the table, the head
    // must still be the last id ever assigned.
    let head: i64 = sqlx::query_scalar(
        "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0)",
    )
    .fetch_one(&mut *conn)
    .await?;
    let (pruned, pruned_at): (i64, i64) = sqlx::query_as(
        "SELECT pruned_through, pruned_through_at FROM log_meta WHERE singleton = 1",
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok(LogPosition::new(head, pruned, pruned_at))
}

/// The newest `created_at` in the log, so timestamps never go backwards
/// across a restart even if the clock did.
async fn last_timestamp(conn: &mut SqliteConnection) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT COALESCE((SELECT created_at FROM events ORDER BY id DESC LIMIT 1), 0)",
    )
    .fetch_one(conn)
    .await?)
}

#[derive(Clone)]
pub(super) struct Reader {
    pool: SqlitePool,
}

impl Reader {
    pub(super) async fn read_range(
        &self,
        after: EventId,
        until: EventId,
        topics: &[TopicPattern],
        limit: u32,
    ) -> Result<Vec<Event>, StoreError> {
        let mut query = range_query::<Sqlite>("events", after, until, topics, limit);
        let rows = query.build().fetch_all(&self.pool).await?;
        rows.iter().map(event_from_row).collect()
    }

    /// One read of the entity index, in one snapshot (see
    /// [`EntityPage`]).
    pub(super) async fn read_entity_page(
        &self,
        after: EventId,
        until: EventId,
        topics: &[TopicPattern],
        limit: u32,
    ) -> Result<EntityPage, StoreError> {
        const TABLES: EntityTables = EntityTables {
            events: "events",
            index: "entity_index",
            indexed_through: "SELECT entities_indexed_through FROM log_meta WHERE singleton = 1",
        };
        let mut snapshot = self.pool.begin().await?;
        let page =
            read_entity_page::<Sqlite>(&mut snapshot, &TABLES, after, until, topics, limit).await?;
        snapshot.commit().await?;
        Ok(page)
    }

    pub(super) async fn newer_variants(
        &self,
        topic: &Topic,
        entity: &Entity,
        id: EventId,
    ) -> Result<Vec<Event>, StoreError> {
        let mut query = newer_variants_query::<Sqlite>("entity_index", topic, entity, id);
        let rows = query.build().fetch_all(&self.pool).await?;
        rows.iter().map(event_from_row).collect()
    }

    pub(super) async fn entities_pruned_through(&self) -> Result<EventId, StoreError> {
        let through: i64 =
            sqlx::query_scalar("SELECT entities_pruned_through FROM log_meta WHERE singleton = 1")
                .fetch_one(&self.pool)
                .await?;
        Ok(EventId::new(through).unwrap_or(EventId::ZERO))
    }

    pub(super) async fn last_id_at_or_before(
        &self,
        t: DateTime<Utc>,
    ) -> Result<Option<EventId>, StoreError> {
        let id: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM events WHERE created_at <= ? ORDER BY created_at DESC, id DESC LIMIT 1",
        )
        .bind(t.timestamp_millis())
        .fetch_optional(&self.pool)
        .await?;
        Ok(id.and_then(EventId::new))
    }

    pub(super) async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub(super) async fn close(&self) {
        self.pool.close().await;
    }
}

/// The stored events carrying any of `keys`.
async fn find_by_keys(
    conn: &mut SqliteConnection,
    keys: &[&str],
) -> Result<Vec<Event>, StoreError> {
    let mut found = Vec::new();
    for chunk in keys.chunks(ROWS_PER_INSERT) {
        let mut query = QueryBuilder::<Sqlite>::new(format!(
            "SELECT {COLUMNS} FROM events WHERE idem_key IN ("
        ));
        let mut list = query.separated(", ");
        for key in chunk {
            list.push_bind(key.to_string());
        }
        query.push(")");
        let rows = query.build().fetch_all(&mut *conn).await?;
        for row in &rows {
            found.push(event_from_row(row)?);
        }
    }
    Ok(found)
}

/// Inserts events whose ids the writer has already assigned, in one
/// transaction that the caller commits.
async fn insert(conn: &mut SqliteConnection, events: &[&Event]) -> Result<(), StoreError> {
    for chunk in events.chunks(ROWS_PER_INSERT) {
        let mut query = QueryBuilder::<Sqlite>::new(format!("INSERT INTO events ({COLUMNS}) "));
        query.push_values(chunk, |mut row, event| {
            let audience = event
                .audience
                .as_ref()
                .map(|a| serde_json::to_string(a).unwrap_or_default());
            row.push_bind(event.id.get())
                .push_bind(event.topic.as_str().to_owned())
                .push_bind(event.kind.clone())
                .push_bind(event.entity.as_ref().map(|e| e.kind.clone()))
                .push_bind(event.entity.as_ref().map(|e| e.id.clone()))
                .push_bind(event.entity.as_ref().map(|e| e.op.as_str()))
                .push_bind(event.payload.as_ref().map(|p| p.get().to_owned()))
                .push_bind(audience)
                .push_bind(event.key.clone())
                .push_bind(event.timestamp.timestamp_millis());
        });
        query.build().execute(&mut *conn).await?;
    }
    Ok(())
}

/// What one prune step decided to delete.
struct PrunePlan {
    through: i64,
    through_at: i64,
}

/// Finds the next batch to delete: ids after `pruned` up to `batch` rows,
/// stopping at the newest id that retention no longer keeps.
async fn plan_prune(
    conn: &mut SqliteConnection,
    pruned: i64,
    head: i64,
    scope: PruneScope,
) -> Result<Option<PrunePlan>, StoreError> {
    // The last row of the batch: the `batch`-th row after `pruned` that is
    // outside retention (by count: id <= keep_after_id; by age: older).
    // `created_at` never decreases with `id`, so what is outside retention
    // is a prefix of the log, ending at the larger of `keep_after_id` and the
    // newest id older than the cutoff (one step down the `created_at`
    // index). Asking for that prefix as an id range keeps the query at
    // O(batch) rows; `id <= ?2 OR created_at < ?3` would scan every retained
    // row on each run, with the writer (and so every publish) waiting.
    let row: Option<(i64, i64)> = sqlx::query_as(
        "SELECT id, created_at FROM (
             SELECT id, created_at FROM events
             WHERE id > ?1 AND id <= max(?2, coalesce(
                 (SELECT id FROM events WHERE created_at < ?3
                  ORDER BY created_at DESC, id DESC LIMIT 1), 0))
             ORDER BY id LIMIT ?4
         ) ORDER BY id DESC LIMIT 1",
    )
    .bind(pruned)
    .bind(scope.keep_after_id(head))
    .bind(scope.keep_after_ms.unwrap_or(i64::MIN))
    .bind(i64::from(scope.batch))
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(|(through, through_at)| PrunePlan {
        through,
        through_at,
    }))
}

async fn delete_through(conn: &mut SqliteConnection, plan: &PrunePlan) -> Result<u64, StoreError> {
    let deleted = sqlx::query("DELETE FROM events WHERE id <= ?")
        .bind(plan.through)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    sqlx::query(
        "UPDATE log_meta SET pruned_through = ?, pruned_through_at = ? WHERE singleton = 1",
    )
    .bind(plan.through)
    .bind(plan.through_at)
    .execute(&mut *conn)
    .await?;
    Ok(deleted)
}
