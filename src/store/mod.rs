//! The event log: durable, append-only, ordered by id. Embedded in SQLite
//! (one node), or shared in PostgreSQL by several nodes.
//!
//! Writes go through one writer task per node ([`writer`]) that commits
//! concurrent publishes together (group commit) and assigns ids under the
//! log's write lock, so commit order equals id order on either backend.
//! Reads use a separate pool and never block writes.
//!
//! The log announces what it commits on a [`CommittedEvents`] channel; the
//! hub listens to that, not to the publish handler. On SQLite the writer
//! announces its own commits; on PostgreSQL a follower ([`follower`]) reads
//! what any node committed back from the log, in id order.

mod backend;
pub mod changes;
mod follower;
mod position;
mod postgres;
pub mod retention;
mod rows;
mod sqlite;
mod writer;

use crate::domain::resume::LogBounds;
use crate::metrics::Metrics;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{Notify, mpsc, oneshot};

pub use backend::Pruned;
pub(crate) use position::LogPosition;
pub use rows::{EntityPage, IndexedEvent};
pub use writer::{AppendRejected, Appended, CommittedEvents, PublishedEvent};

use crate::domain::cursor::Since;
use crate::domain::event::{Entity, Event, EventId, NewEvent, Topic, TopicPattern};
use crate::domain::resume::Unresumable;

/// Why a read from a client's cursor yields nothing: the cursor, which the
/// client must answer by refetching its state, or the log, which is ours.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Unresumable(#[from] Unresumable),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error")]
    Database(#[from] sqlx::Error),
    #[error("migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
    /// SQLite's own words ("unable to open database file") name no file,
    /// so a first run in the wrong directory could not tell which one.
    #[error("cannot open the SQLite database {}{}", path.display(), sqlite::open_hint(path, source))]
    SqliteOpen {
        path: std::path::PathBuf,
        #[source]
        source: sqlx::Error,
    },
    #[error("the log writer has stopped")]
    WriterGone,
    #[error("the transaction did not commit; nothing was appended")]
    CommitFailed,
    #[error("stored row {id} is corrupt: {reason}")]
    CorruptRow { id: i64, reason: String },
}

impl StoreError {
    /// Whether the database could not be reached (as opposed to refusing
    /// or failing a query): a condition that passes, worth a retry.
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            StoreError::Database(
                sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed
            )
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error(transparent)]
    Rejected(#[from] AppendRejected),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How long events are kept. Either bound, or both, may be set; an event is
/// deleted once it is outside any of them. The entity index keeps the latest
/// event of each entity by age alone, usually far longer than the log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    pub max_age: Option<Duration>,
    pub max_events: Option<u64>,
    pub entity_max_age: Option<Duration>,
}

/// Handle to the log, cheap to clone.
#[derive(Clone)]
pub struct EventLog {
    reader: Reader,
    writer: mpsc::Sender<writer::Command>,
    position: Arc<LogPosition>,
    /// Counts every failed read and write in `pushlog_store_errors`.
    metrics: Arc<Metrics>,
    /// Whether the writer's last write failed, for readiness.
    health: Arc<writer::WriteHealth>,
}

/// The read side of either backend.
#[derive(Clone)]
enum Reader {
    Sqlite(sqlite::Reader),
    Postgres(postgres::Reader),
}

/// What opening the log hands back besides the handle: the committed-event
/// stream for the hub, and the task to await on shutdown (the writer, and
/// on a shared log the follower after it).
pub struct OpenedLog {
    pub log: EventLog,
    pub committed: CommittedEvents,
    pub writer_task: tokio::task::JoinHandle<()>,
}

/// Committed batches the hub may fall behind by before the writer (or the
/// follower) waits.
const COMMITTED_QUEUE: usize = 1024;

