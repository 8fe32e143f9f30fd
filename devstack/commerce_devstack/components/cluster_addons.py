"""The cluster's add-ons (node/addons.py): CoreDNS, the Ingress controller and the stack's
servers as Services. Not a process of ours: applied with kubectl once the node is Ready,
healthy when DNS and the Ingress controller are available."""

from __future__ import annotations

import json
from typing import Any

import httpx

from commerce_devstack.components.apiserver import admin_client, kubeconfig_path
from commerce_devstack.components.base import Component, ProbeError
from commerce_devstack.components.kube_build import kube_bin
from commerce_devstack.install.commands import run
from commerce_devstack.node import addons
from commerce_devstack.node.network import HostNetwork

DEPLOYMENTS = (("kube-system", "coredns"), (addons.INGRESS_NAMESPACE, "skipper"))


class ClusterAddons(Component):
    name = "cluster-addons"
    depends_on = ("kubelet", "kube-proxy", "kube-scheduler", "kube-controller-manager")
    runs_process = False

    def ports(self) -> dict[str, int]:
        return {
            "ingress_port": self.settings.ingress_port,
            "ingress_support_port": self.settings.ingress_support_port,
        }

    @property
    def address(self) -> str:
        return f"http://{self.settings.host}:{self.settings.ingress_port}"

    def manifests(self) -> list[addons.Manifest]:
        s = self.settings
        servers = {
            "mariadb": s.mariadb_port,
            "kafka": s.kafka_port,
            "connect": s.connect_port,
            "elasticsearch": s.elasticsearch_port,
            "ferretdb": s.ferretdb_port,
        }
        return [
            *addons.coredns(),
            *addons.ingress_controller(s),
            *addons.infra_services(s, servers),
        ]

    def launch(self) -> Any:
        raise NotImplementedError("cluster add-ons run as pods, not as processes of ours")

    def configure(self) -> None:
        s = self.settings
        run(
            [
                str(kube_bin(s) / "kubectl"),
                f"--kubeconfig={kubeconfig_path(s)}",
                "apply",
                "--server-side",
                "--force-conflicts",
                "--field-manager=commerce-stack",
                "-f=-",
            ],
            what="kubectl apply of the cluster add-ons",
            stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": self.manifests()}),
            timeout_s=120,
        )

    def probe(self) -> str:
        # The node address exists only while the node's network does; a probe without it
        # would be routed off the machine.
        if not HostNetwork(self.settings).applied:
            raise ProbeError("the node's network is not up")
        found = []
        try:
            with admin_client(self.settings) as client:
                for namespace, name in DEPLOYMENTS:
                    answer = client.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}")
                    if answer.status_code != 200:
                        raise ProbeError(f"{namespace}/{name}: {answer.status_code}")
                    status = answer.json().get("status", {})
                    if not status.get("availableReplicas"):
                        raise ProbeError(f"{namespace}/{name} not available yet")
                    found.append(name)
        except httpx.HTTPError as exc:
            raise ProbeError(f"API server not answering: {exc!r}") from exc
        return f"{', '.join(found)} available; infra Services"

    def endpoint(self) -> dict[str, Any]:
        return {
            "ingress_url": self.address,
            "infra_namespace": addons.INFRA_NAMESPACE,
            "dns": "kube-dns.kube-system (no upstream: cluster names only)",
        }
