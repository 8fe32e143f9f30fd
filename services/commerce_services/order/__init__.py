"""Order service: orders and their saga state in MariaDB, order events through the outbox."""
