-- Block and mute. Both "silence" a conversation for one side: its own unread count still
-- moves, but it does not count towards that side's pushed total badge. A block also stops
-- every message between the two users, and hides the conversation from the blocker's inbox.
--
-- A user's total as devices see it is badges.total (every conversation, kept by 004's
-- triggers, checked by the recount) minus the counts of the conversations silenced for them
-- (read in the same statement). Silencing or unsilencing moves badges.version in the same
-- transaction, so a version still names one total. A mute's `until` is ended by a sweep
-- (a transaction like any unmute), never by the clock alone, for the same reason.
--
-- Lock order (as 007): a block takes the pair's advisory lock first (opening a conversation
-- between the two takes it too, so no conversation starts unflagged beside a block), then
-- the pair's conversation rows in id order, then badge rows.

CREATE TABLE blocks (
    blocker_id  bigint NOT NULL REFERENCES users (id),
    blocked_id  bigint NOT NULL REFERENCES users (id),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (blocker_id, blocked_id),
    CONSTRAINT blocks_someone_else CHECK (blocker_id <> blocked_id)
);

ALTER TABLE conversations
    -- Kept equal to "a block from this side's user to the other side's" (blocks above).
    ADD COLUMN blocked_by_buyer   boolean NOT NULL DEFAULT false,
    ADD COLUMN blocked_by_seller  boolean NOT NULL DEFAULT false,
    -- Set while the side has it muted ('infinity': until unmuted).
    ADD COLUMN buyer_muted_until  timestamptz,
    ADD COLUMN seller_muted_until timestamptz;

-- The conversations silenced for a side, with their counts: what the total leaves out.
CREATE INDEX conversations_buyer_silenced ON conversations (buyer_id)
    INCLUDE (buyer_unread_count) WHERE blocked_by_buyer OR buyer_muted_until IS NOT NULL;
CREATE INDEX conversations_seller_silenced ON conversations (seller_id)
    INCLUDE (seller_unread_count) WHERE blocked_by_seller OR seller_muted_until IS NOT NULL;
-- Mutes to end, for the sweep.
CREATE INDEX conversations_buyer_mute_ends ON conversations (buyer_muted_until)
    WHERE buyer_muted_until IS NOT NULL;
CREATE INDEX conversations_seller_mute_ends ON conversations (seller_muted_until)
    WHERE seller_muted_until IS NOT NULL;

-- 004's seq function, plus one rule: no user's message enters a conversation with a block
-- on it. The check is on the locked row, so a block that committed while a send waited for
-- the lock still stops it; the statement's own filter (store/messages.py) catches the
-- ordinary case first, without an error.
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
           updated_at             = now()
     WHERE c.id = NEW.conversation_id
       AND (NEW.sender_id IS NULL OR NOT (c.blocked_by_buyer OR c.blocked_by_seller))
    RETURNING c.last_seq, c.last_message_at INTO NEW.seq, NEW.created_at;
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
    RETURN NEW;
END;
$$;
