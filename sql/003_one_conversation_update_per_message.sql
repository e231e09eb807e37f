-- One UPDATE of the conversation row per message instead of two.
--
-- Until now a message updated its conversation twice: the seq/preview trigger (per row)
-- and the unread counter trigger (per statement). Every `conversations` update is a new row
-- version with an entry in each of its indexes (last_message_at is indexed, so none is a HOT
-- update), and each also fired the plpgsql updated_at trigger. The counter now moves in the
-- same UPDATE that assigns the seq, under the same row lock, and `updated_at` is set there
-- too; pgbench on this schema measured about 25 % more inserts per second (bench/).
--
-- The rules are unchanged: a message to a side adds one to that side's counter unless it is
-- inserted already read or falls at or below that side's cleared watermark (which cannot
-- happen to a new seq, but the check costs nothing and keeps the rule in one place); system
-- messages (recipient NULL) count for neither side.

CREATE OR REPLACE FUNCTION messages_assign_seq() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE conversations c
       SET last_seq               = c.last_seq + 1,
           last_message_text      = left(NEW.content, 200),
           last_message_type      = NEW.message_type,
           last_message_sender_id = NEW.sender_id,
           last_message_at        = NEW.created_at,
           buyer_unread_count     = c.buyer_unread_count
               + (NOT NEW.is_read AND NEW.recipient_id IS NOT DISTINCT FROM c.buyer_id
                  AND c.last_seq + 1 > c.buyer_cleared_seq)::int,
           seller_unread_count    = c.seller_unread_count
               + (NOT NEW.is_read AND NEW.recipient_id IS NOT DISTINCT FROM c.seller_id
                  AND c.last_seq + 1 > c.seller_cleared_seq)::int,
           -- A user's message brings the conversation back for both sides; a system
           -- notice (sender NULL) only updates the preview.
           deleted_by_buyer       = c.deleted_by_buyer   AND NEW.sender_id IS NULL,
           deleted_by_seller      = c.deleted_by_seller  AND NEW.sender_id IS NULL,
           archived_by_buyer      = c.archived_by_buyer  AND NEW.sender_id IS NULL,
           archived_by_seller     = c.archived_by_seller AND NEW.sender_id IS NULL,
           updated_at             = now()
     WHERE c.id = NEW.conversation_id
    RETURNING c.last_seq INTO NEW.seq;
    IF NOT FOUND THEN
        RAISE foreign_key_violation USING
            MESSAGE = format('conversation %s does not exist', NEW.conversation_id),
            CONSTRAINT = 'messages_conversation_id_fkey';
    END IF;
    RETURN NEW;
END;
$$;

DROP TRIGGER messages_count_inserts ON messages;
DROP FUNCTION messages_count_inserts();

-- updated_at: statements that set it themselves (like the one above) skip the plpgsql call.
-- Setting it to the value it already has counts as not setting it.
DROP TRIGGER conversations_touch_updated_at ON conversations;
CREATE TRIGGER conversations_touch_updated_at BEFORE UPDATE ON conversations
    FOR EACH ROW WHEN (NEW.updated_at IS NOT DISTINCT FROM OLD.updated_at)
    EXECUTE FUNCTION touch_updated_at();
