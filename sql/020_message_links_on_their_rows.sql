-- A message's own link (sql/015, kind 'message') on the message's row: chain_n, chain_digest,
-- chain_hash, set by the seq trigger from the head it advances (sql/018). chain_links keeps
-- the other kinds: edit, unsend and offer.
--
-- A send then writes no row and no index entry for its link: at 128 clients in bench S1 the
-- chain_links insert was half of what the chain cost Postgres (24 of 45 us a message).
-- The columns are final once set (a trigger refuses any change), as chain_links rows are.
-- They are NULL only on a row stored with the triggers off, which verify names.

ALTER TABLE messages
    ADD COLUMN chain_n      bigint,
    ADD COLUMN chain_digest bytea,
    ADD COLUMN chain_hash   bytea;

-- The links 015 and 018 wrote move to their messages. updated_at stays: the message did not
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

-- 018's seq function; the link goes on the new row instead of into chain_links.
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
