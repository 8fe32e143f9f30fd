"""MariaDB access shared by the services: transaction retries on deadlocks and lock timeouts."""
