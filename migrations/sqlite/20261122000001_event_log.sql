-- The append-only event log.
--
-- AUTOINCREMENT, not a bare rowid: ids must never be reused, even after
-- retention has emptied the table, or old cursors would silently point at new
-- events.
CREATE TABLE events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    topic       TEXT    NOT NULL,
    type        TEXT    NOT NULL,
    entity_kind TEXT,
    entity_id   TEXT,
    entity_op   TEXT CHECK (entity_op IN ('created', 'updated', 'deleted')),
    payload     TEXT,              -- compact JSON text
    audience    TEXT,              -- JSON {"users":[…],"roles":[…]}
    idem_key    TEXT UNIQUE,       -- the publisher's idempotency key
    created_at  INTEGER NOT NULL   -- Unix milliseconds, never decreasing with id
);

-- Replay by topic from a cursor.
CREATE INDEX events_topic_id ON events (topic, id);
-- Timestamp cursors and age-based retention.
CREATE INDEX events_created_at ON events (created_at);

-- How far retention has deleted: cursors below `pruned_through` are expired.
-- One row, kept in the same transaction as the deletes.
CREATE TABLE log_meta (
    singleton          INTEGER PRIMARY KEY CHECK (singleton = 1),
    pruned_through     INTEGER NOT NULL,
    pruned_through_at  INTEGER NOT NULL
);
INSERT INTO log_meta (singleton, pruned_through, pruned_through_at) VALUES (1, 0, 0);
