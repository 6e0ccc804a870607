//! What changed while a client was away, one entry per entity: the latest
//! event it may read of each entity changed after its cursor, read from the
//! entity index, which outlives the log.
//!
//! A cache needs to know which entities to refetch, not every change they
//! went through, so a cursor the log can no longer serve can usually still
//! be served here. The index keeps one row per entity and audience, and
//! takes in the log's events a moment after they commit; the entity events
//! after its mark (the tail) come from the log in the same read and are
//! merged in: a tail event supersedes the index's row for its entity and
//! audience. A row is the entity's latest for a reader unless a newer
//! event of the same entity for another audience is one the reader may
//! read too (rare: it takes one entity's events addressed to different
//! audiences).

use std::collections::HashMap;
use std::sync::Arc;

use crate::domain::event::{Event, EventId};
use crate::domain::filter::Filter;
use crate::domain::resume::{LogBounds, Unresumable};
use crate::domain::wire::SharedEvent;
use crate::store::{EventLog, IndexedEvent, ReadError, StoreError};

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
) -> Result<ChangesPage, ReadError> {
    let mut events = Vec::new();
    let mut scanned_to = after;
    let has_more;
    'pages: loop {
        let page = log
            .read_entity_page(scanned_to, until, &filter.patterns, limit)
            .await?;
        let tail = Tail::latest_of(page.tail);
        let indexed_exhausted = page.indexed.len() < limit as usize;
        for row in page.indexed {
            scanned_to = row.event.id;
            if filter.admits(&row.event)
                && !tail.supersedes(&row.event, filter)
                && is_latest_for(log, filter, &row).await?
            {
                events.push(Arc::new(SharedEvent::new(row.event)));
                if events.len() == limit as usize {
                    has_more = scanned_to < until;
                    break 'pages;
                }
            }
        }
        if !indexed_exhausted {
            continue;
        }
        for event in tail.in_id_order() {
            scanned_to = event.id;
            if filter.admits(event) && !tail.supersedes(event, filter) {
                events.push(Arc::new(SharedEvent::new(event.clone())));
                if events.len() == limit as usize {
                    has_more = scanned_to < until;
                    break 'pages;
                }
            }
        }
        scanned_to = page.read_through;
        has_more = page.read_through < until;
        break;
    }
    // Checked after reading, never before: the marks rise in the
    // transactions that delete, so a read across a delete is caught here.
    let aged_out_through = log.entities_pruned_through().await?;
    let bounds = log.bounds();
    if after != EventId::ZERO && after < aged_out_through {
        return Err(Unresumable::Expired(LogBounds {
            pruned_through: aged_out_through,
            ..bounds
        })
        .into());
    }
    Ok(ChangesPage {
        events,
        covered_through: scanned_to,
        has_more,
        log_complete: after >= bounds.pruned_through,
    })
}

/// The latest tail event of each entity and audience, by entity.
struct Tail {
    /// By (topic, kind, id): the latest event for each audience (as
    /// stored), usually one.
    latest: HashMap<(String, String, String), Vec<(String, Event)>>,
}

impl Tail {
    fn latest_of(events: Vec<Event>) -> Tail {
        let mut latest: HashMap<_, Vec<(String, Event)>> = HashMap::new();
        for event in events {
            let Some((entity, audience)) = keys(&event) else {
                continue;
            };
            let variants = latest.entry(entity).or_default();
            // In id order: a later event replaces an earlier one.
            match variants.iter_mut().find(|(a, _)| *a == audience) {
                Some(variant) => variant.1 = event,
                None => variants.push((audience, event)),
            }
        }
        Tail { latest }
    }

    fn in_id_order(&self) -> Vec<&Event> {
        let mut events: Vec<&Event> = self
            .latest
            .values()
            .flat_map(|variants| variants.iter().map(|(_, event)| event))
            .collect();
        events.sort_unstable_by_key(|event| event.id);
        events
    }

    /// Whether the tail holds a newer event of `event`'s entity that makes
    /// it not the latest for the filter's reader: one for the same audience,
    /// or one for another audience the reader may read.
    fn supersedes(&self, event: &Event, filter: &Filter) -> bool {
        if self.latest.is_empty() {
            // The usual case: the index has taken in everything up to the head.
            return false;
        }
        let Some((entity, audience)) = keys(event) else {
            return false;
        };
        self.latest.get(&entity).is_some_and(|variants| {
            variants.iter().any(|(a, newer)| {
                newer.id > event.id && (*a == audience || filter.scope.may_read(newer))
            })
        })
    }
}

/// (topic, kind, id) and the audience as stored: the index keeps one row
/// per entity and audience.
fn keys(event: &Event) -> Option<((String, String, String), String)> {
    let entity = event.entity.as_ref()?;
    let audience = event
        .audience
        .as_ref()
        .map(|audience| serde_json::to_string(audience).unwrap_or_default())
        .unwrap_or_default();
    Some((
        (
            event.topic.as_str().to_owned(),
            entity.kind.clone(),
            entity.id.clone(),
        ),
        audience,
    ))
}

/// Whether `row` is its entity's latest event for the filter's reader: no
/// newer row of the same entity in the index is one the reader may read.
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
    Ok(!newer.iter().any(|event| filter.scope.may_read(event)))
}
