-- send_many writes a batch in one pass: each conversation is locked, advanced and written
-- once a batch, not once a message.
--
-- Until now every inserted row ran the seq trigger (sql/020), whose UPDATE of the conversation
-- is a new executor run per message: its SET compiled, its constraints checked, a new row
-- version with its index entries. At 128 clients a batch holds about a hundred messages and
-- that per-row work was most of Postgres's time a message, the chain's link included
-- (docs/benchmarks.md). Now:
--
-- 1. send_many locks the batch's conversations in id order and, from their locked rows, gives
--    each message its id, seq, time and link (digest and hash, the fold done per conversation
--    in arrival order), then inserts the rows with those values.
-- 2. While that INSERT runs, send_many sets parley.seqs_brought (transaction-local). Then,
--    and only then, a row that comes with its seq skips the seq trigger. Every other insert
--    (send_message, notices, offers) goes through it as before, whatever seq it names.
-- 3. A statement trigger, on only while the setting is, moves each conversation past the
--    statement's rows, once per conversation: last_seq, the preview, the unread counters,
--    the flags a send clears, and the chain's head. It refuses rows that are not exactly the
--    next seqs and links of their conversation, so whoever sets the setting by hand still
--    keeps the seqs gapless and the chain's numbering whole (verify checks the hashes).
--    It runs inside a trigger, so the badge trigger on conversations (pg_trigger_depth() = 0)
--    stays quiet: the badges move by the inserted rows, as for any insert.
--    Gated so, it costs a single-row insert nothing; ungated, 70 us of its 460.
--
-- A batch with an offer goes the old way: opening an offer supersedes the open one, which
-- appends a link while the insert runs, so the links cannot be worked out beforehand.

