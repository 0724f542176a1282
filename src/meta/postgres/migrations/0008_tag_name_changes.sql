-- What changed in each repository's set of tag names, one row per version
-- (see 0007): the name created (present) or deleted. A kept listing catches
-- up by reading the rows after its version; only the last 1,024 versions of
-- a repository are kept, and a listing older than that reads the names again.
CREATE TABLE tag_name_changes (
    repo     TEXT COLLATE "C" NOT NULL,
    version  BIGINT NOT NULL,
    name     TEXT COLLATE "C" NOT NULL,
    present  BOOLEAN NOT NULL,
    PRIMARY KEY (repo, version)
);

-- One change: the repository's next version, the oldest beyond the window go.
CREATE FUNCTION tag_name_change(r TEXT, n TEXT, is_present BOOLEAN) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v BIGINT;
BEGIN
    UPDATE repositories SET tag_names = tag_names + 1 WHERE name = r RETURNING tag_names INTO v;
    IF v IS NOT NULL THEN
        INSERT INTO tag_name_changes (repo, version, name, present) VALUES (r, v, n, is_present);
        DELETE FROM tag_name_changes WHERE repo = r AND version <= v - 1024;
    END IF;
END $$;

-- A rename is the old name deleted, then the new one created: two versions.
CREATE OR REPLACE FUNCTION tag_names_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        PERFORM tag_name_change(OLD.repo, OLD.name, false);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM tag_name_change(NEW.repo, NEW.name, true);
    END IF;
    RETURN NULL;
END $$;
