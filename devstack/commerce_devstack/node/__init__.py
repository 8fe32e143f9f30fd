"""The stack's single Kubernetes node: what it changes on the host and how it is undone, the
images its pods run, and the cluster add-ons (DNS, the Ingress controller, the stack's servers
as Services)."""
