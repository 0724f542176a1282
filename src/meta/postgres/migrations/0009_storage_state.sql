-- What storage keeps of an upload between chunks is its own business: one
-- opaque value per session (on object storage, JSON naming the multipart
-- upload and the staged tail), written and read back whole. Sessions in
-- progress keep theirs; the three columns it replaces go.
ALTER TABLE uploads ADD COLUMN storage_state BYTEA NOT NULL DEFAULT '';
UPDATE uploads SET storage_state = convert_to(json_build_object(
        'multipart', multipart_id,
        'staged', CASE WHEN staged IS NULL THEN NULL
                       ELSE json_build_object('name', staged, 'len', staged_size) END
    )::text, 'UTF8')
 WHERE multipart_id IS NOT NULL OR staged IS NOT NULL;
ALTER TABLE uploads DROP COLUMN multipart_id;
ALTER TABLE uploads DROP COLUMN staged;
ALTER TABLE uploads DROP COLUMN staged_size;
