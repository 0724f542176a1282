-- A version of each repository's set of tag names, kept by SQLite itself:
-- bumped whenever a tag is created, deleted or renamed, not when it moves to
-- another manifest. A cached listing of tag names still holds while the
-- version stands. (Repository rows are never deleted, so a version never
-- starts again from zero under the same name.)
ALTER TABLE repositories ADD COLUMN tag_names INTEGER NOT NULL DEFAULT 0;

CREATE TRIGGER tag_names_on_insert AFTER INSERT ON tags BEGIN
    UPDATE repositories SET tag_names = tag_names + 1 WHERE name = NEW.repo;
END;

CREATE TRIGGER tag_names_on_delete AFTER DELETE ON tags BEGIN
    UPDATE repositories SET tag_names = tag_names + 1 WHERE name = OLD.repo;
END;

CREATE TRIGGER tag_names_on_rename AFTER UPDATE OF repo, name ON tags BEGIN
    UPDATE repositories SET tag_names = tag_names + 1 WHERE name IN (OLD.repo, NEW.repo);
END;
