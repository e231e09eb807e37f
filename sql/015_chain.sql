-- Tamper evidence for disputes (docs/disputes.md): every message insert, edit, unsend and offer
-- transition appends one link to its conversation's chain, in the same transaction, by trigger:
--
--   digest = sha256(record)        record: the change's fields, each as <bytes>:<utf-8 text>
--                                  or "-" for NULL (chain_record), so no field can run into
--                                  the next
--   hash   = sha256(previous hash || kind || digest)      the first link's previous hash is ''
--
-- Appends are serialised by the conversation row, which every writer locks first (sql/004).
-- GET /internal/conversations/{id}/verify rebuilds each record from the tables and walks the
-- chain; the export carries the records, so anyone can walk it again (parley/store/chain.py).
-- An erased record (users erased, sql/016) keeps its link: the digest stays, the content goes.

CREATE FUNCTION chain_time(t timestamptz) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;

CREATE FUNCTION chain_record(VARIADIC fields text[]) RETURNS bytea
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT convert_to(coalesce(string_agg(
               CASE WHEN f IS NULL THEN '-' ELSE octet_length(f)::text || ':' || f END,
               '' ORDER BY i), ''), 'UTF8')
      FROM unnest(fields) WITH ORDINALITY AS u(f, i)
$$;

CREATE TABLE chain_links (
    conversation_id  bigint NOT NULL,
    n                bigint NOT NULL CHECK (n >= 1),
    kind             text NOT NULL CHECK (kind IN ('message', 'edit', 'unsend', 'offer')),
    message_id       bigint NOT NULL,
    -- edit and unsend: the message_versions row the change wrote.
    version_id       bigint,
    -- offer: the status the offer moved to.
    offer_status     text,
    at               timestamptz NOT NULL,
    digest           bytea NOT NULL CHECK (octet_length(digest) = 32),
    hash             bytea NOT NULL CHECK (octet_length(hash) = 32),
    PRIMARY KEY (conversation_id, n)
);

CREATE FUNCTION chain_links_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'chain_links is append-only: % refused', TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$;

CREATE TRIGGER chain_links_append_only
    BEFORE UPDATE OR DELETE ON chain_links
    FOR EACH ROW EXECUTE FUNCTION chain_links_append_only();

CREATE FUNCTION chain_append(
    conversation bigint, link_kind text, message bigint, version bigint, status text,
    at timestamptz, record_digest bytea
) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    last_n    bigint;
    last_hash bytea;
BEGIN
    SELECT l.n, l.hash INTO last_n, last_hash
      FROM chain_links l WHERE l.conversation_id = conversation ORDER BY l.n DESC LIMIT 1;
    INSERT INTO chain_links (conversation_id, n, kind, message_id, version_id, offer_status, at,
                             digest, hash)
    VALUES (conversation, coalesce(last_n, 0) + 1, link_kind, message, version, status, at,
            record_digest,
            sha256(coalesce(last_hash, ''::bytea) || convert_to(link_kind, 'UTF8')
                   || record_digest));
END;
$$;

-- The records, one function each: the triggers write them, and the verify query rebuilds them
-- from the tables with the same functions.
CREATE FUNCTION chain_message_record(
    id bigint, seq bigint, sender_id bigint, recipient_id bigint, message_type text,
    content text, metadata jsonb, created_at timestamptz
) RETURNS text[]
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT ARRAY[id::text, seq::text, sender_id::text, recipient_id::text, message_type, content,
                 metadata::text, chain_time(created_at)]
$$;

CREATE FUNCTION chain_edit_record(
    message_id bigint, version_id bigint, changed_by bigint, content text, metadata jsonb,
    changed_at timestamptz
) RETURNS text[]
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT ARRAY[message_id::text, version_id::text, changed_by::text, content, metadata::text,
                 chain_time(changed_at)]
$$;

CREATE FUNCTION chain_unsend_record(
    message_id bigint, version_id bigint, changed_by bigint, changed_at timestamptz
) RETURNS text[]
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT ARRAY[message_id::text, version_id::text, changed_by::text, chain_time(changed_at)]
$$;

CREATE FUNCTION chain_offer_record(message_id bigint, offer_status text, at timestamptz)
RETURNS text[]
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT ARRAY[message_id::text, offer_status, chain_time(at)]
$$;

