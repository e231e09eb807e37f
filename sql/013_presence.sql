-- Presence: whether a user is online lives in the broker (Redis with expiry, or the process
-- for memory://; server/parley/presence/), and what outlives it here. `last_seen_at` is when
-- the user's last socket closed (or when a dead gateway's claim on them expired); NULL:
-- never seen since this migration. `show_presence` false hides both from everyone.
ALTER TABLE users
    ADD COLUMN last_seen_at  timestamptz,
    ADD COLUMN show_presence boolean NOT NULL DEFAULT true;
