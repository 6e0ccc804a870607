//! What both backends share about rows: the columns of an event, the range
//! query, the entity index's reads and upsert, how topic patterns become a
//! `WHERE` clause, and how a row becomes an [`Event`].

use serde_json::value::RawValue;
use sqlx::{ColumnIndex, Database, Decode, Encode, IntoArguments, QueryBuilder, Row, Type};

use super::{StoreError, millis_to_datetime};
use crate::domain::event::{Audience, Entity, EntityOp, Event, EventId, Topic, TopicPattern};

/// The `events` table's columns, in the order inserts bind them.
pub(super) const COLUMNS: &str =
    "id, topic, type, entity_kind, entity_id, entity_op, payload, audience, idem_key, created_at";

/// `SELECT` the events of `table` with `after < id <= until` on `topics`,
/// in id order, at most `limit`.
pub(super) fn range_query<DB>(
    table: &str,
    after: EventId,
    until: EventId,
    topics: &[TopicPattern],
    limit: u32,
) -> QueryBuilder<DB>
where
    DB: Database,
    i64: for<'q> Encode<'q, DB> + Type<DB>,
    String: for<'q> Encode<'q, DB> + Type<DB>,
{
    let mut query = QueryBuilder::new(format!("SELECT {COLUMNS} FROM {table} WHERE id > "));
    query.push_bind(after.get());
    query.push(" AND id <= ");
    query.push_bind(until.get());
    push_topic_filter(&mut query, topics);
    query.push(" ORDER BY id LIMIT ");
    query.push_bind(i64::from(limit));
    query
}

/// One read of the entity index: its rows, and the entity events after its
/// mark, which the log holds and the index takes in a moment later.
#[derive(Debug)]
pub struct EntityPage {
    /// Rows of the index, in id order; at most the limit asked for.
    pub indexed: Vec<IndexedEvent>,
    /// Every event up to this id is in the index.
    pub indexed_through: EventId,
    /// The entity events after the mark (and the cursor), in id order, up
    /// to `read_through`.
    pub tail: Vec<Event>,
    /// The page's view ends here: the end asked for, or less when the tail
    /// was longer than [`MAX_TAIL`] (the index is behind the log: it takes
    /// events in every few seconds, so only a stalled writer lets it fall
    /// that far) and the page stops at the last event read.
    pub read_through: EventId,
}

/// The latest event of one entity for one audience, as the entity index
/// knows it.
#[derive(Debug)]
pub struct IndexedEvent {
    pub event: Event,
    /// The same entity has a newer row, addressed to another audience.
    pub superseded: bool,
}

/// The entity index's upsert, for an `INSERT INTO <index> AS current …`
/// of rows in its columns: a row replaces the one for its entity and
/// audience only if it is newer. Both backends take the log's events in with
/// it, so they keep the same columns the same way.
pub(super) const ENTITY_INDEX_UPSERT: &str = "ON CONFLICT (topic, entity_kind, entity_id, audience_key) DO UPDATE SET \
     id = excluded.id, type = excluded.type, entity_op = excluded.entity_op, \
     payload = excluded.payload, audience = excluded.audience, \
     idem_key = excluded.idem_key, created_at = excluded.created_at \
     WHERE excluded.id > current.id";

/// `SELECT` the rows of the entity index `index` with `after < id <= until`
/// on `topics`, in id order, at most `limit`, each with `superseded`:
/// whether the same entity has a newer row for another audience, which is
/// the latest only for readers who may read it; the caller decides (one
/// step down the primary key).
fn entity_range_query<DB>(
    index: &str,
    after: EventId,
    until: EventId,
    topics: &[TopicPattern],
    limit: u32,
) -> QueryBuilder<DB>
where
    DB: Database,
    i64: for<'q> Encode<'q, DB> + Type<DB>,
    String: for<'q> Encode<'q, DB> + Type<DB>,
{
    let mut query = QueryBuilder::new(format!(
        "SELECT {COLUMNS}, EXISTS (SELECT 1 FROM {index} AS newer \
             WHERE newer.topic = latest.topic AND newer.entity_kind = latest.entity_kind \
             AND newer.entity_id = latest.entity_id AND newer.id > latest.id) AS superseded \
         FROM {index} AS latest WHERE id > "
    ));
    query.push_bind(after.get());
    query.push(" AND id <= ");
    query.push_bind(until.get());
    push_topic_filter(&mut query, topics);
    query.push(" ORDER BY id LIMIT ");
    query.push_bind(i64::from(limit));
    query
}

/// Log rows one read of the entity index takes past its mark, at most: a
/// request's memory stays bounded however far the index has fallen behind.
pub const MAX_TAIL: u32 = 50_000;

/// The tables and the mark a read of the entity index involves.
pub(super) struct EntityTables {
    pub events: &'static str,
    pub index: &'static str,
    /// A query for the index's mark: every event up to it is indexed.
    pub indexed_through: &'static str,
}

