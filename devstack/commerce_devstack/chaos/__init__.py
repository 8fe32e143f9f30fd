"""Fault injection against the local shop: order load while one component is killed with
SIGKILL and brought back, then the invariants checked over the whole history (`make chaos`,
bench/chaos.py; a bounded subset runs in `make test`)."""
