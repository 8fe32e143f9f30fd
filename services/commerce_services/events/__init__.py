"""Events between services: outbox rows in, Kafka records (routed by Debezium) out, consumed
idempotently with retries, a dead-letter topic and a failed-events table as the last resort."""
