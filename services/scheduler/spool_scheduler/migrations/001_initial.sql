-- The scheduler owns the desired state of each service, as last announced by the gateway.
CREATE TABLE desired_services (
    service_id  text PRIMARY KEY,
    revision    integer NOT NULL,           -- the gateway's service revision; older events are ignored
    service     jsonb NOT NULL,
    deleted     boolean NOT NULL DEFAULT false,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
