//! What changed while a client was away, one entry per entity: the latest
//! event it may read of each entity changed after its cursor, read from the
//! entity index, which outlives the log.
//!
//! A cache needs to know which entities to refetch, not every change they
//! went through, so a cursor the log can no longer serve can usually still
//! be served here. The index keeps one row per entity and audience; a row
//! is the entity's latest for a reader unless a newer row of the same
//! entity is one the reader may read too (`superseded`, checked against the
//! newer rows themselves, which is rare: it takes events of one entity
//! addressed to different audiences).

use std::sync::Arc;

use crate::event::EventId;
use crate::hub::Filter;
use crate::replay::Unresumable;
use crate::store::{EventLog, IndexedEvent, LogBounds, StoreError};
use crate::wire::SharedEvent;

/// The latest readable events of entities changed after a cursor, in id
/// order, at most a page's worth.
#[derive(Debug)]
pub struct ChangesPage {
    pub events: Vec<Arc<SharedEvent>>,
    /// Every entity changed up to this id is in `events` or concerns no one
    /// the filter admits: the cursor for the next page.
    pub covered_through: EventId,
    /// Whether entity changes after `covered_through` (up to `until`) remain.
    pub has_more: bool,
    /// Whether the log still holds every event after the cursor: when not,
    /// events without an entity (notifications) may be gone for good.
    pub log_complete: bool,
}

/// Reads one page of changes after `after`, up to `until`; or says the
/// index has aged out rows after `after`. `after` of zero asks for the
/// initial state: the latest event of every entity the index holds, which
/// is served whatever has aged out (entities unchanged for longer than the
/// entity retention are not in it).
pub async fn read_changes(
    log: &EventLog,
    filter: &Filter,
    after: EventId,
    until: EventId,
    limit: u32,
) -> Result<Result<ChangesPage, Unresumable>, StoreError> {
    let mut events = Vec::new();
    let mut scanned_to = after;
    let mut has_more = false;
    'pages: loop {
        let rows = log
            .read_entity_range(scanned_to, until, &filter.patterns, limit)
            .await?;
        let exhausted = rows.len() < limit as usize;
        for row in rows {
            scanned_to = row.event.id;
            if filter.admits(&row.event) && is_latest_for(log, filter, &row).await? {
                events.push(Arc::new(SharedEvent::new(row.event)));
                if events.len() == limit as usize {
                    has_more = scanned_to < until;
                    break 'pages;
                }
            }
        }
        if exhausted {
            scanned_to = until;
            break;
        }
    }
    // Checked after reading, never before: the marks rise in the
    // transactions that delete, so a read across a delete is caught here.
    let aged_out_through = log.entities_pruned_through().await?;
    let bounds = log.bounds();
    if after != EventId::ZERO && after < aged_out_through {
        return Ok(Err(Unresumable::Expired(LogBounds {
            pruned_through: aged_out_through,
            ..bounds
        })));
    }
    Ok(Ok(ChangesPage {
        events,
        covered_through: scanned_to,
        has_more,
        log_complete: after >= bounds.pruned_through,
    }))
}

/// Whether `row` is its entity's latest event for the filter's reader: no
/// newer row of the same entity is one the reader may read.
async fn is_latest_for(
    log: &EventLog,
    filter: &Filter,
    row: &IndexedEvent,
) -> Result<bool, StoreError> {
    if !row.superseded {
        return Ok(true);
    }
    let Some(entity) = &row.event.entity else {
        return Ok(true);
    };
    let newer = log
        .newer_variants(&row.event.topic, entity, row.event.id)
        .await?;
    Ok(!newer.iter().any(|event| filter.principal.may_read(event)))
}
