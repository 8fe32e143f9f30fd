"""What the stack puts into its cluster, as a platform team would: CoreDNS (cluster names
only: no upstream, nothing is ever asked outside), the Skipper Ingress controller, and the
stack's servers as Services in the namespace `infra` (no selector; an EndpointSlice names the
node address), so workloads find `mariadb.infra.svc:3306` as on a real cluster."""

from __future__ import annotations

from typing import Any

from commerce_devstack.node.builds import COREDNS_IMAGE, NONROOT, SKIPPER_IMAGE
from commerce_devstack.node.network import CLUSTER_DNS
from commerce_devstack.settings import StackSettings

INFRA_NAMESPACE = "infra"
INGRESS_NAMESPACE = "ingress"
DNS_PORT = 1053  # unprivileged inside the pod; the Service answers on 53
MANAGED_BY = "commerce-stack"
Manifest = dict[str, Any]

COREFILE = f""".:{DNS_PORT} {{
    errors
    health :8080
    ready :8181
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }}
    cache 30
    loop
    reload
}}
"""


def _labels(app: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": app, "app.kubernetes.io/managed-by": MANAGED_BY}


def _restricted_container() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }


def _reader_role(name: str, rules: list[dict[str, Any]], namespace: str) -> list[Manifest]:
    """A ClusterRole of read verbs bound to the ServiceAccount `name` in `namespace`."""
    return [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": name, "namespace": namespace, "labels": _labels(name)},
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": f"commerce-stack:{name}", "labels": _labels(name)},
            "rules": rules,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": f"commerce-stack:{name}", "labels": _labels(name)},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": f"commerce-stack:{name}",
            },
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
        },
    ]


def coredns() -> list[Manifest]:
    ns = "kube-system"
    labels = _labels("coredns")
    rules = [
        {"apiGroups": [""], "resources": ["services", "namespaces"], "verbs": ["list", "watch"]},
        {
            "apiGroups": ["discovery.k8s.io"],
            "resources": ["endpointslices"],
            "verbs": ["list", "watch"],
        },
    ]
    return [
        *_reader_role("coredns", rules, ns),
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "coredns", "namespace": ns, "labels": labels},
            "data": {"Corefile": COREFILE},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "coredns", "namespace": ns, "labels": labels},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "serviceAccountName": "coredns",
                        "dnsPolicy": "Default",  # its own lookups never loop through itself
                        "priorityClassName": "system-cluster-critical",
                        "securityContext": {
                            "runAsNonRoot": True,
                            "runAsUser": int(NONROOT),
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                        "containers": [
                            {
                                "name": "coredns",
                                "image": COREDNS_IMAGE,
                                "imagePullPolicy": "Never",
                                "args": ["-conf", "/etc/coredns/Corefile"],
                                "ports": [
                                    {"name": "dns", "containerPort": DNS_PORT, "protocol": "UDP"},
                                    {"name": "dns-tcp", "containerPort": DNS_PORT},
                                ],
                                "volumeMounts": [{"name": "config", "mountPath": "/etc/coredns"}],
                                "livenessProbe": {
                                    "httpGet": {"path": "/health", "port": 8080},
                                    "periodSeconds": 10,
                                },
                                "readinessProbe": {
                                    "httpGet": {"path": "/ready", "port": 8181},
                                    "periodSeconds": 2,
                                },
                                "resources": {
                                    "requests": {"cpu": "50m", "memory": "64Mi"},
                                    "limits": {"memory": "128Mi"},
                                },
                                "securityContext": _restricted_container(),
                            }
                        ],
                        "volumes": [{"name": "config", "configMap": {"name": "coredns"}}],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "kube-dns", "namespace": ns, "labels": labels},
            "spec": {
                "clusterIP": CLUSTER_DNS,
                "selector": labels,
                "ports": [
                    {"name": "dns", "port": 53, "targetPort": DNS_PORT, "protocol": "UDP"},
                    {"name": "dns-tcp", "port": 53, "targetPort": DNS_PORT, "protocol": "TCP"},
                ],
            },
        },
    ]


