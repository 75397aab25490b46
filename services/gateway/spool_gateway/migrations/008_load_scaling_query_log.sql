-- Load samples for the autoscaler, the scale decisions it takes, and the query log.

-- How an execution was asked for: 'invoke' (POST /executions/{serviceId}/invoke, the caller
-- waits for the answer) or 'execution' (everything else). Rows from before are 'execution'.
-- A constant default: no table rewrite.
ALTER TABLE executions ADD COLUMN kind text NOT NULL DEFAULT 'execution';

-- When the gateway wrote the execution's terminal status, by the database's clock (NULL while
-- it is not terminal). `finished_at` is the agent's clock and a report may be recorded long
-- after it (retried, or queued behind others), so the load sampler selects the executions
-- that ended since its previous sample by this column instead. Set by the trigger below on
-- every status change, whichever statement makes it. Rows from before stay NULL.
ALTER TABLE executions ADD COLUMN ended_at timestamptz;

CREATE FUNCTION executions_stamp_end() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status IN ('success', 'failed', 'terminated', 'aborted', 'canceled',
                      'system-failure', 'timeout') THEN
        NEW.ended_at := clock_timestamp();
    ELSE
        NEW.ended_at := NULL;
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER executions_stamp_end BEFORE UPDATE OF status ON executions
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION executions_stamp_end();

-- Time-bounded scans of the load sampler: executions created, and executions ended, in the
-- window since its previous sample (service_id rides along, so no heap visit is needed for
-- the created count once the pages are all-visible).
CREATE INDEX executions_created ON executions (created_at, service_id);
CREATE INDEX executions_ended ON executions (ended_at) WHERE ended_at IS NOT NULL;

-- Where the previous load sample ended, and which services had load in it (they are sent once
-- more with zeros when their load is gone). One row, shared by every gateway process: the one
-- that locks it samples the next window, so windows never overlap or leave gaps, however many
-- gateways run.
CREATE TABLE load_cursor (
    id             boolean PRIMARY KEY DEFAULT true CHECK (id),
    sampled_until  timestamptz,
    loaded         text[] NOT NULL DEFAULT '{}'
);
INSERT INTO load_cursor DEFAULT VALUES;

-- Scale decisions of the autoscaler (scale.decided), listed per service newest first. The key
-- makes a redelivered decision a no-op; the gateway keeps the newest ones per service.
CREATE TABLE scaling_decisions (
    service_id  text NOT NULL,
    at          timestamptz NOT NULL,
    replicas    integer NOT NULL,
    previous    integer,
    rule        text NOT NULL,
    reason      text NOT NULL,
    inputs      jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (service_id, at, replicas)
);
