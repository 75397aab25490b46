-- The trigger engine's own copy of every trigger (announced by the gateway as trigger.*),
-- and when each cron trigger last fired (so a restart neither repeats nor storms).
CREATE TABLE triggers (
    id          text PRIMARY KEY,
    project_id  text NOT NULL,
    revision    integer NOT NULL,          -- the gateway's; older announcements are ignored
    body        jsonb NOT NULL,
    deleted     boolean NOT NULL DEFAULT false,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE cron_fired (
    trigger_id  text PRIMARY KEY,
    last_tick   timestamptz NOT NULL       -- the scheduled time of the last fire
);
