-- Repositories are never deleted, and every write that names one inserts
-- its row first in the same transaction, so the foreign keys to
-- repositories(name) guarded nothing. They cost a row lock on the
-- repository's row per check: concurrent pushes to one repository share
-- that lock through a multixact, rebuilt by each new locker (five checks per
-- small image pushed).
ALTER TABLE repo_blobs DROP CONSTRAINT IF EXISTS repo_blobs_repo_fkey;
ALTER TABLE manifests DROP CONSTRAINT IF EXISTS manifests_repo_fkey;
ALTER TABLE uploads DROP CONSTRAINT IF EXISTS uploads_repo_fkey;
