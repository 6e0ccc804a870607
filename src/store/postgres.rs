//! The PostgreSQL backend: one log shared by several nodes, and the SQL
//! pushlog runs against PostgreSQL alone (what both backends share is in
//! `rows`).
//!
//! **Commit order is id order** because ids are assigned under the row lock
//! on `pushlog.log_head`: a writer locks the row (`SELECT … FOR UPDATE`),
//! continues from its `head`, inserts, moves `head` and commits, and the
//! lock is released only after the commit is visible. The next writer, on
//! this node or another, blocks on the row until then and reads the new
//! head. So id N+1 can only commit after N is visible, and a reader that has
//! seen N+1 has seen everything before it. The cost is that appends from
//! all nodes commit one at a time: each node's group commit batches what
//! arrives meanwhile, so a commit carries hundreds of events under load.
//!
//! Commits are announced with `NOTIFY pushlog_head` inside the transaction
//! (delivered on commit); every node's follower reads the new events back in
//! id order (see `follower`). Events staged by applications in
//! `pushlog.outbox` are moved into the log by the same append transaction.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, Postgres};
use sqlx::{AssertSqlSafe, Connection};

use super::backend::{Decide, Locked, LogBackend, PruneScope, Pruned, numbered};
use super::position::LogPosition;
use super::rows::{
    COLUMNS, ENTITY_INDEX_UPSERT, EntityPage, EntityTables, event_from_row, newer_variants_query,
    range_query, read_entity_page,
};
use super::{StoreError, now_millis};
use serde_json::value::RawValue;

use crate::domain::event::{
    Audience, Entity, Event, EventDraft, EventId, NewEvent, PayloadRules, Topic, TopicPattern,
};

/// Events the entity index takes in per transaction (see the SQLite
/// backend).
const INDEX_BATCH: u32 = 100_000;

/// The schema that holds pushlog's tables and functions.
const SCHEMA: &str = "pushlog";
/// Readers a replay storm may use at once, per node.
const READ_CONNECTIONS: u32 = 4;
/// The writer uses one at a time; a second lets it go on while a broken
/// one is replaced.
const WRITE_CONNECTIONS: u32 = 2;
/// How long a query waits for a connection before the log counts as
/// unreachable: publishes get `503 log_unavailable` rather than hang.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a writer waits for the log's lock before the publish fails.
const LOCK_TIMEOUT: &str = "5s";
/// How long a session may sit in an open transaction doing nothing.
const IDLE_IN_TRANSACTION_TIMEOUT: &str = "10s";
/// The longest any one query may run.
const STATEMENT_TIMEOUT: &str = "30s";
/// Outbox rows moved into the log per transaction.
const RELAY_BATCH: i64 = 1000;
/// Any key: held while one node creates the schema and migrates it, so
/// nodes starting together do not race.
const MIGRATION_LOCK: i64 = 0x0070_7573_686c_6f67; // "pushlog" in ASCII

/// Writers rely on read committed: after waiting for the head's lock, a
/// `FOR UPDATE` reads the row as the previous writer committed it.
/// Stated, not assumed, since a database's default may differ.
const BEGIN: &str = "BEGIN ISOLATION LEVEL READ COMMITTED";

/// The channel a commit notifies; the payload is the new head.
pub(super) const HEAD_CHANNEL: &str = "pushlog_head";
/// The channel `pushlog.publish` notifies when it stages an event.
pub(super) const OUTBOX_CHANNEL: &str = "pushlog_outbox";

pub(super) fn is_postgres_url(database_url: &str) -> bool {
    database_url.starts_with("postgres://") || database_url.starts_with("postgresql://")
}

/// What opening the shared log yields.
pub(super) struct Opened {
    pub reader: Reader,
    pub follower_reader: Reader,
    pub writer: PgWriter,
    pub position: Arc<LogPosition>,
    /// A pool of one for the follower's listening connection.
    pub listener_pool: PgPool,
}

