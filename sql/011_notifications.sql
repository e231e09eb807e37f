-- Offline notifications: a transactional outbox.
--
-- The window: the statement that raises a recipient's unread count already updates their
-- badge row (004's trigger), and now also sets `badges.unread_since` when it is NULL. That
-- opens the recipient's window in the message's own transaction, at no extra statement: a
-- refused message opens nothing, and a crash after the commit loses nothing.
--
-- The close: every process's dispatcher (usecases/notifications.py) takes a badge row whose
-- window is due FOR UPDATE SKIP LOCKED, reads the recipient's state, writes one row here
-- (pending with its body, or skipped with the reason) and sets `unread_since` back to NULL,
-- in one transaction. Senders hold the same badge row until they commit, so a message is
-- either seen by the close (the close waited for it, or skipped the row and comes back) or
-- comes after it and opens the next window. No message is left outside every window.
--
-- Delivery: pending rows are claimed under a lease (lease_until, and a lease_token that every
-- later write names), retried at next_attempt_at, and end delivered or failed.
--
-- Lock order (extends 004's): badge rows, then notification rows.

ALTER TABLE badges ADD COLUMN unread_since timestamptz;

-- The open windows, oldest first, for the dispatchers. A window's later messages leave the
-- column as it is, so their badge updates stay HOT.
CREATE INDEX badges_open_windows ON badges (unread_since) WHERE unread_since IS NOT NULL;

CREATE TABLE notifications (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id          bigint NOT NULL REFERENCES users (id),
    status           text NOT NULL
                     CHECK (status IN ('pending', 'delivered', 'skipped', 'failed')),
    -- The window: opened by the recipient's first unread message, closed when this row was
    -- written. body is the exact bytes every attempt sends (signed anew each time).
    window_opened_at timestamptz NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    body             text,
    skip_reason      text,
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz,
    lease_until      timestamptz,
    lease_token      uuid,
    last_error       text,
    finished_at      timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT notifications_skipped_has_reason
        CHECK ((status = 'skipped') = (skip_reason IS NOT NULL)),
    CONSTRAINT notifications_sent_has_body CHECK (status = 'skipped' OR body IS NOT NULL),
    CONSTRAINT notifications_finished_has_time
        CHECK ((status = 'pending') = (finished_at IS NULL))
);

-- What the dispatchers look through for attempts: the pending rows only.
CREATE INDEX notifications_due ON notifications (next_attempt_at, id) WHERE status = 'pending';
-- The internal API's listing, per status and per user, and the purge of old finished rows.
CREATE INDEX notifications_by_status ON notifications (status, id);
CREATE INDEX notifications_by_user ON notifications (user_id, id);
CREATE INDEX notifications_finished ON notifications (finished_at) WHERE finished_at IS NOT NULL;

-- 004's badge trigger, plus the window: the same UPDATE opens it.
CREATE OR REPLACE FUNCTION messages_badge_inserts() RETURNS trigger
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
       SET total = b.total + d.n, version = b.version + 1,
           unread_since = coalesce(b.unread_since, now())
      FROM (SELECT recipient_id, count(*) AS n FROM inserted
             WHERE recipient_id IS NOT NULL AND NOT is_read
             GROUP BY recipient_id) d
     WHERE b.user_id = d.recipient_id;
    RETURN NULL;
END;
$$;
