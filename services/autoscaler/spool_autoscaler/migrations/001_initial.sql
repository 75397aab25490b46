-- The autoscaler owns its view of which services scale and how (later: samples, cooldowns).
CREATE TABLE scaled_services (
    service_id  text PRIMARY KEY,
    revision    integer NOT NULL,
    autoscaler  jsonb,                      -- runtime.autoscaler, null when the service has none
    deleted     boolean NOT NULL DEFAULT false,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
