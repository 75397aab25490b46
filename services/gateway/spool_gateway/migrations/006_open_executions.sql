-- Open executions per service (queue depth and in-flight for /metrics and the autoscaler),
-- without scanning the finished ones.
CREATE INDEX executions_open ON executions (service_id, status)
    WHERE status IN ('created', 'rerun', 'in-progress');
