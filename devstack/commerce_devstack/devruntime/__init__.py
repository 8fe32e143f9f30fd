"""A development stand-in for the kubelet: runs the Deployments our operator manages as local
processes. Not a scheduler and not for production; see docs/dev-runtime.md."""
