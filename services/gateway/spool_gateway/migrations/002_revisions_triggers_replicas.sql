-- Package and service revisions, trigger definitions, and the replicas the gateway has heard of.

CREATE TABLE package_revisions (
    package_id   text NOT NULL REFERENCES packages(id),
    version      text NOT NULL,
    body         jsonb NOT NULL,             -- the full Package entity at this version
    codebase_id  text NOT NULL REFERENCES codebases(id),
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (package_id, version)
);
INSERT INTO package_revisions (package_id, version, body, codebase_id, created_at)
    SELECT id, version, body, codebase_id, created_at FROM packages;

CREATE TABLE service_revisions (
    service_id  text NOT NULL REFERENCES services(id),
    revision    integer NOT NULL,
    body        jsonb NOT NULL,              -- the full Service entity at this revision
    creator     text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (service_id, revision)
);
INSERT INTO service_revisions (service_id, revision, body, created_at)
    SELECT id, revision, body, created_at FROM services;

CREATE TABLE triggers (
    id          text PRIMARY KEY,
    project_id  text NOT NULL REFERENCES projects(id),
    service_id  text NOT NULL REFERENCES services(id),
    name        text NOT NULL,
    body        jsonb NOT NULL,              -- the Trigger entity
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (project_id, name)
);

-- Fed by replica.* events: the scheduler reports starts and exits, agents readiness and drains.
CREATE TABLE replicas (
    replica_id  text PRIMARY KEY,
    service_id  text NOT NULL,
    state       text NOT NULL,
    reason      text,
    updated_at  timestamptz NOT NULL
);
CREATE INDEX replicas_service ON replicas (service_id, updated_at DESC);