impl EventLog {
    /// Opens the log `database_url` names: `sqlite://PATH` (embedded) or
    /// `postgres://…` (shared by several nodes).
    pub async fn open(database_url: &str, metrics: Arc<Metrics>) -> Result<OpenedLog, StoreError> {
        let (announce, committed) = mpsc::channel(COMMITTED_QUEUE);
        let poke = Arc::new(Notify::new());
        let health = Arc::new(writer::WriteHealth::default());
        if !postgres::is_postgres_url(database_url) {
            let (reader, backend, position) = sqlite::open(database_url).await?;
            let position = Arc::new(position);
            let (commands, writer_task) = writer::spawn(
                backend,
                position.clone(),
                poke,
                announce,
                metrics.clone(),
                health.clone(),
            );
            return Ok(OpenedLog {
                log: EventLog {
                    reader: Reader::Sqlite(reader),
                    writer: commands,
                    position,
                    metrics,
                    health,
                },
                committed,
                writer_task,
            });
        }
        let opened = postgres::open(database_url).await?;
        let (commands, writer) = writer::spawn(
            opened.writer,
            opened.position.clone(),
            poke.clone(),
            announce.clone(),
            metrics.clone(),
            health.clone(),
        );
        let follower = follower::Follower {
            reader: opened.follower_reader,
            listener_pool: opened.listener_pool,
            position: opened.position.clone(),
            announce,
            writer: commands.clone(),
            poke,
            dispatched: opened.position.bounds().head,
        };
        let (stop_follower, stopped) = oneshot::channel();
        let follower = tokio::spawn(follower.run(stopped));
        let writer_task = tokio::spawn(async move {
            let _ = writer.await;
            let _ = stop_follower.send(());
            let _ = follower.await;
        });
        Ok(OpenedLog {
            log: EventLog {
                reader: Reader::Postgres(opened.reader),
                writer: commands,
                position: opened.position,
                metrics,
                health,
            },
            committed,
            writer_task,
        })
    }

    /// Appends events atomically and durably: when this returns `Ok`, they are
    /// committed and fsynced. A retry with known idempotency keys returns the
    /// original events and appends nothing.
    pub async fn append(&self, events: Vec<NewEvent>) -> Result<Appended, AppendError> {
        let (reply, answer) = oneshot::channel();
        let appended = match self
            .writer
            .send(writer::Command::Append { events, reply })
            .await
        {
            Ok(()) => answer.await.unwrap_or(Err(StoreError::WriterGone.into())),
            Err(_) => Err(StoreError::WriterGone.into()),
        };
        if let Err(AppendError::Store(_)) = &appended {
            self.metrics.store_errors.inc();
        }
        appended
    }

