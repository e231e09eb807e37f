-- Reports for moderation: a participant reports a message of the other side, once; the
-- marketplace lists the open ones and resolves them through the internal API. The message
-- itself, with every earlier version (message_versions), is the evidence.

CREATE TABLE reports (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id   bigint NOT NULL REFERENCES messages (id),
    reporter_id  bigint NOT NULL REFERENCES users (id),
    reason       text NOT NULL CHECK (length(reason) BETWEEN 1 AND 1000),
    status       text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved')),
    resolution   text CHECK (length(resolution) <= 1000),
    created_at   timestamptz NOT NULL DEFAULT now(),
    resolved_at  timestamptz,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT reports_once_per_reporter UNIQUE (reporter_id, message_id),
    CONSTRAINT reports_resolved_has_time CHECK ((status = 'resolved') = (resolved_at IS NOT NULL))
);

-- The moderation queue: open reports, oldest first (and resolved ones for the record).
CREATE INDEX reports_by_status ON reports (status, id);

CREATE TRIGGER reports_touch_updated_at BEFORE UPDATE ON reports
    FOR EACH ROW EXECUTE FUNCTION touch_updated_at();
