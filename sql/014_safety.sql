-- Off-platform contact warnings (server/parley/safety.py): the kinds found in a text message
-- are stored with it, and a sender who passes PARLEY_SAFETY_REPORT_AFTER flagged messages in a
-- day gets one report from Parley itself (reporter_id NULL: `system`).

ALTER TABLE messages
    ADD COLUMN safety text[] NOT NULL DEFAULT '{}',
    ADD CONSTRAINT messages_safety_kinds
        CHECK (safety <@ ARRAY['phone', 'email', 'link', 'iban', 'payment']::text[]);

-- A sender's flagged messages of a day, counted when one more is flagged.
CREATE INDEX messages_flagged_by_sender ON messages (sender_id, created_at)
    WHERE safety <> '{}';

-- A system report: no reporter; the user it is about and its day (UTC), once per both.
ALTER TABLE reports
    ALTER COLUMN reporter_id DROP NOT NULL,
    ADD COLUMN subject_id bigint REFERENCES users (id),
    ADD COLUMN system_day date,
    ADD CONSTRAINT reports_by_someone CHECK (
        (reporter_id IS NULL) = (subject_id IS NOT NULL AND system_day IS NOT NULL));
CREATE UNIQUE INDEX reports_system_once_a_day ON reports (subject_id, system_day)
    WHERE reporter_id IS NULL;

-- send_many (sql/010) with each message's safety kinds, as a comma-separated text per
-- message (an array of arrays must be rectangular): the same statement otherwise.
DROP FUNCTION send_many(bigint[], bigint[], text[], text[], text[], text[]);

CREATE FUNCTION send_many(
    conversation_ids bigint[], sender_ids bigint[], message_types text[], contents text[],
    metadatas text[], client_msg_ids text[], safeties text[]
) RETURNS TABLE (
    id bigint, conversation_id bigint, seq bigint, sender_id bigint, recipient_id bigint,
    message_type text, content text, metadata jsonb, client_msg_id text, is_read boolean,
    read_at timestamptz, created_at timestamptz, edited_at timestamptz, unsent_at timestamptz,
    offer_status text, safety text[], badge_count integer, badge_total bigint,
    badge_version bigint
)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    sent messages[];
BEGIN
    WITH stored AS (
        INSERT INTO messages (conversation_id, sender_id, recipient_id, message_type, content,
                              metadata, client_msg_id, safety)
        SELECT c.id, u.sender_id,
               CASE WHEN c.buyer_id = u.sender_id THEN c.seller_id ELSE c.buyer_id END,
               u.message_type, u.content, u.metadata::jsonb, u.client_msg_id,
               string_to_array(u.safety, ',')
          FROM unnest(conversation_ids, sender_ids, message_types, contents, metadatas,
                      client_msg_ids, safeties)
               WITH ORDINALITY AS u(conversation_id, sender_id, message_type, content, metadata,
                                    client_msg_id, safety, arrival)
          JOIN conversations c ON c.id = u.conversation_id
                              AND u.sender_id IN (c.buyer_id, c.seller_id)
                              AND NOT (c.blocked_by_buyer OR c.blocked_by_seller)
         WHERE NOT EXISTS (SELECT 1 FROM messages m
                            WHERE m.sender_id = u.sender_id
                              AND m.client_msg_id = u.client_msg_id)
         ORDER BY c.id, u.arrival
        RETURNING messages
    )
    SELECT array_agg(stored.messages) INTO sent FROM stored;
    -- A new statement: it sees the rows above and what their triggers did to the counters.
    RETURN QUERY
    SELECT m.id, m.conversation_id, m.seq, m.sender_id, m.recipient_id, m.message_type,
           m.content, m.metadata, m.client_msg_id, m.is_read, m.read_at, m.created_at,
           m.edited_at, m.unsent_at, m.offer_status, m.safety,
           CASE WHEN c.buyer_id = m.recipient_id THEN c.buyer_unread_count
                ELSE c.seller_unread_count END,
           (coalesce(b.total, 0) - coalesce((SELECT sum(s.n) FROM (
                SELECT buyer_unread_count AS n FROM conversations
                 WHERE buyer_id = m.recipient_id
                   AND (blocked_by_buyer OR buyer_muted_until IS NOT NULL)
                UNION ALL
                SELECT seller_unread_count FROM conversations
                 WHERE seller_id = m.recipient_id
                   AND (blocked_by_seller OR seller_muted_until IS NOT NULL)
                ) s), 0))::bigint,
           coalesce(b.version, 0)
      FROM unnest(sent) m
      JOIN conversations c ON c.id = m.conversation_id
      LEFT JOIN badges b ON b.user_id = m.recipient_id;
END;
$$;
