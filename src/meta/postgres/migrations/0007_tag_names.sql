-- A version of each repository's set of tag names, kept by the database:
-- bumped whenever a tag is created, deleted or renamed, not when it moves to
-- another manifest. A cached listing of tag names holds while it stands.
ALTER TABLE repositories ADD COLUMN tag_names BIGINT NOT NULL DEFAULT 0;

CREATE FUNCTION tag_names_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE repositories SET tag_names = tag_names + 1 WHERE name = NEW.repo;
    ELSIF TG_OP = 'DELETE' THEN
        UPDATE repositories SET tag_names = tag_names + 1 WHERE name = OLD.repo;
    ELSE
        UPDATE repositories SET tag_names = tag_names + 1 WHERE name IN (OLD.repo, NEW.repo);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER tag_names_on_insert AFTER INSERT ON tags
    FOR EACH ROW EXECUTE FUNCTION tag_names_changed();
CREATE TRIGGER tag_names_on_delete AFTER DELETE ON tags
    FOR EACH ROW EXECUTE FUNCTION tag_names_changed();
CREATE TRIGGER tag_names_on_rename AFTER UPDATE OF repo, name ON tags
    FOR EACH ROW WHEN (OLD.repo IS DISTINCT FROM NEW.repo OR OLD.name IS DISTINCT FROM NEW.name)
    EXECUTE FUNCTION tag_names_changed();
