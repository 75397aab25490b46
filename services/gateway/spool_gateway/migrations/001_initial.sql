-- The gateway owns projects, tokens, codebases, packages, services, executions and the outbox.

CREATE TABLE projects (
    id          text PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    creator     text,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE tokens (
    token_hash  bytea PRIMARY KEY,           -- sha256 of the bearer token; the token is never stored
    kind        text NOT NULL CHECK (kind IN ('admin', 'user', 'agent')),
    subject     text NOT NULL,
    service_id  text,                        -- agent tokens act for exactly one service
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz,
    revoked_at  timestamptz
);

CREATE TABLE codebases (
    id          text PRIMARY KEY,            -- sha256 of the archive: identical pushes share a row
    size        integer NOT NULL,
    data        bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE packages (
    id           text PRIMARY KEY,
    project_id   text NOT NULL REFERENCES projects(id),
    name         text NOT NULL,
    version      text NOT NULL,
    body         jsonb NOT NULL,             -- the Package entity as served (camelCase)
    codebase_id  text NOT NULL REFERENCES codebases(id),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (project_id, name)
);

CREATE TABLE services (
    id           text PRIMARY KEY,
    project_id   text NOT NULL REFERENCES projects(id),
    package_id   text NOT NULL REFERENCES packages(id),
    name         text NOT NULL,
    revision     integer NOT NULL DEFAULT 1,
    body         jsonb NOT NULL,             -- the Service entity as served (camelCase)
    deleted_at   timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX services_live_name ON services (project_id, name) WHERE deleted_at IS NULL;

CREATE TABLE executions (
    id              text PRIMARY KEY,
    project_id      text NOT NULL,
    service_id      text NOT NULL REFERENCES services(id),
    function_name   text NOT NULL,
    input           jsonb NOT NULL,
    output          jsonb,
    status          text NOT NULL,
    status_log      jsonb NOT NULL,          -- list of status entries, oldest first
    attempts        integer NOT NULL DEFAULT 0,  -- the fencing token: which attempt owns the row
    max_attempts    integer NOT NULL,
    replica_id      text,
    lease_until     timestamptz,             -- in-progress only: when the running attempt is presumed lost
    to_terminate    boolean NOT NULL DEFAULT false,
    trigger_id      text,
    resources       jsonb NOT NULL DEFAULT '[]',
    meta            jsonb NOT NULL,          -- service and package names and revision at creation
    creator         text,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    started_at      timestamptz,
    finished_at     timestamptz
);
CREATE INDEX executions_service_created ON executions (service_id, created_at DESC);
CREATE INDEX executions_lease ON executions (lease_until) WHERE status = 'in-progress';
CREATE INDEX executions_resources ON executions USING gin (resources jsonb_path_ops);

-- Transactional outbox: a row is written in the same transaction as the state it announces
-- and deleted only after the broker confirmed the publish.
CREATE TABLE outbox (
    id           bigserial PRIMARY KEY,
    exchange     text NOT NULL,
    routing_key  text NOT NULL,
    body         bytea NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
