-- The chain's head (sql/015) on its conversation row: the number and hash of the last link.
--
-- 015 found the previous link with a look-up of chain_links on every append, while the
-- conversation was locked. A backend plans that look-up once and keeps the plan; planned while
-- chain_links was small (a fresh database), it is a sequential scan, and every send then read
-- the whole table: Postgres's CPU a message doubled in half of bench S1's runs at 128 clients.
-- Now the seq trigger's one UPDATE of the locked row (sql/008) also advances the head, and a
-- message's link is written from what that UPDATE returns: nothing is looked up, and the
-- conversation row is still written once a message. verify compares the head with the last
-- link, so a chain cut short at its end shows too.

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

-- 008's seq function, and the message's link. Its record is the row as stored: no BEFORE
-- INSERT trigger that fires after this one (by name) changes a recorded field
-- (messages_offer_opens sets offer_status only). The digest is computed twice, in the SET and
-- after it, because the SET sees only the row's old values: 3 us a message.
CREATE OR REPLACE FUNCTION messages_assign_seq() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    head_n    bigint;
    head_hash bytea;
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
         INTO NEW.seq, NEW.created_at, head_n, head_hash;
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
    INSERT INTO chain_links (conversation_id, n, kind, message_id, at, digest, hash)
    VALUES (NEW.conversation_id, head_n, 'message', NEW.id, NEW.created_at,
            chain_message_digest(NEW.id, NEW.seq, NEW.sender_id, NEW.recipient_id,
                                 NEW.message_type, NEW.content, NEW.metadata, NEW.created_at),
            head_hash);
    RETURN NEW;
END;
$$;

DROP TRIGGER messages_chain_insert ON messages;
DROP FUNCTION messages_chain_insert();
