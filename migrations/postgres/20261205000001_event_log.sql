-- The shared event log, for several pushlog nodes on one PostgreSQL.
-- Everything lives in the schema `pushlog` (created before migrations run,
-- so that sqlx's own bookkeeping table lands there too).

-- The append-only event log. Ids are assigned by the writers under the lock
-- on `log_head` (see below), never by a sequence: a sequence hands out ids
-- in call order, not commit order.
CREATE TABLE pushlog.events (
    id          BIGINT PRIMARY KEY,
    -- Byte order: a prefix pattern `device:*` is read as the range
    -- ['device:', 'device;'), which a language collation (that ignores
    -- punctuation) would not keep together.
    topic       TEXT   COLLATE "C" NOT NULL,
    type        TEXT   NOT NULL,
    entity_kind TEXT,
    entity_id   TEXT,
    entity_op   TEXT CHECK (entity_op IN ('created', 'updated', 'deleted')),
    payload     TEXT,              -- compact JSON text, exactly as pushed
    audience    TEXT,              -- JSON {"users":[…],"roles":[…]}
    idem_key    TEXT UNIQUE,       -- the publisher's idempotency key
    created_at  BIGINT NOT NULL    -- Unix milliseconds, never decreasing with id
);

-- Replay by topic from a cursor.
CREATE INDEX events_topic_id ON pushlog.events (topic, id);
-- Timestamp cursors and age-based retention.
CREATE INDEX events_created_at ON pushlog.events (created_at);

-- Where the log ends and where retention has cut it. One row. A writer
-- locks it (`SELECT … FOR UPDATE`) before it assigns ids and keeps the lock
-- until its transaction commits, so transactions that append commit one
-- after another, in id order: no reader can ever see id N+1 while N is
-- still uncommitted. Pruning takes the same lock.
CREATE TABLE pushlog.log_head (
    singleton         BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
    head              BIGINT NOT NULL,  -- the last id assigned (and committed)
    last_timestamp    BIGINT NOT NULL,  -- created_at of that event
    pruned_through    BIGINT NOT NULL,  -- every id up to this one is deleted
    pruned_through_at BIGINT NOT NULL   -- created_at of the newest deleted event
);
INSERT INTO pushlog.log_head (singleton, head, last_timestamp, pruned_through, pruned_through_at)
VALUES (TRUE, 0, 0, 0, 0);

-- The transactional outbox: events an application appended inside its own
-- transaction with `pushlog.publish(…)`. Rows carry no id: a node's writer
-- moves committed rows into the log under the head lock, so an event gets
-- its id when it enters the log, after everything already delivered, however
-- long its transaction stayed open. Rows of open transactions are invisible
-- to the writer and never make it wait.
CREATE TABLE pushlog.outbox (
    seq      BIGSERIAL PRIMARY KEY,
    -- The event as a publish body element: {"topic","type","payload"?,
    -- "entity"?,"audience"?,"key"?}. The writer validates it again as one.
    draft    JSONB NOT NULL,
    idem_key TEXT UNIQUE
);

-- Whether `value` is text of 1 to `max` characters without control
-- characters: the publish API's rule for types, keys, entity fields, users
-- and roles.
CREATE FUNCTION pushlog.valid_text(value TEXT, max INTEGER) RETURNS BOOLEAN
LANGUAGE sql IMMUTABLE AS $$
    SELECT value IS NOT NULL
       AND char_length(value) BETWEEN 1 AND max
       AND value !~ '[[:cntrl:]]'
$$;

-- The event stored in the log under `key`, in the form `pushlog.publish`
-- stages events (a publish body element), or NULL.
CREATE FUNCTION pushlog.logged_draft(key TEXT) RETURNS JSONB
LANGUAGE sql STABLE
SET search_path = pushlog, pg_temp
AS $$
    SELECT jsonb_build_object('topic', e.topic, 'type', e.type)
        || CASE WHEN e.payload IS NULL THEN '{}' ELSE jsonb_build_object('payload', e.payload::jsonb) END
        || CASE WHEN e.entity_kind IS NULL THEN '{}' ELSE jsonb_build_object('entity',
               jsonb_build_object('kind', e.entity_kind, 'id', e.entity_id, 'op', e.entity_op)) END
        || CASE WHEN e.audience IS NULL THEN '{}' ELSE jsonb_build_object('audience', e.audience::jsonb) END
        || jsonb_build_object('key', e.idem_key)
    FROM pushlog.events AS e WHERE e.idem_key = key
$$;

-- Appends an event atomically with the caller's transaction. Invalid
-- arguments raise, so the caller's transaction fails whole. A key already in
-- the log or the outbox with the same content is a retry and appends
-- nothing; with other content it raises `unique_violation`.
CREATE FUNCTION pushlog.publish(
    topic    TEXT,
    type     TEXT,
    payload  JSONB DEFAULT NULL,
    entity   JSONB DEFAULT NULL,
    audience JSONB DEFAULT NULL,
    key      TEXT  DEFAULT NULL
) RETURNS VOID
LANGUAGE plpgsql
SET search_path = pushlog, pg_temp
AS $$
DECLARE
    draft JSONB;
    stored JSONB;
    entries INTEGER;
BEGIN
    IF publish.topic IS NULL OR publish.topic !~ '^[A-Za-z0-9_.:/-]{1,200}$' THEN
        RAISE EXCEPTION 'pushlog.publish: topic % must be 1 to 200 characters of A-Z a-z 0-9 _ . : / -', publish.topic
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT valid_text(publish.type, 100) THEN
        RAISE EXCEPTION 'pushlog.publish: type must have 1 to 100 characters and no control characters'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF publish.key IS NOT NULL AND NOT valid_text(publish.key, 200) THEN
        RAISE EXCEPTION 'pushlog.publish: key must have 1 to 200 characters and no control characters'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF publish.entity IS NOT NULL AND NOT (
        jsonb_typeof(publish.entity) = 'object'
        AND (SELECT count(*) FROM jsonb_object_keys(publish.entity)) = 3
        AND jsonb_typeof(publish.entity -> 'kind') = 'string'
        AND jsonb_typeof(publish.entity -> 'id') = 'string'
        AND valid_text(publish.entity ->> 'kind', 200)
        AND valid_text(publish.entity ->> 'id', 200)
        AND publish.entity ->> 'op' IN ('created', 'updated', 'deleted')
    ) THEN
        RAISE EXCEPTION 'pushlog.publish: entity must be {"kind": text, "id": text, "op": "created"|"updated"|"deleted"}'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF publish.audience IS NOT NULL THEN
        IF jsonb_typeof(publish.audience) <> 'object'
           OR EXISTS (SELECT 1 FROM jsonb_object_keys(publish.audience) AS k WHERE k NOT IN ('users', 'roles'))
           OR jsonb_typeof(COALESCE(publish.audience -> 'users', '[]')) <> 'array'
           OR jsonb_typeof(COALESCE(publish.audience -> 'roles', '[]')) <> 'array'
           OR EXISTS (
               SELECT 1
               FROM jsonb_array_elements(COALESCE(publish.audience -> 'users', '[]')
                                         || COALESCE(publish.audience -> 'roles', '[]')) AS e
               WHERE jsonb_typeof(e) <> 'string' OR NOT valid_text(e #>> '{}', 200))
        THEN
            RAISE EXCEPTION 'pushlog.publish: audience must be {"users": [text], "roles": [text]}'
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        entries := jsonb_array_length(COALESCE(publish.audience -> 'users', '[]'))
                 + jsonb_array_length(COALESCE(publish.audience -> 'roles', '[]'));
        IF entries NOT BETWEEN 1 AND 1000 THEN
            RAISE EXCEPTION 'pushlog.publish: audience must list 1 to 1000 users and roles (NULL addresses everyone)'
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END IF;

    draft := jsonb_build_object('topic', publish.topic, 'type', publish.type);
    IF publish.payload IS NOT NULL THEN
        draft := draft || jsonb_build_object('payload', publish.payload);
    END IF;
    IF publish.entity IS NOT NULL THEN
        draft := draft || jsonb_build_object('entity', publish.entity);
    END IF;
    IF publish.audience IS NOT NULL THEN
        draft := draft || jsonb_build_object('audience', publish.audience);
    END IF;

    IF publish.key IS NOT NULL THEN
        draft := draft || jsonb_build_object('key', publish.key);
        -- Each statement sees what committed before it (read committed),
        -- so a writer that relays the key's row meanwhile is seen by the
        -- next look into the log.
        stored := logged_draft(publish.key);
        IF stored IS NULL THEN
            -- Waits for a concurrent transaction holding the same key.
            INSERT INTO pushlog.outbox (draft, idem_key) VALUES (draft, publish.key)
            ON CONFLICT (idem_key) DO NOTHING;
            IF FOUND THEN
                -- A relay may have moved an earlier row with this key into
                -- the log while the insert waited for it.
                stored := logged_draft(publish.key);
                IF stored IS NULL OR stored = draft THEN
                    PERFORM pg_notify('pushlog_outbox', '');
                    RETURN;
                END IF;
            ELSE
                SELECT o.draft INTO stored FROM pushlog.outbox AS o WHERE o.idem_key = publish.key;
                -- Relayed since the insert looked: it is in the log now.
                stored := COALESCE(stored, logged_draft(publish.key));
            END IF;
        END IF;
        IF stored IS DISTINCT FROM draft THEN
            RAISE EXCEPTION 'pushlog.publish: idempotency key % was already used for a different event', publish.key
                USING ERRCODE = 'unique_violation';
        END IF;
        RETURN;
    END IF;

    INSERT INTO pushlog.outbox (draft) VALUES (draft);
    PERFORM pg_notify('pushlog_outbox', '');
END
$$;
