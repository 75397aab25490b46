-- The revision at which what a replica runs last changed (its "pod template"): a change of
-- numReplicas, autoscaler bounds or active state keeps it, so it scales instead of rolling.
ALTER TABLE desired_services ADD COLUMN template_hash text;
ALTER TABLE desired_services ADD COLUMN template_revision integer;
UPDATE desired_services SET template_revision = revision;
ALTER TABLE desired_services ALTER COLUMN template_revision SET NOT NULL;
