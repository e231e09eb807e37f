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

-- An erasure is not an edit: no link (sql/015), and it cannot be undone.
CREATE OR REPLACE FUNCTION messages_chain_changes() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    version record;
BEGIN
    IF OLD.erased_at IS NOT NULL AND NEW.erased_at IS NULL THEN
        RAISE EXCEPTION 'message % was erased: it cannot be restored', OLD.id
            USING ERRCODE = 'restrict_violation';
    END IF;
    IF OLD.erased_at IS NULL AND NEW.erased_at IS NOT NULL THEN
        NULL;  -- the erasure's own redaction
    ELSIF (OLD.content, OLD.metadata, OLD.unsent_at)
          IS DISTINCT FROM (NEW.content, NEW.metadata, NEW.unsent_at) THEN
        SELECT v.id, v.changed_by, v.changed_at INTO version
          FROM message_versions v WHERE v.message_id = NEW.id ORDER BY v.id DESC LIMIT 1;
        IF NEW.unsent_at IS NOT NULL AND OLD.unsent_at IS NULL THEN
            PERFORM chain_append(
                NEW.conversation_id, 'unsend', NEW.id, version.id, NULL, version.changed_at,
                sha256(chain_record(VARIADIC chain_unsend_record(
                    NEW.id, version.id, version.changed_by, version.changed_at))));
        ELSE
            PERFORM chain_append(
                NEW.conversation_id, 'edit', NEW.id, version.id, NULL, version.changed_at,
                sha256(chain_record(VARIADIC chain_edit_record(
                    NEW.id, version.id, version.changed_by, NEW.content, NEW.metadata,
                    version.changed_at))));
        END IF;
    END IF;
    IF OLD.offer_status IS DISTINCT FROM NEW.offer_status THEN
        PERFORM chain_append(
            NEW.conversation_id, 'offer', NEW.id, NULL, NEW.offer_status, now(),
            sha256(chain_record(VARIADIC chain_offer_record(NEW.id, NEW.offer_status, now()))));
    END IF;
    RETURN NULL;
END;
$$;

DROP TRIGGER messages_chain_changes ON messages;
CREATE TRIGGER messages_chain_changes
    AFTER UPDATE OF content, metadata, unsent_at, offer_status, erased_at ON messages
    FOR EACH ROW
    WHEN ((OLD.content, OLD.metadata, OLD.unsent_at, OLD.offer_status, OLD.erased_at)
          IS DISTINCT FROM (NEW.content, NEW.metadata, NEW.unsent_at, NEW.offer_status,
                            NEW.erased_at))
    EXECUTE FUNCTION messages_chain_changes();
