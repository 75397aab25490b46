-- Which service revision each replica runs (from replica.changed events that say it), so a
-- service's status shows a rolling update's progress.
ALTER TABLE replicas ADD COLUMN revision integer;