def ingress_controller(settings: StackSettings) -> list[Manifest]:
    """Skipper on the host network: the shop's public address is on this machine's loopback,
    as a cloud load balancer's would be elsewhere; it routes to the pods' own addresses."""
    ns = INGRESS_NAMESPACE
    labels = _labels("skipper")
    rules = [
        {
            "apiGroups": ["networking.k8s.io"],
            "resources": ["ingresses", "ingressclasses"],
            "verbs": ["get", "list", "watch"],
        },
        {"apiGroups": [""], "resources": ["services"], "verbs": ["get", "list", "watch"]},
        {
            "apiGroups": ["discovery.k8s.io"],
            "resources": ["endpointslices"],
            "verbs": ["get", "list", "watch"],
        },
    ]
    port, support_port = settings.ingress_port, settings.ingress_support_port
    support = f"{settings.host}:{support_port}"
    return [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": ns, "labels": _labels("skipper")},
        },
        *_reader_role("skipper", rules, ns),
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "IngressClass",
            "metadata": {
                "name": "skipper",
                "labels": labels,
                # Ingresses that name no class are ours, as on a cluster with one controller.
                "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"},
            },
            "spec": {"controller": "zalando.org/skipper"},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "skipper", "namespace": ns, "labels": labels},
            "spec": {
                "replicas": 1,
                # Host network: a new pod cannot bind the port before the old one is gone.
                "strategy": {"type": "Recreate"},
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "serviceAccountName": "skipper",
                        "hostNetwork": True,
                        "dnsPolicy": "ClusterFirstWithHostNet",
                        "securityContext": {
                            "runAsNonRoot": True,
                            "runAsUser": int(NONROOT),
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                        "containers": [
                            {
                                "name": "skipper",
                                "image": SKIPPER_IMAGE,
                                "imagePullPolicy": "Never",
                                "args": [
                                    "-kubernetes",
                                    "-kubernetes-in-cluster",
                                    "-kubernetes-https-redirect=false",
                                    "-enable-kubernetes-endpointslices",
                                    f"-address={settings.host}:{port}",
                                    f"-support-listener={support}",
                                    f"-metrics-listener={support}",
                                    "-application-log-level=WARN",
                                    "-access-log-disabled",
                                    "-proxy-preserve-host",
                                ],
                                "readinessProbe": {
                                    "httpGet": {
                                        "host": settings.host,
                                        "path": "/kube-system/healthz",
                                        "port": port,
                                    },
                                    "periodSeconds": 2,
                                },
                                "livenessProbe": {
                                    "httpGet": {
                                        "host": settings.host,
                                        "path": "/metrics",
                                        "port": support_port,
                                    },
                                    "periodSeconds": 10,
                                },
                                "resources": {
                                    "requests": {"cpu": "50m", "memory": "64Mi"},
                                    "limits": {"memory": "256Mi"},
                                },
                                "securityContext": _restricted_container(),
                            }
                        ],
                    },
                },
            },
        },
    ]


def infra_services(settings: StackSettings, ports: dict[str, int]) -> list[Manifest]:
    """A Service without a selector per server, and the EndpointSlice that is its endpoint."""
    ns = INFRA_NAMESPACE
    manifests: list[Manifest] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": _labels(ns)}}
    ]
    for name, port in ports.items():
        labels = _labels(name)
        manifests += [
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": name, "namespace": ns, "labels": labels},
                "spec": {"ports": [{"name": "main", "port": port, "targetPort": port}]},
            },
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": name,
                    "namespace": ns,
                    "labels": {
                        **labels,
                        "kubernetes.io/service-name": name,
                        "endpointslice.kubernetes.io/managed-by": MANAGED_BY,
                    },
                },
                "addressType": "IPv4",
                "ports": [{"name": "main", "port": port, "protocol": "TCP"}],
                "endpoints": [
                    {
                        "addresses": [settings.node_address],
                        "conditions": {"ready": True},
                        "nodeName": settings.node_name,
                    }
                ],
            },
        ]
    return manifests
