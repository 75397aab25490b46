-- The whole service as last announced, so a restarted autoscaler knows what it scales.
ALTER TABLE scaled_services ADD COLUMN service jsonb;
