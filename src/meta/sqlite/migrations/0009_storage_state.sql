-- What storage keeps of an upload between chunks is its own business: one
-- opaque value per session (on object storage, JSON naming the multipart
-- upload and the staged tail), written and read back whole. Sessions in
-- progress keep theirs; the two columns it replaces go.
ALTER TABLE uploads ADD COLUMN storage_state BLOB NOT NULL DEFAULT x'';
UPDATE uploads SET storage_state = CAST(json_object(
        'multipart', multipart_id,
        'staged', CASE WHEN staged IS NULL THEN NULL
                       ELSE json_object('name', staged, 'len', staged_size) END
    ) AS BLOB)
 WHERE multipart_id IS NOT NULL OR staged IS NOT NULL;
ALTER TABLE uploads DROP COLUMN multipart_id;
ALTER TABLE uploads DROP COLUMN staged;
ALTER TABLE uploads DROP COLUMN staged_size;
