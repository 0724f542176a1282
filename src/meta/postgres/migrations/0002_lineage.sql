-- Lineage: what each model version came from. One row per fact, stated by an
-- origin manifest; rows go with their origin, and with the model they describe.

CREATE TABLE lineage (
    id          BIGSERIAL PRIMARY KEY,
    repo        TEXT COLLATE "C" NOT NULL,
    origin      TEXT COLLATE "C" NOT NULL,
    model       TEXT COLLATE "C" NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('dataset', 'parent', 'code', 'run')),
    relation    TEXT,
    target      TEXT COLLATE "C",
    target_repo TEXT COLLATE "C",
    uri         TEXT,
    name        TEXT,
    revision    TEXT COLLATE "C",
    detail      TEXT,
    FOREIGN KEY (repo, origin) REFERENCES manifests(repo, digest) ON DELETE CASCADE
);
CREATE INDEX lineage_by_model ON lineage(model);
CREATE INDEX lineage_by_target ON lineage(target) WHERE target IS NOT NULL;
CREATE INDEX lineage_by_revision ON lineage(revision) WHERE revision IS NOT NULL;
CREATE INDEX lineage_by_origin ON lineage(repo, origin);

-- Lineage answers describe a digest wherever it is held.
CREATE INDEX manifests_by_digest ON manifests(digest);