-- parley.seqs_brought is 'on' only while send_many's own INSERT runs (transaction-local).
DROP TRIGGER messages_assign_seq ON messages;
CREATE TRIGGER messages_assign_seq BEFORE INSERT ON messages
    FOR EACH ROW
    WHEN (NEW.seq IS NULL OR current_setting('parley.seqs_brought', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION messages_assign_seq();

CREATE FUNCTION messages_advance_heads() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    groups   bigint;
    advanced bigint;
BEGIN
    WITH brought AS (
        -- Per conversation, the rows the seq trigger did not see: their conversation is not
        -- past them yet. Its row is locked by whoever brought them (send_many) or, failing
        -- that, by the UPDATE below before it is written.
        SELECT c.id, count(*) AS n, min(i.seq) AS first_seq, max(i.seq) AS last_seq,
               min(i.chain_n) AS first_n, max(i.chain_n) AS last_n,
               max(i.created_at) AS last_at,
               count(*) FILTER (WHERE NOT i.is_read AND i.recipient_id = c.buyer_id
                                  AND i.seq > c.buyer_cleared_seq) AS to_buyer,
               count(*) FILTER (WHERE NOT i.is_read AND i.recipient_id = c.seller_id
                                  AND i.seq > c.seller_cleared_seq) AS to_seller,
               bool_and(i.sender_id IS NULL) AS notices_only,
               -- The newest row's fields. A join on the transition table for that row is
               -- planned without statistics, and cost 15 % at 128 clients (benchmarks.md).
               (array_agg(i.content ORDER BY i.seq DESC))[1] AS newest_content,
               (array_agg(i.message_type ORDER BY i.seq DESC))[1] AS newest_type,
               (array_agg(i.sender_id ORDER BY i.seq DESC))[1] AS newest_sender,
               (array_agg(i.chain_hash ORDER BY i.seq DESC))[1] AS newest_hash
          FROM inserted i
          JOIN conversations c ON c.id = i.conversation_id
         GROUP BY c.id
        HAVING max(i.seq) > c.last_seq
    ), moved AS (
        UPDATE conversations c
           SET last_seq               = d.last_seq,
               last_message_text      = left(d.newest_content, 200),
               last_message_type      = d.newest_type,
               last_message_sender_id = d.newest_sender,
               last_message_at        = GREATEST(d.last_at, c.last_message_at),
               buyer_unread_count     = c.buyer_unread_count + d.to_buyer,
               seller_unread_count    = c.seller_unread_count + d.to_seller,
               deleted_by_buyer       = c.deleted_by_buyer   AND d.notices_only,
               deleted_by_seller      = c.deleted_by_seller  AND d.notices_only,
               archived_by_buyer      = c.archived_by_buyer  AND d.notices_only,
               archived_by_seller     = c.archived_by_seller AND d.notices_only,
               chain_n                = d.last_n,
               chain_hash             = d.newest_hash,
               updated_at             = now()
          FROM brought d
         WHERE c.id = d.id
           AND d.first_seq = c.last_seq + 1 AND d.last_seq = c.last_seq + d.n
           AND d.first_n = c.chain_n + 1 AND d.last_n = c.chain_n + d.n
           AND d.newest_hash IS NOT NULL
        RETURNING c.id
    )
    SELECT (SELECT count(*) FROM brought), (SELECT count(*) FROM moved) INTO groups, advanced;
    IF advanced <> groups THEN
        RAISE EXCEPTION 'messages inserted with a seq must be their conversation''s next ones'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'messages_seq_is_next';
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER messages_advance_heads AFTER INSERT ON messages
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT WHEN (current_setting('parley.seqs_brought', true) = 'on')
    EXECUTE FUNCTION messages_advance_heads();

-- A message's record digest: the bytes of chain_record(VARIADIC chain_message_record(...)),
-- which verify rebuilds it with, built as sql/020's seq trigger builds them.
CREATE FUNCTION chain_message_digest(
    id bigint, seq bigint, sender_id bigint, recipient_id bigint, message_type text,
    content text, metadata jsonb, created_at timestamptz
) RETURNS bytea
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT sha256(convert_to(
        chain_field(id::text) || chain_field(seq::text) || chain_field(sender_id::text)
        || chain_field(recipient_id::text) || chain_field(message_type) || chain_field(content)
        || chain_field(metadata::text) || chain_time_field(created_at), 'UTF8'))
$$;

-- The function so far, for a batch with an offer.
ALTER FUNCTION send_many(bigint[], bigint[], text[], text[], text[], text[], text[])
    RENAME TO send_many_row_by_row;

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
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan  -- as sql/020 says of the function it replaces
AS $$
#variable_conflict use_column
DECLARE
    ids  regclass := pg_get_serial_sequence('messages', 'id')::regclass;
    sent messages[];
BEGIN
    IF 'offer' = ANY (message_types) THEN
        RETURN QUERY SELECT * FROM send_many_row_by_row(
            conversation_ids, sender_ids, message_types, contents, metadatas, client_msg_ids,
            safeties);
        RETURN;
    END IF;
    PERFORM set_config('parley.seqs_brought', 'on', true);
    WITH RECURSIVE locked AS (
        SELECT c.id, c.buyer_id, c.seller_id, c.last_seq, c.last_message_at, c.chain_n,
               c.chain_hash
          FROM conversations c
         WHERE c.id = ANY (conversation_ids)
           AND NOT (c.blocked_by_buyer OR c.blocked_by_seller)
         ORDER BY c.id
           FOR UPDATE
    ), sends AS (
        SELECT s.*,
               chain_message_digest(s.id, s.seq, s.sender_id, s.recipient_id, s.message_type,
                                    s.content, s.metadata, s.created_at) AS digest
          FROM (SELECT nextval(ids) AS id,
                       c.id AS conversation_id,
                       c.last_seq + row_number() OVER w AS seq,
                       c.chain_n + row_number() OVER w AS chain_n,
                       row_number() OVER w AS k,
                       c.chain_hash AS head,
                       u.sender_id,
                       CASE WHEN c.buyer_id = u.sender_id THEN c.seller_id
                            ELSE c.buyer_id END AS recipient_id,
                       u.message_type, u.content, u.metadata::jsonb AS metadata,
                       u.client_msg_id, string_to_array(u.safety, ',') AS safety,
                       GREATEST(now(), c.last_message_at) AS created_at
                  FROM unnest(conversation_ids, sender_ids, message_types, contents,
                              metadatas, client_msg_ids, safeties)
                       WITH ORDINALITY AS u(conversation_id, sender_id, message_type,
                                            content, metadata, client_msg_id, safety,
                                            arrival)
                  JOIN locked c ON c.id = u.conversation_id
                               AND u.sender_id IN (c.buyer_id, c.seller_id)
                 WHERE NOT EXISTS (SELECT 1 FROM messages m
                                    WHERE m.sender_id = u.sender_id
                                      AND m.client_msg_id = u.client_msg_id)
                WINDOW w AS (PARTITION BY c.id ORDER BY u.arrival)) s
    ), chained AS (
        SELECT s.*, sha256(s.head || '\x6d657373616765'::bytea || s.digest) AS hash
          FROM sends s WHERE s.k = 1
        UNION ALL
        SELECT s.*, sha256(p.hash || '\x6d657373616765'::bytea || s.digest)
          FROM chained p JOIN sends s ON s.conversation_id = p.conversation_id
                                     AND s.k = p.k + 1
    ), stored AS (
        INSERT INTO messages (id, conversation_id, seq, sender_id, recipient_id,
                              message_type, content, metadata, client_msg_id, safety,
                              created_at, chain_n, chain_digest, chain_hash)
        OVERRIDING SYSTEM VALUE
        SELECT c.id, c.conversation_id, c.seq, c.sender_id, c.recipient_id, c.message_type,
               c.content, c.metadata, c.client_msg_id, c.safety, c.created_at, c.chain_n,
               c.digest, c.hash
          FROM chained c
         ORDER BY c.conversation_id, c.seq
        RETURNING messages
    )
    SELECT array_agg(stored.messages) INTO sent FROM stored;
    PERFORM set_config('parley.seqs_brought', '', true);
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
