-- A manifest's references are found by the manifest (the primary key). The
-- index by child digest cost a page write per layer on every manifest push
-- (a 100-layer manifest dirtied ~100 leaf pages); garbage collection now
-- marks what is referenced in one pass per query instead of probing it.
-- References to child manifests (image indexes) are few and still looked
-- up one by one, by this partial index.
DROP INDEX manifest_refs_by_child;
CREATE INDEX manifest_refs_to_manifests ON manifest_refs(repo, child) WHERE kind = 'manifest';
