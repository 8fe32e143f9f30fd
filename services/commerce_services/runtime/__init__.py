"""Process-level concerns every service entry point shares: logging, serving HTTP and gRPC."""
