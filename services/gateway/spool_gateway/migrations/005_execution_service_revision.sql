-- The service revision the replica that claimed the latest attempt was running (sent by the
-- agent with its claim; NULL when it did not say).

ALTER TABLE executions ADD COLUMN service_revision integer;
