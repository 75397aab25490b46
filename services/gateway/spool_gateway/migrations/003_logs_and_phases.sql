-- What user code printed, per execution attempt; and how long the replica that ran an
-- execution took to start (its cold start).

CREATE TABLE execution_logs (
    id            bigserial PRIMARY KEY,
    execution_id  text NOT NULL,
    service_id    text NOT NULL,
    replica_id    text NOT NULL,
    attempt       integer NOT NULL,
    stream        text NOT NULL,
    line          text NOT NULL,
    at            timestamptz NOT NULL
);
CREATE INDEX execution_logs_execution ON execution_logs (execution_id, id);
CREATE INDEX execution_logs_service ON execution_logs (service_id, id);

ALTER TABLE executions ADD COLUMN replica_init_seconds double precision;
