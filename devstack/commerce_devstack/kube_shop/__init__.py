"""`make up`: the shop in samples/ on the stack's Kubernetes node, through the operator.

The stack provides the servers and the node; this package plays the parts a platform team
would: the CRDs, the Secrets (the stack's servers by their cluster names, its generated
credentials), the project's image built from Dockerfile and imported into containerd, the
operator installed with Helm, then `kubectl apply -f samples/`, a wait until every resource is
Ready, and demo data through the Ingress. The databases' schemas come from the pods' own init
containers (`<service> migrate`).
"""
