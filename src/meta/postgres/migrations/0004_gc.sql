-- Garbage collection and integrity.
-- A tombstone marks content whose rows are gone and whose object is being
-- deleted: nothing may record that digest again until the tombstone is cleared.
CREATE TABLE gc_tombstones (
    digest  TEXT COLLATE "C" PRIMARY KEY,
    at      BIGINT NOT NULL
);

-- Content that fsck found corrupt is not served until it is pushed again.
ALTER TABLE contents ADD COLUMN corrupt BOOLEAN NOT NULL DEFAULT false;

-- An upload in its final step names the digest it is moving into place, so
-- that garbage collection leaves that digest alone.
ALTER TABLE uploads ADD COLUMN finishing TEXT COLLATE "C";
CREATE INDEX uploads_by_finishing ON uploads(finishing) WHERE finishing IS NOT NULL;
CREATE INDEX uploads_by_activity ON uploads(updated_at);
CREATE INDEX contents_by_age ON contents(created_at);
