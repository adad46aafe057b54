-- +goose Up
-- Requests replicas report, per minute (Unix seconds of its start),
-- application, API and status class, with their latencies added up.
-- Reports add to a row; the control plane deletes rows past the
-- retention. Not records: no revision, version or audit.
CREATE TABLE usage (
  minute         BIGINT NOT NULL,
  application    TEXT   NOT NULL,
  api            TEXT   NOT NULL,
  class          TEXT   NOT NULL,
  requests       BIGINT NOT NULL,
  latency_sum_us BIGINT NOT NULL,
  PRIMARY KEY (minute, application, api, class)
);
CREATE INDEX usage_application ON usage (application, minute);
CREATE INDEX usage_api ON usage (api, minute);

-- +goose Down
DROP TABLE usage;