-- The one on every send, so written out: chain_field is inlined, and the previous link is read
-- and the new one written here (chain_append's plpgsql call and the VARIADIC array of
-- chain_record cost Postgres more than the rest of the link together). It writes the same
-- bytes as chain_record(VARIADIC chain_message_record(...)), which verify rebuilds it with.
CREATE FUNCTION chain_field(f text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN f IS NULL THEN '-' ELSE octet_length(f)::text || ':' || f END
$$;

CREATE FUNCTION messages_chain_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    last_n    bigint;
    last_hash bytea;
    digest    bytea;
BEGIN
    digest := sha256(convert_to(
        chain_field(NEW.id::text) || chain_field(NEW.seq::text)
        || chain_field(NEW.sender_id::text) || chain_field(NEW.recipient_id::text)
        || chain_field(NEW.message_type) || chain_field(NEW.content)
        || chain_field(NEW.metadata::text) || chain_field(chain_time(NEW.created_at)), 'UTF8'));
    SELECT l.n, l.hash INTO last_n, last_hash
      FROM chain_links l WHERE l.conversation_id = NEW.conversation_id
     ORDER BY l.n DESC LIMIT 1;
    INSERT INTO chain_links (conversation_id, n, kind, message_id, at, digest, hash)
    VALUES (NEW.conversation_id, coalesce(last_n, 0) + 1, 'message', NEW.id, NEW.created_at,
            digest,
            -- 'message' in UTF-8
            sha256(coalesce(last_hash, ''::bytea) || '\x6d657373616765'::bytea || digest));
    RETURN NULL;
END;
$$;

CREATE TRIGGER messages_chain_insert
    AFTER INSERT ON messages
    FOR EACH ROW EXECUTE FUNCTION messages_chain_insert();

-- An edit's or an unsend's link, from its message_versions row and the content after it (an
-- unsend's record holds no content): for the trigger below and for the migration's backfill.
CREATE FUNCTION chain_append_change(
    conversation bigint, message bigint, change text, version bigint, changed_by bigint,
    changed_at timestamptz, content text, metadata jsonb
) RETURNS void
LANGUAGE sql AS $$
    SELECT chain_append(
        conversation, change, message, version, NULL, changed_at,
        sha256(chain_record(VARIADIC CASE change
            WHEN 'unsend' THEN chain_unsend_record(message, version, changed_by, changed_at)
            ELSE chain_edit_record(message, version, changed_by, content, metadata, changed_at)
        END)))
$$;

-- An edit or an unsend wrote its message_versions row before the update (store/changes.py).
-- An unsend that withdraws an open offer appends its unsend link, then the offer's.
CREATE FUNCTION messages_chain_changes() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    version record;
BEGIN
    IF (OLD.content, OLD.metadata, OLD.unsent_at)
       IS DISTINCT FROM (NEW.content, NEW.metadata, NEW.unsent_at) THEN
        SELECT v.id, v.changed_by, v.changed_at INTO version
          FROM message_versions v WHERE v.message_id = NEW.id ORDER BY v.id DESC LIMIT 1;
        PERFORM chain_append_change(
            NEW.conversation_id, NEW.id,
            CASE WHEN NEW.unsent_at IS NOT NULL AND OLD.unsent_at IS NULL
                 THEN 'unsend' ELSE 'edit' END,
            version.id, version.changed_by, version.changed_at, NEW.content, NEW.metadata);
    END IF;
    IF OLD.offer_status IS DISTINCT FROM NEW.offer_status THEN
        PERFORM chain_append(
            NEW.conversation_id, 'offer', NEW.id, NULL, NEW.offer_status, now(),
            sha256(chain_record(VARIADIC chain_offer_record(NEW.id, NEW.offer_status, now()))));
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER messages_chain_changes
    AFTER UPDATE OF content, metadata, unsent_at, offer_status ON messages
    FOR EACH ROW
    WHEN ((OLD.content, OLD.metadata, OLD.unsent_at, OLD.offer_status)
          IS DISTINCT FROM (NEW.content, NEW.metadata, NEW.unsent_at, NEW.offer_status))
    EXECUTE FUNCTION messages_chain_changes();

-- Messages stored before this migration: each conversation's chain starts with them, as
-- inserted (the content before the first change), then their edits and unsends in order.
-- Offer transitions made before it are not in the chain.
DO $$
DECLARE
    c record;
    r record;
BEGIN
    FOR c IN SELECT DISTINCT conversation_id AS id FROM messages ORDER BY 1 LOOP
        FOR r IN
            SELECT m.id, m.conversation_id, m.seq, m.sender_id, m.recipient_id, m.message_type,
                   coalesce(f.content, m.content) AS content,
                   coalesce(f.metadata, m.metadata) AS metadata, m.created_at
              FROM messages m
              LEFT JOIN LATERAL (SELECT v.content, v.metadata FROM message_versions v
                                  WHERE v.message_id = m.id ORDER BY v.id LIMIT 1) f ON true
             WHERE m.conversation_id = c.id
             ORDER BY m.seq
        LOOP
            PERFORM chain_append(
                r.conversation_id, 'message', r.id, NULL, NULL, r.created_at,
                sha256(chain_record(VARIADIC chain_message_record(
                    r.id, r.seq, r.sender_id, r.recipient_id, r.message_type, r.content,
                    r.metadata, r.created_at))));
        END LOOP;
        FOR r IN
            SELECT v.id, v.message_id, v.change, v.changed_by, v.changed_at,
                   coalesce(lead(v.content) OVER w, m.content) AS content,
                   coalesce(lead(v.metadata) OVER w, m.metadata) AS metadata
              FROM message_versions v JOIN messages m ON m.id = v.message_id
             WHERE m.conversation_id = c.id
            WINDOW w AS (PARTITION BY v.message_id ORDER BY v.id)
             ORDER BY v.id
        LOOP
            PERFORM chain_append_change(
                c.id, r.message_id, r.change, r.id, r.changed_by, r.changed_at, r.content,
                r.metadata);
        END LOOP;
    END LOOP;
END;
$$;
