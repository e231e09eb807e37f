-- Triggers that keep each conversation's cached state exact, whatever the concurrency.
--
-- Lock order, everywhere: the conversation row first, then message rows. A send locks the
-- conversation in messages_assign_seq before its row exists; store.mark_read locks it
-- before its UPDATE of messages; messages_count_reads locks in id order.

-- 1. Seq, preview and un-hide, under the conversation's row lock.
--    The UPDATE takes the row lock and re-reads the newest last_seq, so concurrent senders
--    get consecutive seqs. A failed insert rolls the increment back with it, so seqs have no
--    gaps; for that reason callers must not use INSERT ... ON CONFLICT DO NOTHING on messages
--    (a skipped row would keep its increment).
CREATE FUNCTION messages_assign_seq() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE conversations c
       SET last_seq               = c.last_seq + 1,
           last_message_text      = left(NEW.content, 200),
           last_message_type      = NEW.message_type,
           last_message_sender_id = NEW.sender_id,
           last_message_at        = NEW.created_at,
           -- A user's message brings the conversation back for both sides; a system
           -- notice (sender NULL) only updates the preview.
           deleted_by_buyer   = c.deleted_by_buyer   AND NEW.sender_id IS NULL,
           deleted_by_seller  = c.deleted_by_seller  AND NEW.sender_id IS NULL,
           archived_by_buyer  = c.archived_by_buyer  AND NEW.sender_id IS NULL,
           archived_by_seller = c.archived_by_seller AND NEW.sender_id IS NULL
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

CREATE TRIGGER messages_assign_seq
    BEFORE INSERT ON messages
    FOR EACH ROW EXECUTE FUNCTION messages_assign_seq();

-- 2. Unread counters up, once per statement: one UPDATE per conversation however many rows
--    a (batched) insert carries. The conversation rows are already locked by trigger 1.
--    System messages (recipient NULL) count for neither side.
CREATE FUNCTION messages_count_inserts() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE conversations c
       SET buyer_unread_count  = c.buyer_unread_count  + d.to_buyer,
           seller_unread_count = c.seller_unread_count + d.to_seller
      FROM (SELECT i.conversation_id,
                   count(*) FILTER (WHERE i.recipient_id = x.buyer_id
                                      AND i.seq > x.buyer_cleared_seq) AS to_buyer,
                   count(*) FILTER (WHERE i.recipient_id = x.seller_id
                                      AND i.seq > x.seller_cleared_seq) AS to_seller
              FROM inserted i
              JOIN conversations x ON x.id = i.conversation_id
             WHERE i.recipient_id IS NOT NULL AND NOT i.is_read
             GROUP BY i.conversation_id) d
     WHERE c.id = d.conversation_id
       AND (d.to_buyer > 0 OR d.to_seller > 0);
    RETURN NULL;
END;
$$;

CREATE TRIGGER messages_count_inserts
    AFTER INSERT ON messages
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION messages_count_inserts();

-- 3. Unread counters down (and up again, should a message be marked unread), once per
--    statement, by the number of rows whose is_read actually changed. Rows that another
--    transaction already marked are not in our transition table (READ COMMITTED re-checks
--    them), so each message is counted exactly once. Never below zero.
CREATE FUNCTION messages_count_reads() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM before_rows o JOIN after_rows n ON n.id = o.id
                    WHERE o.is_read IS DISTINCT FROM n.is_read) THEN
        RETURN NULL;
    END IF;

    -- Fixed lock order (id), and the counts below then read cleared watermarks that
    -- nobody can move until we commit.
    PERFORM 1 FROM conversations
      WHERE id IN (SELECT n.conversation_id FROM after_rows n)
      ORDER BY id FOR UPDATE;

    UPDATE conversations c
       SET buyer_unread_count  = GREATEST(c.buyer_unread_count  + d.buyer_delta,  0),
           seller_unread_count = GREATEST(c.seller_unread_count + d.seller_delta, 0)
      FROM (SELECT n.conversation_id,
                   coalesce(sum(CASE WHEN n.is_read THEN -1 ELSE 1 END)
                            FILTER (WHERE n.recipient_id = x.buyer_id
                                      AND n.seq > x.buyer_cleared_seq), 0) AS buyer_delta,
                   coalesce(sum(CASE WHEN n.is_read THEN -1 ELSE 1 END)
                            FILTER (WHERE n.recipient_id = x.seller_id
                                      AND n.seq > x.seller_cleared_seq), 0) AS seller_delta
              FROM before_rows o
              JOIN after_rows n ON n.id = o.id
              JOIN conversations x ON x.id = n.conversation_id
             WHERE o.is_read IS DISTINCT FROM n.is_read
               AND n.recipient_id IS NOT NULL
             GROUP BY n.conversation_id) d
     WHERE c.id = d.conversation_id
       AND (d.buyer_delta <> 0 OR d.seller_delta <> 0);
    RETURN NULL;
END;
$$;

CREATE TRIGGER messages_count_reads
    AFTER UPDATE ON messages
    REFERENCING OLD TABLE AS before_rows NEW TABLE AS after_rows
    FOR EACH STATEMENT EXECUTE FUNCTION messages_count_reads();

-- 4. updated_at on every update of every table.
CREATE FUNCTION touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;

CREATE TRIGGER users_touch_updated_at BEFORE UPDATE ON users
    FOR EACH ROW EXECUTE FUNCTION touch_updated_at();
CREATE TRIGGER products_touch_updated_at BEFORE UPDATE ON products
    FOR EACH ROW EXECUTE FUNCTION touch_updated_at();
CREATE TRIGGER conversations_touch_updated_at BEFORE UPDATE ON conversations
    FOR EACH ROW EXECUTE FUNCTION touch_updated_at();
CREATE TRIGGER messages_touch_updated_at BEFORE UPDATE ON messages
    FOR EACH ROW EXECUTE FUNCTION touch_updated_at();

-- Messages are evidence in disputes: they are never deleted, only hidden per side
-- (conversations.<side>_cleared_seq). Deleting one would also break the counters and the
-- gapless seq, so refuse it outright.
CREATE FUNCTION messages_refuse_delete() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'messages are kept for disputes and cannot be deleted'
        USING ERRCODE = 'restrict_violation',
              HINT = 'Hide a conversation for one side with store.delete_for().';
END;
$$;

CREATE TRIGGER messages_refuse_delete
    BEFORE DELETE ON messages
    FOR EACH ROW EXECUTE FUNCTION messages_refuse_delete();
