-- The entity index: for each entity (topic, kind, id) the latest event of
-- each audience it was addressed to; `GET /events/changes` reads it. The
-- layout and its reasons are those of the SQLite migration: whole copies of
-- the events, brought up to date from the log in batches by a node's
-- writer, with readers taking the events after `indexed_through` from the
-- log itself.
CREATE TABLE pushlog.entity_index (
    topic        TEXT   COLLATE "C" NOT NULL,
    entity_kind  TEXT   NOT NULL,
    entity_id    TEXT   NOT NULL,
    audience_key TEXT   NOT NULL,   -- `audience`, or '' for everyone
    id           BIGINT NOT NULL,
    type         TEXT   NOT NULL,
    entity_op    TEXT   NOT NULL,
    payload      TEXT,
    audience     TEXT,
    idem_key     TEXT,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (topic, entity_kind, entity_id, audience_key)
);

CREATE INDEX entity_index_id ON pushlog.entity_index (id);

-- The index's marks, one row. Nodes bring the index up to date under this
-- row's lock, not the log head's, so appends never wait for it.
CREATE TABLE pushlog.entity_index_marks (
    singleton       BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
    indexed_through BIGINT NOT NULL,  -- every event up to this id is in the index
    pruned_through  BIGINT NOT NULL   -- entity retention has deleted rows up to this id
);

-- The events already in the log, latest per entity and audience.
INSERT INTO pushlog.entity_index (topic, entity_kind, entity_id, audience_key, id, type,
                                  entity_op, payload, audience, idem_key, created_at)
SELECT DISTINCT ON (topic, entity_kind, entity_id, COALESCE(audience, ''))
       topic, entity_kind, entity_id, COALESCE(audience, ''), id, type, entity_op, payload,
       audience, idem_key, created_at
FROM pushlog.events WHERE entity_kind IS NOT NULL
ORDER BY topic, entity_kind, entity_id, COALESCE(audience, ''), id DESC;

INSERT INTO pushlog.entity_index_marks (singleton, indexed_through, pruned_through)
SELECT TRUE, head, pruned_through FROM pushlog.log_head;
