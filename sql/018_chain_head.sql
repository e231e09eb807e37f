-- The chain (sql/015) appended without a look-up, and a message's own link on its row.
--
-- 015 found the previous link with a look-up of chain_links on every append, while the
-- conversation was locked. A backend plans that look-up once and keeps the plan; planned while
-- chain_links was small (a fresh database), it is a sequential scan, and every send then read
-- the whole table: Postgres's CPU a message doubled in half of bench S1's runs at 128 clients.
--
-- - The conversation row keeps the chain's head, chain_n and chain_hash: the number and hash
--   of its last link. The seq trigger's one UPDATE of the locked row (sql/008) advances it,
--   so nothing is looked up and the row is still written once a message. verify compares the
--   head with the last link, so a chain cut short at its end shows too.
-- - A message's own link (kind 'message') is on the message's row: chain_n, chain_digest,
--   chain_hash, set by the same trigger. A send writes no other row and no index entry for its
--   link (that row was half of what was left of the chain's cost at 128 clients). chain_links
--   keeps the other kinds: edit, unsend and offer. The columns are final once set (a trigger
--   refuses any change), as chain_links rows are, and NULL only on a row stored with the
--   triggers off, which verify names.

ALTER TABLE conversations
    ADD COLUMN chain_n    bigint NOT NULL DEFAULT 0 CHECK (chain_n >= 0),
    ADD COLUMN chain_hash bytea NOT NULL DEFAULT ''::bytea
        CHECK (octet_length(chain_hash) IN (0, 32));

UPDATE conversations c
   SET chain_n = l.n, chain_hash = l.hash
  FROM (SELECT DISTINCT ON (conversation_id) conversation_id, n, hash
          FROM chain_links ORDER BY conversation_id, n DESC) l
 WHERE l.conversation_id = c.id;

-- A message's record digest: the same bytes as
-- sha256(chain_record(VARIADIC chain_message_record(...))), which verify rebuilds it with.
CREATE FUNCTION chain_message_digest(
    id bigint, seq bigint, sender_id bigint, recipient_id bigint, message_type text,
    content text, metadata jsonb, created_at timestamptz
) RETURNS bytea
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT sha256(convert_to(
        chain_field(id::text) || chain_field(seq::text) || chain_field(sender_id::text)
        || chain_field(recipient_id::text) || chain_field(message_type) || chain_field(content)
        || chain_field(metadata::text) || chain_field(chain_time(created_at)), 'UTF8'))
$$;

-- Edits, unsends and offer transitions: the head advances on the conversation row, which the
-- writer has locked already (store/changes.py, store/offers.py, store/erasure.py).
CREATE OR REPLACE FUNCTION chain_append(
    conversation bigint, link_kind text, message bigint, version bigint, status text,
    at timestamptz, record_digest bytea
) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    head_n    bigint;
    head_hash bytea;
BEGIN
    UPDATE conversations c
       SET chain_n    = c.chain_n + 1,
           chain_hash = sha256(c.chain_hash || convert_to(link_kind, 'UTF8') || record_digest)
     WHERE c.id = conversation
    RETURNING c.chain_n, c.chain_hash INTO head_n, head_hash;
    INSERT INTO chain_links (conversation_id, n, kind, message_id, version_id, offer_status, at,
                             digest, hash)
    VALUES (conversation, head_n, link_kind, message, version, status, at, record_digest,
            head_hash);
END;
$$;

ALTER TABLE messages
    ADD COLUMN chain_n      bigint,
    ADD COLUMN chain_digest bytea,
    ADD COLUMN chain_hash   bytea;

-- The message links 015 wrote move to their messages. updated_at stays: the message did not
-- change.
ALTER TABLE messages DISABLE TRIGGER messages_touch_updated_at;
UPDATE messages m
   SET chain_n = l.n, chain_digest = l.digest, chain_hash = l.hash
  FROM chain_links l
 WHERE l.kind = 'message' AND l.message_id = m.id AND l.conversation_id = m.conversation_id;
ALTER TABLE messages ENABLE TRIGGER messages_touch_updated_at;

ALTER TABLE chain_links DISABLE TRIGGER chain_links_append_only;
DELETE FROM chain_links WHERE kind = 'message';
ALTER TABLE chain_links ENABLE TRIGGER chain_links_append_only;

ALTER TABLE chain_links
    DROP CONSTRAINT chain_links_kind_check,
    ADD CONSTRAINT chain_links_kind_check CHECK (kind IN ('edit', 'unsend', 'offer'));

ALTER TABLE messages
    ADD CONSTRAINT messages_chain_link CHECK (
        (chain_n IS NULL) = (chain_digest IS NULL) AND (chain_n IS NULL) = (chain_hash IS NULL)
        AND (chain_n IS NULL OR (chain_n >= 1 AND octet_length(chain_digest) = 32
                                 AND octet_length(chain_hash) = 32)));

CREATE FUNCTION messages_link_is_final() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'message %''s chain link is final', OLD.id
        USING ERRCODE = 'restrict_violation';
END;
$$;

CREATE TRIGGER messages_link_is_final
    BEFORE UPDATE OF chain_n, chain_digest, chain_hash ON messages
    FOR EACH ROW
    WHEN ((OLD.chain_n, OLD.chain_digest, OLD.chain_hash)
          IS DISTINCT FROM (NEW.chain_n, NEW.chain_digest, NEW.chain_hash))
    EXECUTE FUNCTION messages_link_is_final();

-- 008's seq function, with the head and the message's link. Its record is the row as stored:
-- no BEFORE INSERT trigger that fires after this one (by name) changes a recorded field
-- (messages_offer_opens sets offer_status only). The digest is computed twice, in the SET and
-- after it, because the SET sees only the row's old values: 3 us a message.
CREATE OR REPLACE FUNCTION messages_assign_seq() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE conversations c
       SET last_seq               = c.last_seq + 1,
           last_message_text      = left(NEW.content, 200),
           last_message_type      = NEW.message_type,
           last_message_sender_id = NEW.sender_id,
           last_message_at        = GREATEST(NEW.created_at, c.last_message_at),
           buyer_unread_count     = c.buyer_unread_count
               + (NOT NEW.is_read AND NEW.recipient_id IS NOT DISTINCT FROM c.buyer_id
                  AND c.last_seq + 1 > c.buyer_cleared_seq)::int,
           seller_unread_count    = c.seller_unread_count
               + (NOT NEW.is_read AND NEW.recipient_id IS NOT DISTINCT FROM c.seller_id
                  AND c.last_seq + 1 > c.seller_cleared_seq)::int,
           deleted_by_buyer       = c.deleted_by_buyer   AND NEW.sender_id IS NULL,
           deleted_by_seller      = c.deleted_by_seller  AND NEW.sender_id IS NULL,
           archived_by_buyer      = c.archived_by_buyer  AND NEW.sender_id IS NULL,
           archived_by_seller     = c.archived_by_seller AND NEW.sender_id IS NULL,
           chain_n                = c.chain_n + 1,
           -- 'message' in UTF-8
           chain_hash             = sha256(c.chain_hash || '\x6d657373616765'::bytea
               || chain_message_digest(
                      NEW.id, c.last_seq + 1, NEW.sender_id, NEW.recipient_id,
                      NEW.message_type, NEW.content, NEW.metadata,
                      GREATEST(NEW.created_at, c.last_message_at))),
           updated_at             = now()
     WHERE c.id = NEW.conversation_id
       AND (NEW.sender_id IS NULL OR NOT (c.blocked_by_buyer OR c.blocked_by_seller))
    RETURNING c.last_seq, c.last_message_at, c.chain_n, c.chain_hash
         INTO NEW.seq, NEW.created_at, NEW.chain_n, NEW.chain_hash;
    IF NOT FOUND THEN
        IF EXISTS (SELECT 1 FROM conversations WHERE id = NEW.conversation_id) THEN
            RAISE EXCEPTION 'a block stands between the two sides of conversation %',
                NEW.conversation_id
                USING ERRCODE = 'check_violation', CONSTRAINT = 'messages_not_across_a_block';
        END IF;
        RAISE foreign_key_violation USING
            MESSAGE = format('conversation %s does not exist', NEW.conversation_id),
            CONSTRAINT = 'messages_conversation_id_fkey';
    END IF;
    NEW.chain_digest := chain_message_digest(
        NEW.id, NEW.seq, NEW.sender_id, NEW.recipient_id, NEW.message_type, NEW.content,
        NEW.metadata, NEW.created_at);
    RETURN NEW;
END;
$$;

DROP TRIGGER messages_chain_insert ON messages;
DROP FUNCTION messages_chain_insert();
