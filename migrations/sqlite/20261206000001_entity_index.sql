-- The entity index: for each entity (topic, kind, id) the latest event of
-- each audience it was addressed to. `GET /events/changes` reads it, so a
-- client away longer than the log keeps learns which entities changed
-- instead of refetching everything it caches.
--
-- Keyed by audience too: if the latest event of an entity is addressed to
-- someone else, a reader must still learn of the latest one it may read.
-- Rows are whole copies of the events, because retention deletes the
-- originals: a row is `archived` once the log no longer holds its event,
-- and from then on it is what serves that entity, for
-- PUSHLOG_ENTITY_RETENTION.
--
-- Each append upserts a row per entity event in its own transaction (see
-- `sqlite.rs`), and that is the index's whole cost on the append path: an
-- in-place update of one row of this table. Reading in id order needs an
-- index on `id`, which every change of an entity would have to delete from
-- and insert into; so only archived rows are indexed by id, and the rows
-- whose events are still in the log are found by a scan of this table,
-- which has one row per entity, the sort keeping only a page.
CREATE TABLE entity_index (
    topic        TEXT    NOT NULL,
    entity_kind  TEXT    NOT NULL,
    entity_id    TEXT    NOT NULL,
    audience_key TEXT    NOT NULL,   -- `audience`, or '' for everyone
    id           INTEGER NOT NULL,
    type         TEXT    NOT NULL,
    entity_op    TEXT    NOT NULL,
    payload      TEXT,
    audience     TEXT,
    idem_key     TEXT,
    created_at   INTEGER NOT NULL,
    archived     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (topic, entity_kind, entity_id, audience_key)
) WITHOUT ROWID;

-- Archived rows in id order: pages older than the log, and entity
-- retention, which takes them oldest first (`created_at` never decreases
-- with `id`, so what has aged out is a prefix).
CREATE INDEX entity_index_archived ON entity_index (id) WHERE archived;

-- The events already in the log, latest per entity and audience.
INSERT INTO entity_index (topic, entity_kind, entity_id, audience_key, id, type, entity_op,
                          payload, audience, idem_key, created_at)
SELECT topic, entity_kind, entity_id, COALESCE(audience, ''), id, type, entity_op, payload,
       audience, idem_key, created_at
FROM (SELECT *, ROW_NUMBER() OVER (
          PARTITION BY topic, entity_kind, entity_id, COALESCE(audience, '')
          ORDER BY id DESC) AS newest
      FROM events WHERE entity_kind IS NOT NULL)
WHERE newest = 1;

-- How far entity retention has deleted: a `since` below it may have missed
-- an entity whose row aged out. Entities of events the log had pruned
-- before this index existed were never indexed, so it starts at the log's
-- own mark.
ALTER TABLE log_meta ADD COLUMN entities_pruned_through INTEGER NOT NULL DEFAULT 0;
UPDATE log_meta SET entities_pruned_through = pruned_through;
