-- Triggers: a revision per trigger, increased by every change and carried by its
-- trigger.* event, so the trigger engine ignores an older one.
ALTER TABLE triggers ADD COLUMN revision integer NOT NULL DEFAULT 1;

-- Executions a trigger fired: the fire's key (one execution per key, whoever delivers it and
-- however often), the chain of executions that caused the event (its `origin`; POST /events
-- extends it by one hop for events this execution causes), and the event itself (what the
-- agent hands the function as context.event).
ALTER TABLE executions ADD COLUMN dedup_key text;
ALTER TABLE executions ADD COLUMN origin jsonb NOT NULL DEFAULT '[]';
ALTER TABLE executions ADD COLUMN event jsonb;
CREATE UNIQUE INDEX executions_dedup_key ON executions (dedup_key) WHERE dedup_key IS NOT NULL;
CREATE INDEX executions_trigger ON executions (trigger_id, created_at DESC)
    WHERE trigger_id IS NOT NULL;