/// Connects, creates the schema and applies the migrations (one node at a
/// time), and reads where the log is.
pub(super) async fn open(database_url: &str) -> Result<Opened, StoreError> {
    // A node that stalls while it holds the log's lock (its host gone, its
    // network cut) must not stop every other node's publishes for the
    // hours TCP takes to notice: PostgreSQL ends such a session, and a
    // writer waiting for the lock gives up and answers 503 instead.
    let options = PgConnectOptions::from_str(database_url)?
        .options([
            ("search_path", SCHEMA),
            ("lock_timeout", LOCK_TIMEOUT),
            (
                "idle_in_transaction_session_timeout",
                IDLE_IN_TRANSACTION_TIMEOUT,
            ),
            ("statement_timeout", STATEMENT_TIMEOUT),
        ])
        .application_name("pushlog");
    migrate(&options).await?;
    let pool = |connections| {
        PgPoolOptions::new()
            .max_connections(connections)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_lazy_with(options.clone())
    };
    let reader_pool = pool(READ_CONNECTIONS);
    let position = Arc::new(load_position(&reader_pool).await?);
    Ok(Opened {
        reader: Reader {
            pool: reader_pool,
            position: position.clone(),
        },
        // Its own connection, so a replay storm holding the read pool does
        // not hold up live delivery.
        follower_reader: Reader {
            pool: pool(1),
            position: position.clone(),
        },
        writer: PgWriter {
            pool: pool(WRITE_CONNECTIONS),
        },
        position,
        listener_pool: pool(1),
    })
}

async fn migrate(options: &PgConnectOptions) -> Result<(), StoreError> {
    let mut conn = PgConnection::connect_with(options).await?;
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut conn)
        .await?;
    let migrated = async {
        sqlx::query(AssertSqlSafe(format!(
            "CREATE SCHEMA IF NOT EXISTS {SCHEMA}"
        )))
        .execute(&mut conn)
        .await?;
        sqlx::migrate!("./migrations/postgres")
            .run(&mut conn)
            .await?;
        Ok::<_, StoreError>(())
    }
    .await;
    // Closing the connection releases the lock whatever happened.
    let _ = conn.close().await;
    migrated
}

async fn load_position(pool: &PgPool) -> Result<LogPosition, StoreError> {
    let (head, pruned, pruned_at): (i64, i64, i64) = sqlx::query_as(
        "SELECT head, pruned_through, pruned_through_at FROM pushlog.log_head WHERE singleton",
    )
    .fetch_one(pool)
    .await?;
    Ok(LogPosition::new(head, pruned, pruned_at))
}

#[derive(Clone)]
pub(super) struct Reader {
    pool: PgPool,
    /// Raised to the shared log's bounds by `refresh_bounds`.
    position: Arc<LogPosition>,
}

impl Reader {
    pub(super) async fn read_range(
        &self,
        after: EventId,
        until: EventId,
        topics: &[TopicPattern],
        limit: u32,
    ) -> Result<Vec<Event>, StoreError> {
        let mut query = range_query::<Postgres>("pushlog.events", after, until, topics, limit);
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
            events: "pushlog.events",
            index: "pushlog.entity_index",
            indexed_through: "SELECT indexed_through FROM pushlog.entity_index_marks WHERE singleton",
        };
        let mut snapshot = self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .await?;
        let page =
            read_entity_page::<Postgres>(&mut snapshot, &TABLES, after, until, topics, limit)
                .await?;
        snapshot.commit().await?;
        Ok(page)
    }

    pub(super) async fn newer_variants(
        &self,
        topic: &Topic,
        entity: &Entity,
        id: EventId,
    ) -> Result<Vec<Event>, StoreError> {
        let mut query = newer_variants_query::<Postgres>("pushlog.entity_index", topic, entity, id);
        let rows = query.build().fetch_all(&self.pool).await?;
        rows.iter().map(event_from_row).collect()
    }

    pub(super) async fn entities_pruned_through(&self) -> Result<EventId, StoreError> {
        let through: i64 = sqlx::query_scalar(
            "SELECT pruned_through FROM pushlog.entity_index_marks WHERE singleton",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(EventId::new(through).unwrap_or(EventId::ZERO))
    }

    /// Raises the local bounds to the shared log's: its head (a cursor from
    /// another node may be ahead of this node's follower) and what retention
    /// has deleted.
    pub(super) async fn refresh_bounds(&self) -> Result<(), StoreError> {
        let (head, pruned, pruned_at): (i64, i64, i64) = sqlx::query_as(
            "SELECT head, pruned_through, pruned_through_at FROM pushlog.log_head WHERE singleton",
        )
        .fetch_one(&self.pool)
        .await?;
        self.position.raise_pruned(pruned, pruned_at);
        self.position.advance_head(head);
        Ok(())
    }

    pub(super) async fn last_id_at_or_before(
        &self,
        t: DateTime<Utc>,
    ) -> Result<Option<EventId>, StoreError> {
        let id: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM pushlog.events WHERE created_at <= $1 \
             ORDER BY created_at DESC, id DESC LIMIT 1",
        )
        .bind(t.timestamp_millis())
        .fetch_optional(&self.pool)
        .await?;
        Ok(id.and_then(EventId::new))
    }

    /// Whether the outbox holds committed rows waiting for a relay.
    pub(super) async fn outbox_waiting(&self) -> Result<bool, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pushlog.outbox)")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    pub(super) async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub(super) async fn close(&self) {
        self.pool.close().await;
    }
}

