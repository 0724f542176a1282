-- An upload session belongs to the user who opened it.
ALTER TABLE uploads ADD COLUMN owner TEXT;
