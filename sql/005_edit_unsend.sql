-- Edit and unsend, by the sender, within a window the application enforces. A message row
-- always holds what the participants see now; every earlier version is kept, for disputes,
-- in message_versions, which only ever grows.
--
-- Lock order (as in 004): the conversation row first (the store locks it before the message),
-- then the message row, then, at the end of the statement, badge rows in user-id order.

ALTER TABLE messages
    ADD COLUMN edited_at timestamptz,
    ADD COLUMN unsent_at timestamptz,
    -- An unsent message counts for nobody: it is read from the moment it was unsent (so the
    -- recipient's counter and badge drop once, by 004's read trigger, and never again).
    ADD CONSTRAINT messages_unsent_is_read CHECK (unsent_at IS NULL OR is_read),
    ADD CONSTRAINT messages_unsent_is_empty
        CHECK (unsent_at IS NULL OR (content = '' AND metadata = '{}'::jsonb)),
    ADD CONSTRAINT messages_system_is_never_changed
        CHECK (message_type <> 'system' OR (edited_at IS NULL AND unsent_at IS NULL));

CREATE TABLE message_versions (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id  bigint NOT NULL REFERENCES messages (id),
    -- What the change was, and the message as it was before it.
    change      text NOT NULL CHECK (change IN ('edit', 'unsend')),
    content     text NOT NULL,
    metadata    jsonb NOT NULL,
    changed_by  bigint NOT NULL REFERENCES users (id),
    changed_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX message_versions_by_message ON message_versions (message_id, id);

CREATE FUNCTION message_versions_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'message_versions is append-only: % refused', TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$;

CREATE TRIGGER message_versions_append_only
    BEFORE UPDATE OR DELETE ON message_versions
    FOR EACH ROW EXECUTE FUNCTION message_versions_append_only();

-- The preview shows the newest message that is still there: an edit of it changes the text,
-- an unsend of it falls back to the one before (or to nothing). last_message_at stays the
-- time of the last activity, so the inbox's order does not jump.
CREATE FUNCTION messages_follow_changes() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE conversations c
       SET last_message_text      = left(v.content, 200),
           last_message_type      = v.message_type,
           last_message_sender_id = v.sender_id
      FROM (SELECT NEW.conversation_id AS conversation_id) k
      LEFT JOIN LATERAL (
            SELECT m.content, m.message_type, m.sender_id
              FROM messages m
             WHERE m.conversation_id = k.conversation_id AND m.unsent_at IS NULL
             ORDER BY m.seq DESC
             LIMIT 1) v ON true
     WHERE c.id = k.conversation_id
       AND (c.last_message_text, c.last_message_type, c.last_message_sender_id)
           IS DISTINCT FROM (left(v.content, 200), v.message_type, v.sender_id);
    RETURN NULL;
END;
$$;

CREATE TRIGGER messages_follow_changes
    AFTER UPDATE OF content, unsent_at ON messages
    FOR EACH ROW
    WHEN (OLD.content IS DISTINCT FROM NEW.content OR OLD.unsent_at IS DISTINCT FROM NEW.unsent_at)
    EXECUTE FUNCTION messages_follow_changes();