/// This node's writer into the shared log.
pub(super) struct PgWriter {
    pool: PgPool,
}

impl LogBackend for PgWriter {
    const ANNOUNCES_COMMITS: bool = false;

    async fn append(
        &mut self,
        mut keys: Vec<String>,
        relay: bool,
        decide: &mut Decide<'_>,
    ) -> Result<Vec<Event>, StoreError> {
        let mut tx = self.pool.begin_with(BEGIN).await?;
        let (head, last_timestamp): (i64, i64) = sqlx::query_as(
            "SELECT head, last_timestamp FROM pushlog.log_head WHERE singleton FOR UPDATE",
        )
        .fetch_one(&mut *tx)
        .await?;
        // A keyed publish relays first: an application's committed event
        // under the same key, still in the outbox, came first.
        let (staged, relayed) = if relay || !keys.is_empty() {
            take_outbox(&mut tx).await?
        } else {
            (Vec::new(), 0)
        };
        keys.extend(staged.iter().filter_map(|event| event.key.clone()));
        let known = find_by_keys(&mut tx, &keys).await?;
        let events = decide(Locked {
            head,
            last_timestamp,
            known,
            staged,
        });
        if !events.is_empty() {
            insert(&mut tx, &events).await?;
        } else if relayed == 0 {
            // Nothing to write: let the lock go without a commit.
            return Ok(events);
        }
        tx.commit().await?;
        Ok(events)
    }

