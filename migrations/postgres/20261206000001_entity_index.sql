-- The entity index: for each entity (topic, kind, id) the latest event of
-- each audience it was addressed to; `GET /events/changes` reads it. The
-- layout and its reasons are those of the SQLite migration: whole copies
-- of the events, `archived` once the log has pruned the event, and an id
-- index over archived rows only, so that an entity change costs the append
-- one in-place row update.
CREATE TABLE pushlog.entity_index (
    topic        TEXT    COLLATE "C" NOT NULL,
    entity_kind  TEXT    NOT NULL,
    entity_id    TEXT    NOT NULL,
    audience_key TEXT    NOT NULL,   -- `audience`, or '' for everyone
    id           BIGINT  NOT NULL,
    type         TEXT    NOT NULL,
    entity_op    TEXT    NOT NULL,
    payload      TEXT,
    audience     TEXT,
    idem_key     TEXT,
    created_at   BIGINT  NOT NULL,
    archived     BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (topic, entity_kind, entity_id, audience_key)
);

CREATE INDEX entity_index_archived ON pushlog.entity_index (id) WHERE archived;

-- Kept in the append's own transaction by the database, so both writer
-- statements and the outbox relay keep it.
CREATE FUNCTION pushlog.index_entity() RETURNS TRIGGER
LANGUAGE plpgsql
SET search_path = pushlog, pg_temp
AS $$
BEGIN
    INSERT INTO entity_index AS current (topic, entity_kind, entity_id, audience_key, id, type,
                                         entity_op, payload, audience, idem_key, created_at)
    VALUES (NEW.topic, NEW.entity_kind, NEW.entity_id, COALESCE(NEW.audience, ''), NEW.id,
            NEW.type, NEW.entity_op, NEW.payload, NEW.audience, NEW.idem_key, NEW.created_at)
    ON CONFLICT (topic, entity_kind, entity_id, audience_key) DO UPDATE SET
        id = excluded.id, type = excluded.type, entity_op = excluded.entity_op,
        payload = excluded.payload, audience = excluded.audience,
        idem_key = excluded.idem_key, created_at = excluded.created_at, archived = FALSE
    WHERE excluded.id > current.id;
    RETURN NULL;
END
$$;

CREATE TRIGGER events_index_entity AFTER INSERT ON pushlog.events
FOR EACH ROW WHEN (NEW.entity_kind IS NOT NULL)
EXECUTE FUNCTION pushlog.index_entity();

-- The events already in the log, latest per entity and audience.
INSERT INTO pushlog.entity_index (topic, entity_kind, entity_id, audience_key, id, type,
                                  entity_op, payload, audience, idem_key, created_at)
SELECT DISTINCT ON (topic, entity_kind, entity_id, COALESCE(audience, ''))
       topic, entity_kind, entity_id, COALESCE(audience, ''), id, type, entity_op, payload,
       audience, idem_key, created_at
FROM pushlog.events WHERE entity_kind IS NOT NULL
ORDER BY topic, entity_kind, entity_id, COALESCE(audience, ''), id DESC;

-- How far entity retention has deleted (see the SQLite migration).
ALTER TABLE pushlog.log_head ADD COLUMN entities_pruned_through BIGINT NOT NULL DEFAULT 0;
UPDATE pushlog.log_head SET entities_pruned_through = pruned_through;