/// One read of the entity index for `after < id <= until` on `topics`, in
/// one snapshot `conn` holds: at most `limit` of its rows, and the events
/// after its mark that the log holds and the index has not taken in yet,
/// which the caller merges in (see [`EntityPage`]).
pub(super) async fn read_entity_page<DB>(
    conn: &mut DB::Connection,
    tables: &EntityTables,
    after: EventId,
    until: EventId,
    topics: &[TopicPattern],
    limit: u32,
) -> Result<EntityPage, StoreError>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    i64: for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    String: for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    bool: for<'r> Decode<'r, DB> + Type<DB>,
    for<'a> &'a str: ColumnIndex<DB::Row>,
    usize: ColumnIndex<DB::Row>,
{
    let indexed_through: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(tables.indexed_through))
        .fetch_one(&mut *conn)
        .await?;
    let indexed_through = EventId::new(indexed_through).unwrap_or(EventId::ZERO);
    let mut indexed = Vec::new();
    if after < indexed_through.min(until) {
        let mut query = entity_range_query::<DB>(
            tables.index,
            after,
            indexed_through.min(until),
            topics,
            limit,
        );
        for row in query.build().fetch_all(&mut *conn).await? {
            indexed.push(IndexedEvent {
                event: event_from_row(&row)?,
                superseded: row.try_get("superseded")?,
            });
        }
    }
    let mut tail = Vec::new();
    let mut read_through = until;
    let tail_after = after.max(indexed_through);
    if tail_after < until {
        let mut query = range_query::<DB>(tables.events, tail_after, until, topics, MAX_TAIL);
        let rows = query.build().fetch_all(&mut *conn).await?;
        let cut_short = rows.len() == MAX_TAIL as usize;
        for row in rows {
            let event = event_from_row(&row)?;
            if cut_short {
                read_through = event.id;
            }
            if event.entity.is_some() {
                tail.push(event);
            }
        }
    }
    Ok(EntityPage {
        indexed,
        indexed_through,
        tail,
        read_through,
    })
}

/// `SELECT` the rows of the entity index `table` for `entity` on `topic`
/// newer than `id`: the other audiences' latest events.
pub(super) fn newer_variants_query<DB>(
    table: &str,
    topic: &Topic,
    entity: &Entity,
    id: EventId,
) -> QueryBuilder<DB>
where
    DB: Database,
    i64: for<'q> Encode<'q, DB> + Type<DB>,
    String: for<'q> Encode<'q, DB> + Type<DB>,
{
    let mut query = QueryBuilder::new(format!("SELECT {COLUMNS} FROM {table} WHERE topic = "));
    query.push_bind(topic.as_str().to_owned());
    query.push(" AND entity_kind = ");
    query.push_bind(entity.kind.clone());
    query.push(" AND entity_id = ");
    query.push_bind(entity.id.clone());
    query.push(" AND id > ");
    query.push_bind(id.get());
    query.push(" ORDER BY id");
    query
}

/// `AND (topic = ? OR topic >= ? AND topic < ? …)`. Prefixes become ranges so
/// the `(topic, id)` index serves them; `*` needs no filter at all.
fn push_topic_filter<DB>(query: &mut QueryBuilder<DB>, topics: &[TopicPattern])
where
    DB: Database,
    String: for<'q> Encode<'q, DB> + Type<DB>,
{
    if topics.iter().any(|p| matches!(p, TopicPattern::All)) {
        return;
    }
    query.push(" AND (");
    for (i, pattern) in topics.iter().enumerate() {
        if i > 0 {
            query.push(" OR ");
        }
        match pattern {
            TopicPattern::Exact(topic) => {
                query.push("topic = ");
                query.push_bind(topic.as_str().to_owned());
            }
            TopicPattern::Prefix(prefix) => {
                query.push("(topic >= ");
                query.push_bind(prefix.clone());
                query.push(" AND topic < ");
                query.push_bind(prefix_upper_bound(prefix));
                query.push(")");
            }
            TopicPattern::All => unreachable!("handled above"),
        }
    }
    query.push(")");
}

/// The smallest string greater than every string starting with `prefix`.
/// Topic characters are ASCII below `~`, so bumping the last byte is enough.
fn prefix_upper_bound(prefix: &str) -> String {
    let mut bytes = prefix.as_bytes().to_vec();
    if let Some(last) = bytes.last_mut() {
        *last += 1;
    }
    String::from_utf8(bytes).unwrap_or_else(|_| prefix.to_owned())
}

pub(super) fn event_from_row<'r, R>(row: &'r R) -> Result<Event, StoreError>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
{
    let id: i64 = row.try_get("id")?;
    let corrupt = |reason: String| StoreError::CorruptRow { id, reason };
    let entity = match (
        row.try_get::<Option<String>, _>("entity_kind")?,
        row.try_get::<Option<String>, _>("entity_id")?,
        row.try_get::<Option<String>, _>("entity_op")?,
    ) {
        (Some(kind), Some(entity_id), Some(op)) => Some(Entity {
            kind,
            id: entity_id,
            op: EntityOp::parse(&op).ok_or_else(|| corrupt(format!("entity_op {op:?}")))?,
        }),
        _ => None,
    };
    let payload = match row.try_get::<Option<String>, _>("payload")? {
        Some(text) => Some(RawValue::from_string(text).map_err(|e| corrupt(e.to_string()))?),
        None => None,
    };
    let audience = match row.try_get::<Option<String>, _>("audience")? {
        Some(text) => {
            Some(serde_json::from_str::<Audience>(&text).map_err(|e| corrupt(e.to_string()))?)
        }
        None => None,
    };
    Ok(Event {
        id: EventId::new(id).ok_or_else(|| corrupt("negative id".into()))?,
        topic: Topic::from_trusted(row.try_get("topic")?),
        kind: row.try_get("type")?,
        entity,
        payload,
        audience,
        timestamp: millis_to_datetime(row.try_get("created_at")?),
        key: row.try_get("idem_key")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ranges_cover_exactly_the_prefix() {
        assert_eq!(prefix_upper_bound("device:"), "device;");
        assert!("device:zzz" < "device;");
        assert!("device:" >= "device:");
    }
}
