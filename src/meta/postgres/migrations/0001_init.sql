-- Berth metadata schema on PostgreSQL, version 1 (the same numbered steps as
-- SQLite's). Keys and everything listed in order are compared byte by byte
-- (COLLATE "C"): tag and catalog pages follow the spec's lexical order
-- whatever the database's locale.

CREATE TABLE repositories (
    name        TEXT COLLATE "C" PRIMARY KEY,
    created_at  BIGINT NOT NULL
);

-- Content whose bytes are verified and stored (blobs and manifests).
CREATE TABLE contents (
    digest      TEXT COLLATE "C" PRIMARY KEY,
    size        BIGINT NOT NULL,
    created_at  BIGINT NOT NULL
);

-- Which repository may serve which blob (pushed, mounted or referenced).
CREATE TABLE repo_blobs (
    repo        TEXT COLLATE "C" NOT NULL REFERENCES repositories(name),
    digest      TEXT COLLATE "C" NOT NULL REFERENCES contents(digest),
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (repo, digest)
);
CREATE INDEX repo_blobs_by_digest ON repo_blobs(digest);

CREATE TABLE manifests (
    repo          TEXT COLLATE "C" NOT NULL REFERENCES repositories(name),
    digest        TEXT COLLATE "C" NOT NULL REFERENCES contents(digest),
    media_type    TEXT NOT NULL,
    artifact_type TEXT,
    subject       TEXT COLLATE "C",
    size          BIGINT NOT NULL,
    annotations   TEXT,
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (repo, digest)
);
CREATE INDEX manifests_by_subject ON manifests(repo, subject) WHERE subject IS NOT NULL;

-- What each manifest points at: blobs (config, layers) and child manifests.
CREATE TABLE manifest_refs (
    repo      TEXT COLLATE "C" NOT NULL,
    manifest  TEXT COLLATE "C" NOT NULL,
    child     TEXT COLLATE "C" NOT NULL,
    kind      TEXT NOT NULL CHECK (kind IN ('blob', 'manifest')),
    PRIMARY KEY (repo, manifest, kind, child),
    FOREIGN KEY (repo, manifest) REFERENCES manifests(repo, digest) ON DELETE CASCADE
);
CREATE INDEX manifest_refs_by_child ON manifest_refs(child);

CREATE TABLE tags (
    repo        TEXT COLLATE "C" NOT NULL,
    name        TEXT COLLATE "C" NOT NULL,
    digest      TEXT COLLATE "C" NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (repo, name),
    FOREIGN KEY (repo, digest) REFERENCES manifests(repo, digest)
);
CREATE INDEX tags_by_digest ON tags(repo, digest);

-- Every tag move; never rewritten, and kept when manifests go.
CREATE TABLE tag_history (
    id          BIGSERIAL PRIMARY KEY,
    repo        TEXT COLLATE "C" NOT NULL,
    tag         TEXT COLLATE "C" NOT NULL,
    old_digest  TEXT COLLATE "C",
    new_digest  TEXT COLLATE "C",
    at          BIGINT NOT NULL,
    actor       TEXT,
    operation   TEXT NOT NULL,
    reason      TEXT
);
CREATE INDEX tag_history_by_tag ON tag_history(repo, tag, id);

-- `received`: the bytes committed so far (SQLite calls it offset, a word
-- PostgreSQL reserves).
CREATE TABLE uploads (
    id          TEXT COLLATE "C" PRIMARY KEY,
    repo        TEXT COLLATE "C" NOT NULL REFERENCES repositories(name),
    received    BIGINT NOT NULL,
    hash_state  BYTEA NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE upload_parts (
    upload_id   TEXT COLLATE "C" NOT NULL REFERENCES uploads(id) ON DELETE CASCADE,
    seq         INTEGER NOT NULL,
    name        TEXT NOT NULL,
    size        BIGINT NOT NULL,
    PRIMARY KEY (upload_id, seq)
);

-- Append-only log of what happened, for deploy systems and webhooks. Ids
-- are taken under a lock held to commit (see postgres/mod.rs), so they
-- become visible in order across replicas.
CREATE TABLE events (
    id          BIGSERIAL PRIMARY KEY,
    at          BIGINT NOT NULL,
    action      TEXT NOT NULL,
    repo        TEXT COLLATE "C" NOT NULL,
    digest      TEXT COLLATE "C",
    tag         TEXT COLLATE "C",
    media_type  TEXT,
    size        BIGINT,
    actor       TEXT
);
