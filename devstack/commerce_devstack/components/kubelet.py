"""The kubelet: registers the node and runs its pods through containerd, in cgroups under
the node's own cgroup root, with the cluster DNS and nothing of the host's resolver."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from commerce_devstack.components.apiserver import admin_client, kubeconfig_path, pki_dir
from commerce_devstack.components.base import Component, ProbeError
from commerce_devstack.components.containerd import socket_path
from commerce_devstack.components.kube_build import kube_bin
from commerce_devstack.node.network import CGROUP_ROOT, CLUSTER_DNS
from commerce_devstack.process import LaunchSpec


class Kubelet(Component):
    name = "kubelet"
    depends_on = ("containerd", "kube-apiserver")

    def ports(self) -> dict[str, int]:
        return {
            "kubelet_port": self.settings.kubelet_port,
            "kubelet_healthz_port": self.settings.kubelet_healthz_port,
        }

    @property
    def listen_address(self) -> str:
        return self.settings.node_address

    @property
    def address(self) -> str:
        return f"https://{self.settings.node_address}:{self.settings.kubelet_port}"

    @property
    def _config(self) -> Path:
        return self.data_dir / "config.yaml"

    def install(self) -> None:
        kube_bin(self.settings, self.notify)

    def prepare(self) -> None:
        s = self.settings
        pki = pki_dir(s)
        for folder in ("root", "pod-logs", "volume-plugins"):
            (self.data_dir / folder).mkdir(parents=True, exist_ok=True)
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "address": s.node_address,
            "port": s.kubelet_port,
            "readOnlyPort": 0,
            "healthzBindAddress": s.host,
            "healthzPort": s.kubelet_healthz_port,
            "tlsCertFile": str(pki / "kubelet-serving.crt"),
            "tlsPrivateKeyFile": str(pki / "kubelet-serving.key"),
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": True},
                "x509": {"clientCAFile": str(pki / "ca.crt")},
            },
            "authorization": {"mode": "Webhook"},
            "containerRuntimeEndpoint": f"unix://{socket_path(s)}",
            "cgroupDriver": "cgroupfs",
            "cgroupRoot": f"/{CGROUP_ROOT}",
            "failCgroupV1": False,  # this machine mounts cgroup v1 hierarchies
            "failSwapOn": False,
            "resolvConf": "",  # pods get the cluster DNS only, never the host's resolver
            "clusterDNS": [CLUSTER_DNS],
            "clusterDomain": "cluster.local",
            "podLogsDir": str(self.data_dir / "pod-logs"),
            "volumePluginDir": str(self.data_dir / "volume-plugins"),
            "maxPods": 50,
            "serializeImagePulls": False,
            # Images cannot be pulled again here: never collect them.
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            # A developer disk is often fuller than a node's; evict only when nearly out.
            "evictionHard": {
                "memory.available": "200Mi",
                "nodefs.available": "1%",
                "imagefs.available": "1%",
                "nodefs.inodesFree": "1%",
            },
        }
        self._config.write_text(json.dumps(config, indent=2))  # JSON is valid YAML

    def launch(self) -> LaunchSpec:
        s = self.settings
        return LaunchSpec(
            [
                str(kube_bin(s) / "kubelet"),
                f"--config={self._config}",
                f"--kubeconfig={kubeconfig_path(s, 'kubelet')}",
                f"--root-dir={self.data_dir / 'root'}",
                f"--cert-dir={self.data_dir / 'certs'}",
                f"--hostname-override={s.node_name}",
                f"--node-ip={s.node_address}",
                "--v=0",
            ]
        )

    def probe(self) -> str:
        s = self.settings
        try:
            health = httpx.get(f"http://{s.host}:{s.kubelet_healthz_port}/healthz", timeout=3.0)
            with admin_client(s) as client:
                node = client.get(f"/api/v1/nodes/{s.node_name}")
        except httpx.HTTPError as exc:
            raise ProbeError(f"not answering: {exc!r}") from exc
        if health.status_code != 200:
            raise ProbeError(f"/healthz answered {health.status_code}")
        if node.status_code != 200:
            raise ProbeError(f"node {s.node_name} not registered ({node.status_code})")
        conditions = {c["type"]: c for c in node.json()["status"].get("conditions", [])}
        ready = conditions.get("Ready", {})
        if ready.get("status") != "True":
            raise ProbeError(f"node not Ready: {ready.get('message', 'no status yet')}")
        return f"node {s.node_name} Ready"

    def endpoint(self) -> dict[str, Any]:
        return {"url": self.address, "node": self.settings.node_name}
