-- Service notifications the scheduler publishes (crash loops, stuck replicas), listed per
-- project newest first. The id is the message's notification_id, so a redelivered
-- notification is recorded once.

CREATE TABLE notifications (
    id           text PRIMARY KEY,
    project_id   text NOT NULL,
    service_id   text NOT NULL,
    type         text NOT NULL,               -- NotificationType, e.g. InitError
    title        text NOT NULL,
    message      text NOT NULL,
    replica_id   text,
    log_tail     jsonb NOT NULL DEFAULT '[]', -- the last lines the replica wrote
    deactivated  boolean NOT NULL DEFAULT false, -- this notification set the service inactive
    created_at   timestamptz NOT NULL         -- when the scheduler saw it happen
);
CREATE INDEX notifications_project_created ON notifications (project_id, created_at DESC, id DESC);
CREATE INDEX notifications_service_created ON notifications (service_id, created_at DESC, id DESC);
