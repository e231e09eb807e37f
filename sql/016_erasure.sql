-- A user's erasure (DELETE /internal/users/{id}, store/erasure.py): the profile is blanked to
-- "Deleted user", and the content of every message they sent, and of every earlier version
-- of it, is redacted. The rows, their seqs and the chain's links stay: the other party keeps
-- the conversation, and a record that can no longer be rebuilt is stood for by its digest
-- (store/chain.py), so verify stays ok. Offers keep their amount: a deal, not a person.

ALTER TABLE users ADD COLUMN erased_at timestamptz;
ALTER TABLE messages ADD COLUMN erased_at timestamptz;
ALTER TABLE message_versions ADD COLUMN erased_at timestamptz;

-- message_versions only grows, but for one change: its erasure, and nothing else with it.
CREATE OR REPLACE FUNCTION message_versions_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.erased_at IS NULL AND NEW.erased_at IS NOT NULL
       AND NEW.content = '' AND NEW.metadata = '{}'::jsonb
       AND (NEW.id, NEW.message_id, NEW.change, NEW.changed_by, NEW.changed_at)
           = (OLD.id, OLD.message_id, OLD.change, OLD.changed_by, OLD.changed_at) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'message_versions is append-only: % refused', TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$;

-- An erasure is not an edit: the statement that erases appends no link (sql/015's trigger
-- does not fire when erased_at changes), and an erasure is never undone.
DROP TRIGGER messages_chain_changes ON messages;
CREATE TRIGGER messages_chain_changes
    AFTER UPDATE OF content, metadata, unsent_at, offer_status ON messages
    FOR EACH ROW
    WHEN ((OLD.content, OLD.metadata, OLD.unsent_at, OLD.offer_status)
          IS DISTINCT FROM (NEW.content, NEW.metadata, NEW.unsent_at, NEW.offer_status)
          AND OLD.erased_at IS NOT DISTINCT FROM NEW.erased_at)
    EXECUTE FUNCTION messages_chain_changes();

CREATE FUNCTION messages_erasure_is_final() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'message % was erased: it cannot be restored', OLD.id
        USING ERRCODE = 'restrict_violation';
END;
$$;

CREATE TRIGGER messages_erasure_is_final
    BEFORE UPDATE OF erased_at ON messages
    FOR EACH ROW WHEN (OLD.erased_at IS NOT NULL AND NEW.erased_at IS NULL)
    EXECUTE FUNCTION messages_erasure_is_final();
