"""Pinned versions of every server in the stack.

Kubernetes and etcd versions are fixed by devstack/go/kube/go.mod, FerretDB's by
devstack/go/ferretdb/go.mod and Kafka's by devstack/maven/kafka/pom.xml; a unit test keeps
these constants in step with those files.
"""

KAFKA = "4.1.1"
# Debezium 3.5 is built against Kafka 4.1.
DEBEZIUM = "3.5.0.Final"
# The integ-test distribution is the only Elasticsearch server build published to Maven Central;
# 8.x runs on Java 17, which Debian ships.
ELASTICSEARCH = "8.19.21"
FERRETDB = "v1.24.2"
KUBERNETES = "v1.34.4"
# The helm CLI that renders charts/commerce-operator (its k8s libraries match KUBERNETES).
HELM = "v3.19.5"
ETCD = "v3.6.4"
# The node's own images, built here (devstack/go/coredns, devstack/go/skipper pin the first two).
COREDNS = "v1.12.1"
SKIPPER = "v0.22.0"
PAUSE = "3.10"
