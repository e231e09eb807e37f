-- What a send costs Postgres, cut where a profile of one backend found it (docs/benchmarks.md).
--
-- 1. send_many's two statements were planned again on every call. Its arrays are parameters,
--    so each custom plan knows the batch's length and always looks cheaper than the generic
--    plan, and the plan cache never settles on the generic one: at one message a statement,
--    planning was 40 % of the backend's time. The generic plan is the one wanted at any
--    length (the conversation and the idempotency key by their indexes, in a nested loop), so
--    the function says so.
-- 2. The seq trigger's UPDATE is a new executor run per message, so everything in it is set up
--    again for each row: its SET expressions compiled, the conversation's CHECK constraints
--    read back from their stored form and compiled. The chain's head had two CHECKs of its own
--    (018), 5 % of a multi-row insert; they go. Only the triggers write the head, and verify
--    compares it with the chain's last link, which any bad head fails.
-- 3. The link's record (sql/015: every field as <bytes>:<text>) was built twice a message, in
--    the SET and for the row, each field three times over (chain_field names its argument
--    thrice). The six fields known before the conversation is locked are now built once,
--    before the UPDATE; the time, whose text is 27 bytes for any finite year below 10000, is
--    formatted once per record. The bytes are those chain_record(chain_message_record(...))
--    gives, which verify rebuilds them with (tests/store/test_chain_records.py).

ALTER FUNCTION send_many(bigint[], bigint[], text[], text[], text[], text[], text[])
    SET plan_cache_mode = force_generic_plan;

ALTER TABLE conversations
    DROP CONSTRAINT conversations_chain_n_check,
    DROP CONSTRAINT conversations_chain_hash_check;

-- chain_field(chain_time(t)), with to_char called once.
CREATE FUNCTION chain_time_field(t timestamptz) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN isfinite(t) AND t < '10000-01-01 00:00:00+00'::timestamptz
                THEN '27:' || chain_time(t) ELSE chain_field(chain_time(t)) END
$$;

-- 018's seq function, the record built as above ('\x6d657373616765' is 'message' in UTF-8).
CREATE OR REPLACE FUNCTION messages_assign_seq() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    -- The record's fields but seq (the second) and created_at (the last), as chain_field
    -- writes them.
    id_field text := chain_field(NEW.id::text);
    known    text := chain_field(NEW.sender_id::text) || chain_field(NEW.recipient_id::text)
                  || chain_field(NEW.message_type) || chain_field(NEW.content)
                  || chain_field(NEW.metadata::text);
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
           chain_hash             = sha256(c.chain_hash || '\x6d657373616765'::bytea
               || sha256(convert_to(
                      id_field || chain_field((c.last_seq + 1)::text) || known
                      || chain_time_field(GREATEST(NEW.created_at, c.last_message_at)),
                      'UTF8'))),
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
    NEW.chain_digest := sha256(convert_to(
        id_field || chain_field(NEW.seq::text) || known || chain_time_field(NEW.created_at),
        'UTF8'));
    RETURN NEW;
END;
$$;

-- 018's digest function, which only its seq function called.
DROP FUNCTION chain_message_digest(bigint, bigint, bigint, bigint, text, text, jsonb, timestamptz);
