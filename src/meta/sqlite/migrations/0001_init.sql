-- Berth metadata schema, version 1.
-- Repository names are stored as text in every table: they are the key users
-- query by, and SQLite's covering indexes make the joins unnecessary.

CREATE TABLE repositories (
    name        TEXT PRIMARY KEY,
    created_at  INTEGER NOT NULL
) WITHOUT ROWID;

-- Content whose bytes are verified and stored (blobs and manifests).
CREATE TABLE contents (
    digest      TEXT PRIMARY KEY,
    size        INTEGER NOT NULL,
    created_at  INTEGER NOT NULL
) WITHOUT ROWID;

-- Which repository may serve which blob (pushed, mounted or referenced).
CREATE TABLE repo_blobs (
    repo        TEXT NOT NULL REFERENCES repositories(name),
    digest      TEXT NOT NULL REFERENCES contents(digest),
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (repo, digest)
) WITHOUT ROWID;
CREATE INDEX repo_blobs_by_digest ON repo_blobs(digest);

CREATE TABLE manifests (
    repo          TEXT NOT NULL REFERENCES repositories(name),
    digest        TEXT NOT NULL REFERENCES contents(digest),
    media_type    TEXT NOT NULL,
    artifact_type TEXT,
    subject       TEXT,
    size          INTEGER NOT NULL,
    annotations   TEXT,
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (repo, digest)
) WITHOUT ROWID;
CREATE INDEX manifests_by_subject ON manifests(repo, subject) WHERE subject IS NOT NULL;

-- What each manifest points at: blobs (config, layers) and child manifests.
CREATE TABLE manifest_refs (
    repo      TEXT NOT NULL,
    manifest  TEXT NOT NULL,
    child     TEXT NOT NULL,
    kind      TEXT NOT NULL CHECK (kind IN ('blob', 'manifest')),
    PRIMARY KEY (repo, manifest, kind, child),
    FOREIGN KEY (repo, manifest) REFERENCES manifests(repo, digest) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX manifest_refs_by_child ON manifest_refs(child);

CREATE TABLE tags (
    repo        TEXT NOT NULL,
    name        TEXT NOT NULL,
    digest      TEXT NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (repo, name),
    FOREIGN KEY (repo, digest) REFERENCES manifests(repo, digest)
) WITHOUT ROWID;
CREATE INDEX tags_by_digest ON tags(repo, digest);

-- Every tag move; never rewritten, and kept when manifests go.
CREATE TABLE tag_history (
    id          INTEGER PRIMARY KEY,
    repo        TEXT NOT NULL,
    tag         TEXT NOT NULL,
    old_digest  TEXT,
    new_digest  TEXT,
    at          INTEGER NOT NULL,
    actor       TEXT,
    operation   TEXT NOT NULL,
    reason      TEXT
);
CREATE INDEX tag_history_by_tag ON tag_history(repo, tag, id);

CREATE TABLE uploads (
    id          TEXT PRIMARY KEY,
    repo        TEXT NOT NULL REFERENCES repositories(name),
    offset      INTEGER NOT NULL,
    hash_state  BLOB NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE upload_parts (
    upload_id   TEXT NOT NULL REFERENCES uploads(id) ON DELETE CASCADE,
    seq         INTEGER NOT NULL,
    name        TEXT NOT NULL,
    size        INTEGER NOT NULL,
    PRIMARY KEY (upload_id, seq)
) WITHOUT ROWID;

-- Append-only log of what happened, for deploy systems and webhooks.
CREATE TABLE events (
    id          INTEGER PRIMARY KEY,
    at          INTEGER NOT NULL,
    action      TEXT NOT NULL,
    repo        TEXT NOT NULL,
    digest      TEXT,
    tag         TEXT,
    media_type  TEXT,
    size        INTEGER,
    actor       TEXT
);
