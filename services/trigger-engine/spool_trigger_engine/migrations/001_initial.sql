-- The trigger engine owns its index of services that triggers may target (later: triggers,
-- the Once ledger and cron fire times).
CREATE TABLE known_services (
    service_id  text PRIMARY KEY,
    revision    integer NOT NULL,
    project_id  text NOT NULL,
    deleted     boolean NOT NULL DEFAULT false,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
