-- What changed in each repository's set of tag names, one row per version
-- (see 0007): the name created (present = 1) or deleted (present = 0). A kept
-- listing catches up by reading the rows after its version instead of every
-- name again. The triggers keep only the last 1,024 versions of a repository;
-- a listing older than that reads the names again.
CREATE TABLE tag_name_changes (
    repo     TEXT NOT NULL,
    version  INTEGER NOT NULL,
    name     TEXT NOT NULL,
    present  INTEGER NOT NULL,
    PRIMARY KEY (repo, version)
) WITHOUT ROWID;

DROP TRIGGER tag_names_on_insert;
DROP TRIGGER tag_names_on_delete;
DROP TRIGGER tag_names_on_rename;

-- A change is the repository's next version; the oldest beyond the window go.
CREATE TRIGGER tag_name_changes_on_insert AFTER INSERT ON tag_name_changes BEGIN
    UPDATE repositories SET tag_names = NEW.version WHERE name = NEW.repo;
    DELETE FROM tag_name_changes WHERE repo = NEW.repo AND version <= NEW.version - 1024;
END;

CREATE TRIGGER tag_names_on_insert AFTER INSERT ON tags BEGIN
    INSERT INTO tag_name_changes (repo, version, name, present)
        SELECT name, tag_names + 1, NEW.name, 1 FROM repositories WHERE name = NEW.repo;
END;

CREATE TRIGGER tag_names_on_delete AFTER DELETE ON tags BEGIN
    INSERT INTO tag_name_changes (repo, version, name, present)
        SELECT name, tag_names + 1, OLD.name, 0 FROM repositories WHERE name = OLD.repo;
END;

-- A rename is the old name deleted, then the new one created: two versions.
CREATE TRIGGER tag_names_on_rename AFTER UPDATE OF repo, name ON tags BEGIN
    INSERT INTO tag_name_changes (repo, version, name, present)
        SELECT name, tag_names + 1, OLD.name, 0 FROM repositories WHERE name = OLD.repo;
    INSERT INTO tag_name_changes (repo, version, name, present)
        SELECT name, tag_names + 1, NEW.name, 1 FROM repositories WHERE name = NEW.repo;
END;
