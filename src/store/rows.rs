//! What both backends share about rows: the columns of an event, how a row
//! becomes an [`Event`], and how topic patterns become a `WHERE` clause.

use serde_json::value::RawValue;
use sqlx::{ColumnIndex, Database, Decode, Encode, QueryBuilder, Row, Type};

use super::{StoreError, millis_to_datetime};
use crate::event::{Audience, Entity, EntityOp, Event, EventId, Topic, TopicPattern};

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
