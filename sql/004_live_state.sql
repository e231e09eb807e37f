-- Live state that devices can trust: versioned badges, time that follows seq, read state
-- that agrees with the watermark, and a folder that agrees with the listing's status.
--
-- Lock order, everywhere (it extends 002's): the conversation rows a statement touches first,
-- then, at the end of the statement, the badge rows of the users whose counters moved, in
-- user-id order. A statement that has taken a badge row takes no conversation row after it,
-- so two writers can only queue on badges in the same order and never deadlock.

-- 1. Badges: each user's unread total over all conversations, and a version that grows by
--    one in every transaction that changes any of the user's unread counters. The version
--    moves in the same transaction as the counters, under the badge row's lock, so a read of
--    (version, total, a conversation's count) in one statement is one moment of the user's
--    state, and a higher version is always a later moment.
CREATE TABLE badges (
    user_id  bigint PRIMARY KEY REFERENCES users (id),
    total    bigint NOT NULL DEFAULT 0,
    version  bigint NOT NULL DEFAULT 0
);

INSERT INTO badges (user_id, total, version)
SELECT u.id, coalesce(t.total, 0), 1
  FROM users u
  LEFT JOIN (SELECT s.user_id, sum(s.n) AS total
               FROM (SELECT buyer_id AS user_id, buyer_unread_count AS n FROM conversations
                     UNION ALL
                     SELECT seller_id, seller_unread_count FROM conversations) s
              GROUP BY s.user_id) t ON t.user_id = u.id;

-- Every user has a badge row from the start, so moving a badge is always an UPDATE of a row
-- that exists, locked in user-id order.
CREATE FUNCTION users_create_badge() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO badges (user_id) VALUES (NEW.id) ON CONFLICT (user_id) DO NOTHING;
    RETURN NULL;
END;
$$;

CREATE TRIGGER users_create_badge
    AFTER INSERT ON users
    FOR EACH ROW EXECUTE FUNCTION users_create_badge();

-- Add each user's change to their total (never below zero, like the counters it sums) and
-- move their version; badge rows are locked in user-id order, the lock order above. The
-- arrays hold one entry per user.
CREATE FUNCTION badges_add(user_ids bigint[], changes bigint[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1
       FROM badges b JOIN unnest(user_ids, changes) AS d(user_id, change)
            ON d.user_id = b.user_id AND d.change <> 0
      ORDER BY b.user_id
        FOR UPDATE OF b;
    UPDATE badges b
       SET total = GREATEST(b.total + d.change, 0), version = b.version + 1
      FROM unnest(user_ids, changes) AS d(user_id, change)
     WHERE b.user_id = d.user_id AND d.change <> 0;
END;
$$;

-- The user's total was summed from these two partial indexes; badges.total replaces that
-- sum, and every message no longer pays for their upkeep.
DROP INDEX conversations_buyer_unread;
DROP INDEX conversations_seller_unread;

-- 2. Seq, preview, counter and time, under the conversation's row lock (003's function, plus
--    one rule): a message's created_at is never earlier than the conversation's last message,
--    so time never decreases as seq grows, and last_message_at never goes backwards. Messages
--    of one batch may share a time; they never invert.
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
           -- A user's message brings the conversation back for both sides; a system
           -- notice (sender NULL) only updates the preview.
           deleted_by_buyer       = c.deleted_by_buyer   AND NEW.sender_id IS NULL,
           deleted_by_seller      = c.deleted_by_seller  AND NEW.sender_id IS NULL,
           archived_by_buyer      = c.archived_by_buyer  AND NEW.sender_id IS NULL,
           archived_by_seller     = c.archived_by_seller AND NEW.sender_id IS NULL,
           updated_at             = now()
     WHERE c.id = NEW.conversation_id
    RETURNING c.last_seq, c.last_message_at INTO NEW.seq, NEW.created_at;
    IF NOT FOUND THEN
        RAISE foreign_key_violation USING
            MESSAGE = format('conversation %s does not exist', NEW.conversation_id),
            CONSTRAINT = 'messages_conversation_id_fkey';
    END IF;
    RETURN NEW;
END;
$$;

-- 3. Badges follow inserted messages: once per statement, after every conversation row of
--    the statement is locked (a batch of sends is one statement). This runs for every insert,
--    so it is written for the common case, one recipient: one UPDATE of one row. Only a
--    statement to several recipients takes their badge rows in user-id order first.
CREATE FUNCTION messages_badge_inserts() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    first_user bigint;
    last_user bigint;
BEGIN
    SELECT min(recipient_id), max(recipient_id) INTO first_user, last_user
      FROM inserted WHERE recipient_id IS NOT NULL AND NOT is_read;
    IF first_user IS NULL THEN
        RETURN NULL;
    END IF;
    IF first_user <> last_user THEN
        PERFORM 1 FROM badges WHERE user_id IN (SELECT recipient_id FROM inserted)
          ORDER BY user_id FOR UPDATE;
    END IF;
    UPDATE badges b
       SET total = b.total + d.n, version = b.version + 1
      FROM (SELECT recipient_id, count(*) AS n FROM inserted
             WHERE recipient_id IS NOT NULL AND NOT is_read
             GROUP BY recipient_id) d
     WHERE b.user_id = d.recipient_id;
    RETURN NULL;
END;
$$;

CREATE TRIGGER messages_badge_inserts
    AFTER INSERT ON messages
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION messages_badge_inserts();

-- 4. Reads (002's function, plus badges): counters move by the rows whose is_read changed,
--    never below zero, and each user's badge by what their counters actually moved.
CREATE OR REPLACE FUNCTION messages_count_reads() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    nothing record;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM before_rows o JOIN after_rows n ON n.id = o.id
                    WHERE o.is_read IS DISTINCT FROM n.is_read) THEN
        RETURN NULL;
    END IF;

    -- Fixed lock order (id), and the counts below then read cleared watermarks and counters
    -- that nobody can move until we commit.
    PERFORM 1 FROM conversations
      WHERE id IN (SELECT n.conversation_id FROM after_rows n)
      ORDER BY id FOR UPDATE;

    WITH changed AS (
        UPDATE conversations c
           SET buyer_unread_count  = GREATEST(c.buyer_unread_count  + d.buyer_delta,  0),
               seller_unread_count = GREATEST(c.seller_unread_count + d.seller_delta, 0)
          FROM (SELECT n.conversation_id,
                       x.buyer_unread_count AS buyer_before,
                       x.seller_unread_count AS seller_before,
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
                 GROUP BY n.conversation_id, x.buyer_unread_count, x.seller_unread_count) d
         WHERE c.id = d.conversation_id
           AND (d.buyer_delta <> 0 OR d.seller_delta <> 0)
        RETURNING c.buyer_id, c.seller_id,
                  c.buyer_unread_count - d.buyer_before AS buyer_change,
                  c.seller_unread_count - d.seller_before AS seller_change)
    SELECT badges_add(array_agg(u.user_id ORDER BY u.user_id),
                      array_agg(u.change ORDER BY u.user_id))
      INTO nothing
      FROM (SELECT s.user_id, sum(s.change)::bigint AS change
              FROM (SELECT buyer_id AS user_id, buyer_change AS change FROM changed
                    UNION ALL
                    SELECT seller_id, seller_change FROM changed) s
             GROUP BY s.user_id) u;
    RETURN NULL;
END;
$$;

-- 5. Badges follow a counter changed straight on conversations (a delete drops the deleter's
--    count to zero). Statements run by the triggers above are skipped by the depth test:
--    those triggers move the badges themselves, in user-id order.
CREATE FUNCTION conversations_badge_changes() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM badges_add(ARRAY[NEW.buyer_id, NEW.seller_id],
                       ARRAY[NEW.buyer_unread_count - OLD.buyer_unread_count,
                             NEW.seller_unread_count - OLD.seller_unread_count]::bigint[]);
    RETURN NULL;
END;
$$;

CREATE TRIGGER conversations_badge_changes
    AFTER UPDATE ON conversations
    FOR EACH ROW
    WHEN (pg_trigger_depth() = 0
          AND (OLD.buyer_unread_count IS DISTINCT FROM NEW.buyer_unread_count
               OR OLD.seller_unread_count IS DISTINCT FROM NEW.seller_unread_count))
    EXECUTE FUNCTION conversations_badge_changes();

-- 6. Read state agrees with the watermark: a message to a side is read exactly when its seq
--    is at or below that side's last_read_seq. Reads now mark what a delete had cleared too
--    (it counted for no badge, so no counter moves); bring older rows into line.
UPDATE messages m
   SET is_read = true, read_at = coalesce(m.read_at, now())
  FROM conversations c
 WHERE c.id = m.conversation_id
   AND NOT m.is_read
   AND ((m.recipient_id = c.buyer_id AND m.seq <= c.buyer_last_read_seq)
        OR (m.recipient_id = c.seller_id AND m.seq <= c.seller_last_read_seq));

-- 7. The folder follows the listing: a conversation is in a side's archive when that side
--    archived it or its product is sold or deleted (status 'archived'), and in the inbox
--    otherwise. The inbox indexes index that folder.
DROP INDEX conversations_buyer_inbox;
DROP INDEX conversations_seller_inbox;
CREATE INDEX conversations_buyer_inbox
    ON conversations (buyer_id, (archived_by_buyer OR status = 'archived'), last_message_at, id)
    WHERE NOT deleted_by_buyer AND last_message_at IS NOT NULL;
CREATE INDEX conversations_seller_inbox
    ON conversations (seller_id, (archived_by_seller OR status = 'archived'), last_message_at, id)
    WHERE NOT deleted_by_seller AND last_message_at IS NOT NULL;
