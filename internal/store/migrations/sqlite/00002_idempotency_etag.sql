-- +goose Up
-- A replayed answer carries the ETag the first one had.
ALTER TABLE idempotency ADD COLUMN etag BIGINT NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE idempotency DROP COLUMN etag;
