-- Releases: tag moves carry a reason and the digest they moved from into the
-- event log, and webhooks keep a durable cursor into that log (the outbox).

ALTER TABLE events ADD COLUMN old_digest TEXT COLLATE "C";
ALTER TABLE events ADD COLUMN reason TEXT;

CREATE TABLE webhook_cursors (
    name        TEXT COLLATE "C" PRIMARY KEY,
    last_event  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
