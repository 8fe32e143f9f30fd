"""`make up`: the shop in samples/ deployed on the local stack through the operator.

The stack provides the servers and a real API server; this package plays the parts a cluster
and its platform team would: the CRDs, the Secrets (from the stack's generated credentials),
the operator and the development runtime (the kubelet's stand-in) as background processes,
then `kubectl apply -f samples/`, a wait until every resource is Ready, and demo data. The
databases' schemas come from the Deployments' own init containers (`<service> migrate`), as in
a cluster.
"""
