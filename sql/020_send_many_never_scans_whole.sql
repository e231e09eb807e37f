-- send_many (sql/014) plans with sequential scans priced out.
--
-- A backend plans send_many's statements, and those of the triggers it fires, once and keeps
-- the plans. Planned while the planner's statistics still said messages was empty (a fresh
-- database: the first minute of a deployment, or any benchmark run), the idempotency check
-- became a hash anti-join over a scan of all of messages, and kept being one on every send
-- as the table grew, until an ANALYZE made the backend plan again. Every look-up on the send
-- path has an index; with enable_seqscan off for the call, the planner takes it whatever the
-- statistics say (tests/store/test_plans_kept.py).
ALTER FUNCTION send_many(bigint[], bigint[], text[], text[], text[], text[], text[])
    SET enable_seqscan = off;