    /// One statement, outside any explicit transaction: it moves the head
    /// (taking the lock), inserts the events numbered from the old head and
    /// notifies, and commits as it ends. So the lock is held while the
    /// server executes and fsyncs, never across a round trip to this node,
    /// which is what lets writers on several nodes take turns quickly.
    async fn append_new(&mut self, events: Vec<NewEvent>) -> Result<Vec<Event>, StoreError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let mut columns = Columns::default();
        for event in &events {
            columns.push_content(
                &event.topic,
                &event.kind,
                event.entity.as_ref(),
                event.payload.as_deref(),
                event.audience.as_ref(),
            );
        }
        let count = i64::try_from(events.len()).unwrap_or(i64::MAX);
        let (base, timestamp): (i64, i64) = sqlx::query_as(
            "WITH moved AS (
                 UPDATE pushlog.log_head
                 SET head = head + $8, last_timestamp = GREATEST(last_timestamp, $9)
                 WHERE singleton
                 RETURNING head - $8 AS base, last_timestamp AS at),
             inserted AS (
                 INSERT INTO pushlog.events
                     (id, topic, type, entity_kind, entity_id, entity_op, payload, audience, created_at)
                 SELECT moved.base + row.n, row.topic, row.type, row.entity_kind, row.entity_id,
                        row.entity_op, row.payload, row.audience, moved.at
                 FROM moved, UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                                    $6::text[], $7::text[]) WITH ORDINALITY
                      AS row(topic, type, entity_kind, entity_id, entity_op, payload, audience, n))
             SELECT moved.base, moved.at FROM moved, pg_notify($10, (moved.base + $8)::text)",
        )
        .bind(columns.topics)
        .bind(columns.kinds)
        .bind(columns.entity_kinds)
        .bind(columns.entity_ids)
        .bind(columns.entity_ops)
        .bind(columns.payloads)
        .bind(columns.audiences)
        .bind(count)
        .bind(now_millis())
        .bind(HEAD_CHANNEL)
        .fetch_one(&self.pool)
        .await?;
        Ok(numbered(events, base, timestamp))
    }

    /// PostgreSQL writes a new row version even for an unchanged row, so
    /// this commits (WAL and fsync) like an append. It holds the head's
    /// lock only while the statement runs, and runs only while this node's
    /// writes fail.
    async fn probe(&mut self) -> Result<(), StoreError> {
        sqlx::query("UPDATE pushlog.log_head SET head = head WHERE singleton")
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn prune(
        &mut self,
        scope: PruneScope,
        position: &LogPosition,
    ) -> Result<Pruned, StoreError> {
        let indexed = self.index_entities(INDEX_BATCH).await?;
        if indexed >= u64::from(INDEX_BATCH) {
            // Nothing is pruned before it is indexed: the next step goes on.
            return Ok(Pruned {
                indexed,
                index_behind: true,
                deleted: 0,
            });
        }
        let mut deleted = self.prune_log(scope, position).await?;
        if let Some(keep_after_ms) = scope.entity_keep_after_ms {
            deleted += self.prune_entities(keep_after_ms, scope.batch).await?;
        }
        Ok(Pruned {
            indexed,
            index_behind: false,
            deleted,
        })
    }
}

