//! The event log: durable, append-only, ordered by id.
//!
//! Writes go through one writer task ([`writer`]) that owns the only write
//! connection and commits concurrent publishes together (group commit), so
//! ids are assigned under no lock but the writer's own sequence and commit
//! order equals id order. Reads use a separate pool and never block writes
//! (SQLite WAL).
//!
//! The log announces what it commits on a [`CommittedEvents`] channel; the hub
//! listens to that, not to the publish handler, so a later backend whose
//! events are committed elsewhere (another node on a shared database) can feed
//! the same channel.

mod position;
mod sqlite;
mod writer;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};

pub(crate) use position::LogPosition;
pub use position::{LogBounds, Resolution};
pub use writer::{AppendRejected, Appended, CommittedEvents, PublishedEvent};

use crate::cursor::Since;
use crate::event::{Event, EventId, NewEvent, TopicPattern};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error")]
    Database(#[from] sqlx::Error),
    #[error("migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database URL {0:?}: use sqlite://PATH")]
    UnsupportedUrl(String),
    #[error("the log writer has stopped")]
    WriterGone,
    #[error("the transaction did not commit; nothing was appended")]
    CommitFailed,
    #[error("stored row {id} is corrupt: {reason}")]
    CorruptRow { id: i64, reason: String },
}

#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error(transparent)]
    Rejected(#[from] AppendRejected),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How long events are kept. Either bound, or both, may be set; an event is
/// deleted once it is outside any of them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    pub max_age: Option<Duration>,
    pub max_events: Option<u64>,
}

/// Handle to the log, cheap to clone.
#[derive(Clone)]
pub struct EventLog {
    reader: sqlite::Reader,
    writer: mpsc::Sender<writer::Command>,
    position: Arc<LogPosition>,
}

/// What opening the log hands back besides the handle: the committed-event
/// stream for the hub, and the writer task to await on shutdown.
pub struct OpenedLog {
    pub log: EventLog,
    pub committed: CommittedEvents,
    pub writer_task: tokio::task::JoinHandle<()>,
}

impl EventLog {
    pub async fn open(database_url: &str) -> Result<OpenedLog, StoreError> {
        let (reader, write_conn, position) = sqlite::open(database_url).await?;
        let position = Arc::new(position);
        let (commands, committed, writer_task) = writer::spawn(write_conn, position.clone());
        Ok(OpenedLog {
            log: EventLog {
                reader,
                writer: commands,
                position,
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
        self.writer
            .send(writer::Command::Append { events, reply })
            .await
            .map_err(|_| StoreError::WriterGone)?;
        answer.await.map_err(|_| StoreError::WriterGone)?
    }

    /// Deletes one batch of events that `retention` no longer keeps; returns
    /// how many. Call until it returns 0.
    pub async fn prune_batch(&self, retention: Retention, batch: u32) -> Result<u64, StoreError> {
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
    pub async fn resolve(&self, since: Since) -> Result<Resolution, StoreError> {
        let id = match since {
            Since::Id(id) => id,
            Since::Time(t) => match self.reader.last_id_at_or_before(t).await? {
                Some(id) => id,
                None => {
                    let bounds = self.bounds();
                    if bounds.pruned_through_at <= t.timestamp_millis() {
                        bounds.pruned_through
                    } else {
                        return Ok(Resolution::Expired(bounds));
                    }
                }
            },
        };
        Ok(self.bounds().check(id))
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
        self.reader.read_range(after, until, topics, limit).await
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.reader.ping().await
    }

    pub async fn close(&self) {
        self.reader.close().await;
    }
}

pub(crate) fn now_millis() -> i64 {
    Utc::now().timestamp_millis()
}

pub(crate) fn millis_to_datetime(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}
