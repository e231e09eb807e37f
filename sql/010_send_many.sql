-- A batch of sends, and what its events need, in one round trip.
--
-- A gateway answers a send only once the message and the recipient's badge are with the
-- broker, so whatever sits between the commit and the publish is on every sender's wait. The
-- badge was one more query after the INSERT; this function runs the INSERT (every trigger of
-- 002-008 fires as for any insert) and then reads, in the same transaction, each inserted
-- message's recipient's badge: their count in the conversation, their shown total (less the
-- conversations they silenced, as store/_sql.py's shown_total) and its version. Those rows are
-- locked by this transaction until it commits, so the three are true together.
--
-- Rows go in conversation-id order (then arrival order), so concurrent batches take
-- conversation locks in one order and cannot deadlock. A send whose (sender, client_msg_id)
-- exists, or whose sender is not a participant of an unblocked conversation, yields no row;
-- the store looks those up afterwards.

CREATE FUNCTION send_many(
    conversation_ids bigint[], sender_ids bigint[], message_types text[], contents text[],
    metadatas text[], client_msg_ids text[]
) RETURNS TABLE (
    id bigint, conversation_id bigint, seq bigint, sender_id bigint, recipient_id bigint,
    message_type text, content text, metadata jsonb, client_msg_id text, is_read boolean,
    read_at timestamptz, created_at timestamptz, edited_at timestamptz, unsent_at timestamptz,
    offer_status text, badge_count integer, badge_total bigint, badge_version bigint
)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    sent messages[];
BEGIN
    WITH stored AS (
        INSERT INTO messages (conversation_id, sender_id, recipient_id, message_type, content,
                              metadata, client_msg_id)
        SELECT c.id, u.sender_id,
               CASE WHEN c.buyer_id = u.sender_id THEN c.seller_id ELSE c.buyer_id END,
               u.message_type, u.content, u.metadata::jsonb, u.client_msg_id
          FROM unnest(conversation_ids, sender_ids, message_types, contents, metadatas,
                      client_msg_ids)
               WITH ORDINALITY AS u(conversation_id, sender_id, message_type, content, metadata,
                                    client_msg_id, arrival)
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
           m.edited_at, m.unsent_at, m.offer_status,
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
