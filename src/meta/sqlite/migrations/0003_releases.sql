-- Releases: tag moves carry a reason and the digest they moved from into the
-- event log, and webhooks keep a durable cursor into that log (the outbox).

ALTER TABLE events ADD COLUMN old_digest TEXT;
ALTER TABLE events ADD COLUMN reason TEXT;

CREATE TABLE webhook_cursors (
    name        TEXT PRIMARY KEY,
    last_event  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
) WITHOUT ROWID;