impl PgWriter {
    /// Takes the next `batch` committed events after the index's mark into
    /// the entity index (the latest of each entity and audience among them,
    /// unless a newer one is there already) and moves the mark, in one
    /// transaction under the marks' lock, which appends never take. Returns
    /// how many events of the log it covered.
    async fn index_entities(&mut self, batch: u32) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin_with(BEGIN).await?;
        let through: i64 = sqlx::query_scalar(
            "SELECT indexed_through FROM pushlog.entity_index_marks WHERE singleton FOR UPDATE",
        )
        .fetch_one(&mut *tx)
        .await?;
        // The head is committed with its events: everything up to it is too.
        let head: i64 = sqlx::query_scalar("SELECT head FROM pushlog.log_head WHERE singleton")
            .fetch_one(&mut *tx)
            .await?;
        let upto = head.min(through.saturating_add(i64::from(batch)));
        if upto <= through {
            return Ok(0);
        }
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO pushlog.entity_index AS current (topic, entity_kind, entity_id,
                 audience_key, id, type, entity_op, payload, audience, idem_key, created_at)
             SELECT DISTINCT ON (topic, entity_kind, entity_id, COALESCE(audience, ''))
                 topic, entity_kind, entity_id, COALESCE(audience, ''), id, type, entity_op,
                 payload, audience, idem_key, created_at
             FROM pushlog.events WHERE id > $1 AND id <= $2 AND entity_kind IS NOT NULL
             ORDER BY topic, entity_kind, entity_id, COALESCE(audience, ''), id DESC
             {ENTITY_INDEX_UPSERT}"
        )))
        .bind(through)
        .bind(upto)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE pushlog.entity_index_marks SET indexed_through = $1 WHERE singleton")
            .bind(upto)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(u64::try_from(upto - through).unwrap_or(0))
    }

    async fn prune_log(
        &mut self,
        scope: PruneScope,
        position: &LogPosition,
    ) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin_with(BEGIN).await?;
        let (head, pruned): (i64, i64) = sqlx::query_as(
            "SELECT head, pruned_through FROM pushlog.log_head WHERE singleton FOR UPDATE",
        )
        .fetch_one(&mut *tx)
        .await?;
        // Nothing goes before the entity index has it.
        let indexed: i64 = sqlx::query_scalar(
            "SELECT indexed_through FROM pushlog.entity_index_marks WHERE singleton",
        )
        .fetch_one(&mut *tx)
        .await?;
        // As on SQLite (see `sqlite::plan_prune`): the last row of the next
        // batch outside retention, found as an id range.
        let plan: Option<(i64, i64)> = sqlx::query_as(
            "SELECT id, created_at FROM (
                 SELECT id, created_at FROM pushlog.events
                 WHERE id > $1 AND id <= LEAST($5, GREATEST($2, COALESCE(
                     (SELECT id FROM pushlog.events WHERE created_at < $3
                      ORDER BY created_at DESC, id DESC LIMIT 1), 0)))
                 ORDER BY id LIMIT $4
             ) AS batch ORDER BY id DESC LIMIT 1",
        )
        .bind(pruned)
        .bind(scope.keep_after_id(head))
        .bind(scope.keep_after_ms.unwrap_or(i64::MIN))
        .bind(i64::from(scope.batch))
        .bind(indexed)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((through, through_at)) = plan else {
            return Ok(0);
        };
        // Raised before the delete commits; see `LogPosition::raise_pruned`.
        position.raise_pruned(through, through_at);
        let deleted = sqlx::query("DELETE FROM pushlog.events WHERE id > $1 AND id <= $2")
            .bind(pruned)
            .bind(through)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query(
            "UPDATE pushlog.log_head SET pruned_through = $1, pruned_through_at = $2 \
             WHERE singleton",
        )
        .bind(through)
        .bind(through_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        tracing::debug!(through, deleted, "retention pruned events");
        Ok(deleted)
    }

    /// Deletes the oldest entity index rows created before `keep_after_ms`
    /// whose events the log has let go, at most `batch` (a prefix by id, as
    /// on SQLite), and raises the index's mark to the newest id among them,
    /// under the marks' lock.
    async fn prune_entities(&mut self, keep_after_ms: i64, batch: u32) -> Result<u64, StoreError> {
        let deleted: i64 = sqlx::query_scalar(
            "WITH marks AS (
                 SELECT pruned_through FROM pushlog.entity_index_marks WHERE singleton FOR UPDATE),
             doomed AS (
                 SELECT id FROM (
                     SELECT id, created_at FROM pushlog.entity_index
                     WHERE id <= (SELECT pruned_through FROM pushlog.log_head WHERE singleton)
                     ORDER BY id LIMIT $2) AS oldest
                 WHERE created_at < $1),
             gone AS (
                 DELETE FROM pushlog.entity_index WHERE id IN (SELECT id FROM doomed)
                 RETURNING id),
             marked AS (
                 UPDATE pushlog.entity_index_marks SET pruned_through =
                     GREATEST((SELECT pruned_through FROM marks),
                              (SELECT COALESCE(max(id), 0) FROM gone))
                 WHERE singleton)
             SELECT count(*) FROM gone",
        )
        .bind(keep_after_ms)
        .bind(i64::from(batch))
        .fetch_one(&self.pool)
        .await?;
        if deleted > 0 {
            tracing::debug!(deleted, "entity retention pruned index rows");
        }
        Ok(u64::try_from(deleted).unwrap_or(0))
    }
}

/// Takes the oldest committed outbox rows, as events to append, and how
/// many rows went. A row that is not a valid event (`pushlog.publish`
/// checks the same rules, so only a row written by hand) is dropped with an
/// error in the log.
async fn take_outbox(conn: &mut PgConnection) -> Result<(Vec<NewEvent>, usize), StoreError> {
    let mut rows: Vec<(i64, String)> = sqlx::query_as(
        "DELETE FROM pushlog.outbox WHERE seq IN (
             SELECT seq FROM pushlog.outbox ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED)
         RETURNING seq, draft::text",
    )
    .bind(RELAY_BATCH)
    .fetch_all(&mut *conn)
    .await?;
    rows.sort_unstable_by_key(|(seq, _)| *seq);
    let taken = rows.len();
    let events = rows
        .into_iter()
        .filter_map(|(seq, draft)| {
            // The application is trusted with the payload's size and depth:
            // it shares the database, and nobody could be told of a refusal.
            let event = serde_json::from_str::<EventDraft>(&draft)
                .map_err(|error| error.to_string())
                .and_then(|draft| {
                    draft
                        .validate(PayloadRules::TRUSTED)
                        .map_err(|e| e.to_string())
                });
            event
                .inspect_err(|error| tracing::error!(seq, %error, "an outbox row is not an event"))
                .ok()
        })
        .collect();
    Ok((events, taken))
}

