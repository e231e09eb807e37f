-- Offline notifications: a transactional outbox.
--
-- The statement that raises a recipient's unread count also opens (or joins) that recipient's
-- notification window, in the same transaction: a refused message schedules nothing, and a
-- crash after the commit loses nothing. Every process's dispatcher (usecases/notifications.py)
-- claims due rows with FOR UPDATE SKIP LOCKED under a lease, builds the notification from the
-- recipient's state at that moment, and delivers it as a signed webhook.
--
-- A row's life: pending (window open: built_at NULL) -> pending (built, being delivered) ->
-- delivered | skipped | failed. `retry` puts a failed row back to pending, built.
--
-- A sender never writes an open window: the insert that opens one is `DO NOTHING` when it is
-- already open (an index probe, no row written or locked). What keeps a message from joining
-- a window unseen is the recipient's badge row, which every such statement already holds
-- (004's trigger updates it) until it commits. A dispatcher closing a window first takes that
-- row FOR SHARE: it waits for the senders in flight, and sees their messages; a sender that
-- comes later waits for the close, finds the window gone, and opens the next one.
--
-- Lock order (extends 004's): badge rows, then notification rows, in both the senders and the
-- dispatcher, so they never wait in a cycle.

CREATE TABLE notifications (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id          bigint NOT NULL REFERENCES users (id),
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'delivered', 'skipped', 'failed')),
    -- The window opened with the first message that raised the recipient's unread count.
    created_at       timestamptz NOT NULL DEFAULT now(),
    -- When the window closed: the body (exact bytes, signed anew for each attempt).
    built_at         timestamptz,
    body             text,
    -- Delivery: the next attempt is due at next_attempt_at (NULL: when the window closes,
    -- created_at + PARLEY_NOTIFY_DELAY_SECONDS); a claim holds the row until lease_until.
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz,
    lease_until      timestamptz,
    lease_token      uuid,
    last_error       text,
    skip_reason      text,
    finished_at      timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT notifications_built_has_body CHECK ((built_at IS NULL) = (body IS NULL)),
    CONSTRAINT notifications_skipped_has_reason
        CHECK ((status = 'skipped') = (skip_reason IS NOT NULL))
);

-- At most one open window per recipient: later messages join it.
CREATE UNIQUE INDEX notifications_open_window ON notifications (user_id)
    WHERE status = 'pending' AND built_at IS NULL;
-- What the dispatchers look through: the pending rows only, oldest window first.
CREATE INDEX notifications_pending ON notifications (created_at, id) WHERE status = 'pending';
-- The internal API's listing, per status and per user, and the purge of old finished rows.
CREATE INDEX notifications_by_status ON notifications (status, id);
CREATE INDEX notifications_by_user ON notifications (user_id, id);
CREATE INDEX notifications_finished ON notifications (finished_at) WHERE finished_at IS NOT NULL;

-- 004's badge trigger, plus the window: once per statement, after the badge rows.
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
       SET total = b.total + d.n, version = b.version + 1
      FROM (SELECT recipient_id, count(*) AS n FROM inserted
             WHERE recipient_id IS NOT NULL AND NOT is_read
             GROUP BY recipient_id) d
     WHERE b.user_id = d.recipient_id;
    -- Open each recipient's window unless one is open (see the top of this file).
    INSERT INTO notifications (user_id)
    SELECT DISTINCT recipient_id FROM inserted
     WHERE recipient_id IS NOT NULL AND NOT is_read
     ORDER BY recipient_id
        ON CONFLICT (user_id) WHERE status = 'pending' AND built_at IS NULL DO NOTHING;
    RETURN NULL;
END;
$$;
