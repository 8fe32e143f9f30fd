"""kube-proxy in iptables mode: Services' cluster addresses (and node ports on the node
address only) for pods and the host. It leaves the conntrack sysctls alone, and its rules are
removed with `kube-proxy --cleanup` when it stops."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from commerce_devstack.components.apiserver import kubeconfig_path
from commerce_devstack.components.base import Component, ProbeError
from commerce_devstack.components.kube_build import kube_bin
from commerce_devstack.install.commands import SetupError, run
from commerce_devstack.node.network import CLUSTER_CIDR
from commerce_devstack.process import LaunchSpec


class KubeProxy(Component):
    name = "kube-proxy"
    depends_on = ("kube-apiserver",)

    def ports(self) -> dict[str, int]:
        return {
            "kube_proxy_healthz_port": self.settings.kube_proxy_healthz_port,
            "kube_proxy_metrics_port": self.settings.kube_proxy_metrics_port,
        }

    @property
    def address(self) -> str:
        return f"http://{self.settings.host}:{self.settings.kube_proxy_healthz_port}"

    @property
    def _config(self) -> Path:
        return self.data_dir / "config.yaml"

    def install(self) -> None:
        kube_bin(self.settings, self.notify)

    def prepare(self) -> None:
        s = self.settings
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "clientConnection": {"kubeconfig": str(kubeconfig_path(s, "kube-proxy"))},
            "hostnameOverride": s.node_name,
            "mode": "iptables",
            "clusterCIDR": CLUSTER_CIDR,
            "bindAddress": s.node_address,
            "healthzBindAddress": f"{s.host}:{s.kube_proxy_healthz_port}",
            "metricsBindAddress": f"{s.host}:{s.kube_proxy_metrics_port}",
            "nodePortAddresses": [f"{s.node_address}/32"],
            # No route_localnet: node ports are not served on loopback.
            "iptables": {"localhostNodePorts": False},
            # Zero: keep the machine's conntrack sysctls as they are.
            "conntrack": {
                "maxPerCore": 0,
                "min": 0,
                "tcpEstablishedTimeout": "0s",
                "tcpCloseWaitTimeout": "0s",
                "udpTimeout": "0s",
                "udpStreamTimeout": "0s",
            },
        }
        self._config.write_text(json.dumps(config, indent=2))

    def launch(self) -> LaunchSpec:
        return LaunchSpec(
            [str(kube_bin(self.settings) / "kube-proxy"), f"--config={self._config}", "--v=0"]
        )

    def probe(self) -> str:
        try:
            answer = httpx.get(f"{self.address}/healthz", timeout=3.0)
        except httpx.HTTPError as exc:
            raise ProbeError(f"not answering: {exc!r}") from exc
        if answer.status_code != 200:
            raise ProbeError(f"/healthz answered {answer.status_code}: {answer.text[-200:]}")
        return "iptables rules in sync"

    def after_stop(self) -> list[str]:
        try:
            run(
                [str(kube_bin(self.settings) / "kube-proxy"), "--cleanup", "--v=0"],
                what="kube-proxy --cleanup",
                timeout_s=60,
            )
        except SetupError as exc:
            return [f"kube-proxy --cleanup: {exc.output[-300:]}"]
        return []

    def endpoint(self) -> dict[str, Any]:
        return {"healthz": f"{self.address}/healthz", "mode": "iptables"}
