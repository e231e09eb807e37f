-- Demo mode seeds its marketplace once (server/parley/demo.py): this one row says it did, so
-- a restart never redoes it over what visitors changed (an accepted offer, a block). Outside
-- demo mode the table stays empty.

CREATE TABLE demo_seed (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    seeded_at  timestamptz NOT NULL DEFAULT now()
);
