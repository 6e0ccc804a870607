-- The entity index: for each entity (topic, kind, id) the latest event of
-- each audience it was addressed to. `GET /events/changes` reads it, so a
-- client away longer than the log keeps learns which entities changed
-- instead of refetching everything it caches.
--
-- Keyed by audience too: if the latest event of an entity is addressed to
-- someone else, a reader must still learn of the latest one it may read.
-- Rows are whole copies of the events, because retention deletes the
-- originals; they are kept for PUSHLOG_ENTITY_RETENTION.
--
-- The writer brings the index up to date from the log every few seconds
-- (`entities_indexed_through` below), one upsert per entity changed in the
-- meantime, and readers take the events after that mark from the log in
-- the same snapshot, so a read is exact all the same. An upsert in every
-- append's commit would write and fsync a page of this table per entity
-- event; a batch writes each page once (loadtests/RESULTS.md).
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
    PRIMARY KEY (topic, entity_kind, entity_id, audience_key)
) WITHOUT ROWID;

-- Pages from a cursor, in id order; entity retention takes the oldest rows
-- (`created_at` never decreases with `id`, so what has aged out is a
-- prefix).
CREATE INDEX entity_index_id ON entity_index (id);

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

-- `entities_indexed_through`: every event up to this id is in the index.
-- `entities_pruned_through`: entity retention has deleted index rows up to
-- this id, so a `since` below it may have missed an entity. Entities of
-- events the log had pruned before this index existed were never indexed,
-- so it starts at the log's own mark.
ALTER TABLE log_meta ADD COLUMN entities_indexed_through INTEGER NOT NULL DEFAULT 0;
ALTER TABLE log_meta ADD COLUMN entities_pruned_through INTEGER NOT NULL DEFAULT 0;
UPDATE log_meta SET
    entities_indexed_through = max(pruned_through, COALESCE((SELECT max(id) FROM events), 0)),
    entities_pruned_through = pruned_through;
