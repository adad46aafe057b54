-- +goose Up
-- One table holds every kind of record: the admin API treats them alike
-- (ETag = version, paging, audit) and the control plane follows them by
-- revision. Deleted records stay as tombstones for a while so that other
-- control planes see the deletion.
CREATE TABLE records (
  kind       TEXT    NOT NULL,
  id         TEXT    NOT NULL,
  parent     TEXT    NOT NULL DEFAULT '',  -- the application of a subscription or key
  ref        TEXT    NOT NULL DEFAULT '',  -- the API of a subscription
  owner      TEXT    NOT NULL DEFAULT '',  -- the developer owning the application
  state      TEXT    NOT NULL DEFAULT '',
  body       TEXT    NOT NULL,
  version    BIGINT  NOT NULL,
  revision   BIGINT  NOT NULL,
  deleted    INTEGER NOT NULL DEFAULT 0,
  created_us BIGINT  NOT NULL,
  updated_us BIGINT  NOT NULL,
  PRIMARY KEY (kind, id)
);
CREATE INDEX records_revision ON records (revision);
CREATE INDEX records_parent ON records (kind, parent);
CREATE INDEX records_ref ON records (kind, ref);
CREATE INDEX records_owner ON records (kind, owner);

-- The revision counter: every write transaction increments it first,
-- which also serialises writers, so revisions commit in order.
CREATE TABLE revision (id INTEGER PRIMARY KEY CHECK (id = 1), value BIGINT NOT NULL);
INSERT INTO revision (id, value) VALUES (1, 0);

-- Values that must be unique across records: client ids, principals,
-- certificate fingerprints, key digests.
CREATE TABLE claims (
  kind   TEXT NOT NULL,
  value  TEXT NOT NULL,
  holder TEXT NOT NULL,
  PRIMARY KEY (kind, value)
);
CREATE INDEX claims_holder ON claims (holder);

CREATE TABLE documents (
  api          TEXT   PRIMARY KEY,
  spec_version TEXT   NOT NULL,
  content      BLOB   NOT NULL,
  updated_us   BIGINT NOT NULL
);

CREATE TABLE audit (
  seq    INTEGER PRIMARY KEY AUTOINCREMENT,
  at_us  BIGINT NOT NULL,
  actor  TEXT   NOT NULL,
  role   TEXT   NOT NULL,
  action TEXT   NOT NULL,
  kind   TEXT   NOT NULL,
  object TEXT   NOT NULL,
  before TEXT   NOT NULL DEFAULT '',
  after  TEXT   NOT NULL DEFAULT ''
);
CREATE INDEX audit_object ON audit (kind, object);

CREATE TABLE idempotency (
  actor      TEXT    NOT NULL,
  key        TEXT    NOT NULL,
  request    TEXT    NOT NULL,
  status     INTEGER NOT NULL,
  body       TEXT    NOT NULL,
  created_us BIGINT  NOT NULL,
  PRIMARY KEY (actor, key)
);

-- +goose Down
DROP TABLE idempotency;
DROP TABLE audit;
DROP TABLE documents;
DROP TABLE claims;
DROP TABLE revision;
DROP TABLE records;
