"""HTTP plumbing every service shares: the error shape, health endpoints, request metrics."""