async fn find_by_keys(conn: &mut PgConnection, keys: &[String]) -> Result<Vec<Event>, StoreError> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let rows = sqlx::query(AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM pushlog.events WHERE idem_key = ANY($1)"
    )))
    .bind(keys)
    .fetch_all(conn)
    .await?;
    rows.iter().map(event_from_row).collect()
}

/// Inserts events whose ids are assigned, moves the head to the last of
/// them and notifies `HEAD_CHANNEL` of it (delivered on commit): one
/// statement whatever their number, with one array per column.
async fn insert(conn: &mut PgConnection, events: &[Event]) -> Result<(), StoreError> {
    let Some(last) = events.last() else {
        return Ok(());
    };
    let mut columns = Columns::default();
    for event in events {
        columns.ids.push(event.id.get());
        columns.push_content(
            &event.topic,
            &event.kind,
            event.entity.as_ref(),
            event.payload.as_deref(),
            event.audience.as_ref(),
        );
        columns.keys.push(event.key.clone());
        columns.created.push(event.timestamp.timestamp_millis());
    }
    sqlx::query(AssertSqlSafe(format!(
        "WITH inserted AS (
             INSERT INTO pushlog.events ({COLUMNS}) SELECT * FROM UNNEST(
                 $1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[],
                 $6::text[], $7::text[], $8::text[], $9::text[], $10::bigint[])),
         moved AS (
             UPDATE pushlog.log_head SET head = $11, last_timestamp = $12
             WHERE singleton RETURNING head)
         SELECT pg_notify($13, head::text) FROM moved"
    )))
    .bind(columns.ids)
    .bind(columns.topics)
    .bind(columns.kinds)
    .bind(columns.entity_kinds)
    .bind(columns.entity_ids)
    .bind(columns.entity_ops)
    .bind(columns.payloads)
    .bind(columns.audiences)
    .bind(columns.keys)
    .bind(columns.created)
    .bind(last.id.get())
    .bind(last.timestamp.timestamp_millis())
    .bind(HEAD_CHANNEL)
    .execute(conn)
    .await?;
    Ok(())
}

/// Events as one array per column, for `UNNEST`.
#[derive(Default)]
struct Columns {
    ids: Vec<i64>,
    topics: Vec<String>,
    kinds: Vec<String>,
    entity_kinds: Vec<Option<String>>,
    entity_ids: Vec<Option<String>>,
    entity_ops: Vec<Option<String>>,
    payloads: Vec<Option<String>>,
    audiences: Vec<Option<String>>,
    keys: Vec<Option<String>>,
    created: Vec<i64>,
}

impl Columns {
    /// What a stored event and a new one have in common.
    fn push_content(
        &mut self,
        topic: &Topic,
        kind: &str,
        entity: Option<&Entity>,
        payload: Option<&RawValue>,
        audience: Option<&Audience>,
    ) {
        self.topics.push(topic.as_str().to_owned());
        self.kinds.push(kind.to_owned());
        self.entity_kinds.push(entity.map(|e| e.kind.clone()));
        self.entity_ids.push(entity.map(|e| e.id.clone()));
        self.entity_ops
            .push(entity.map(|e| e.op.as_str().to_owned()));
        self.payloads.push(payload.map(|p| p.get().to_owned()));
        self.audiences
            .push(audience.map(|a| serde_json::to_string(a).unwrap_or_default()));
    }
}