    /// `result`, a failure counted.
    fn counted<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        if result.is_err() {
            self.metrics.store_errors.inc();
        }
        result
    }

    /// One step of retention: brings the entity index up to date with the
    /// log, or deletes one batch of what `retention` no longer keeps. Call
    /// until it finds nothing to do.
    pub async fn prune_batch(
        &self,
        retention: Retention,
        batch: u32,
    ) -> Result<Pruned, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.writer
            .send(writer::Command::Prune {
                retention,
                batch,
                reply,
            })
            .await
            .map_err(|_| StoreError::WriterGone)?;
        answer.await.map_err(|_| StoreError::WriterGone)?
    }

    /// Asks the writer to stop once everything queued before is committed.
    /// Appends after this fail with `WriterGone`.
    pub async fn stop_writer(&self) {
        let _ = self.writer.send(writer::Command::Stop).await;
    }

    /// The newest id and how far retention has deleted, as of now.
    pub fn bounds(&self) -> LogBounds {
        self.position.bounds()
    }

    /// Turns a client's cursor into an id the log can serve from, or says why
    /// it cannot.
    pub async fn resolve(&self, since: Since) -> Result<EventId, ReadError> {
        let resolved = self.resolve_uncounted(since).await;
        if let Err(ReadError::Store(_)) = resolved {
            self.metrics.store_errors.inc();
        }
        resolved
    }

    async fn resolve_uncounted(&self, since: Since) -> Result<EventId, ReadError> {
        let id = match since {
            Since::Id(id) => id,
            Since::Time(t) => match self.last_id_at_or_before(t).await? {
                Some(id) => id,
                None => {
                    let bounds = self.bounds();
                    if bounds.pruned_through_at <= t.timestamp_millis() {
                        bounds.pruned_through
                    } else {
                        return Err(Unresumable::Expired(bounds).into());
                    }
                }
            },
        };
        if let Reader::Postgres(reader) = &self.reader {
            // Other nodes append and prune too: a cursor from one of them
            // may be ahead of what this node's follower has read back, and a
            // reader who published through another node expects to find
            // its events here.
            reader.refresh_bounds().await?;
        }
        Ok(self.bounds().check(id)?)
    }

    async fn last_id_at_or_before(&self, t: DateTime<Utc>) -> Result<Option<EventId>, StoreError> {
        match &self.reader {
            Reader::Sqlite(reader) => reader.last_id_at_or_before(t).await,
            Reader::Postgres(reader) => reader.last_id_at_or_before(t).await,
        }
    }

    /// Events with `after < id <= until` on the given topics, in id order, at
    /// most `limit`. Audience is not filtered here: that is the reader's rule,
    /// applied by the caller the same way for live and replayed events.
    pub async fn read_range(
        &self,
        after: EventId,
        until: EventId,
        topics: &[TopicPattern],
        limit: u32,
    ) -> Result<Vec<Event>, StoreError> {
        let read = self.read_range_uncounted(after, until, topics, limit).await;
        self.counted(read)
    }

    async fn read_range_uncounted(
        &self,
        after: EventId,
        until: EventId,
        topics: &[TopicPattern],
        limit: u32,
    ) -> Result<Vec<Event>, StoreError> {
        match &self.reader {
            Reader::Sqlite(reader) => reader.read_range(after, until, topics, limit).await,
            Reader::Postgres(reader) => {
                let events = reader.read_range(after, until, topics, limit).await?;
                // After the rows, never before: other nodes prune too, and a
                // prune that deleted rows this read missed committed before
                // the read began, so this later look at the shared mark
                // sees it (read committed), and the caller's check of the
                // bounds after its read reports the gap.
                reader.refresh_bounds().await?;
                Ok(events)
            }
        }
    }

    /// One read of the entity index for `after < id <= until` on the given
    /// topics: at most `limit` of its rows, and the entity events after its
    /// mark (see [`EntityPage`]). Audience is the caller's to apply, as for
    /// `read_range`.
    pub async fn read_entity_page(
        &self,
        after: EventId,
        until: EventId,
        topics: &[TopicPattern],
        limit: u32,
    ) -> Result<EntityPage, StoreError> {
        let read = match &self.reader {
            Reader::Sqlite(reader) => reader.read_entity_page(after, until, topics, limit).await,
            Reader::Postgres(reader) => reader.read_entity_page(after, until, topics, limit).await,
        };
        self.counted(read)
    }

    /// The entity index's rows for `entity` on `topic` newer than `id`, for
    /// a row read as `superseded`.
    pub async fn newer_variants(
        &self,
        topic: &Topic,
        entity: &Entity,
        id: EventId,
    ) -> Result<Vec<Event>, StoreError> {
        let read = match &self.reader {
            Reader::Sqlite(reader) => reader.newer_variants(topic, entity, id).await,
            Reader::Postgres(reader) => reader.newer_variants(topic, entity, id).await,
        };
        self.counted(read)
    }

    /// Every entity index row up to this id has aged out: a cursor below it
    /// may have missed an entity. Read from the database, after the rows it
    /// vouches for: the mark rises in the transaction that deletes.
    pub async fn entities_pruned_through(&self) -> Result<EventId, StoreError> {
        let read = match &self.reader {
            Reader::Sqlite(reader) => reader.entities_pruned_through().await,
            Reader::Postgres(reader) => {
                let through = reader.entities_pruned_through().await;
                // The log's own mark, for `log_complete`, as `read_range` does.
                reader.refresh_bounds().await?;
                through
            }
        };
        self.counted(read)
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let answered = match &self.reader {
            Reader::Sqlite(reader) => reader.ping().await,
            Reader::Postgres(reader) => reader.ping().await,
        };
        self.counted(answered)
    }

    /// Whether the log can write. `Ok` at once while no write has failed
    /// since the last one that committed, so a healthy log pays one atomic
    /// load; after a failure the writer probes with a write of its own (see
    /// `WriteHealth`), so this turns `Ok` again by itself once the disk
    /// accepts writes. `CommitFailed` while it does not.
    pub async fn check_writable(&self) -> Result<(), StoreError> {
        if !self.health.is_failing() {
            return Ok(());
        }
        let (reply, answer) = oneshot::channel();
        self.writer
            .send(writer::Command::Probe { reply })
            .await
            .map_err(|_| StoreError::WriterGone)?;
        match answer.await {
            Ok(true) => Ok(()),
            Ok(false) => self.counted(Err(StoreError::CommitFailed)),
            Err(_) => Err(StoreError::WriterGone),
        }
    }

    pub async fn close(&self) {
        match &self.reader {
            Reader::Sqlite(reader) => reader.close().await,
            Reader::Postgres(reader) => reader.close().await,
        }
    }
}

pub(crate) fn now_millis() -> i64 {
    Utc::now().timestamp_millis()
}

pub(crate) fn millis_to_datetime(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}
