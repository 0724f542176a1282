-- Uploads on object storage: the backend's multipart upload, and the bytes
-- below its minimum part size, kept as an object until more arrive.
ALTER TABLE uploads ADD COLUMN multipart_id TEXT;
ALTER TABLE uploads ADD COLUMN staged TEXT;
ALTER TABLE uploads ADD COLUMN staged_size BIGINT NOT NULL DEFAULT 0;
