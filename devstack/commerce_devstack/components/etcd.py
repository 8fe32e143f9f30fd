"""etcd, the Kubernetes API server's storage."""

from __future__ import annotations

from typing import Any

import httpx

from commerce_devstack import versions
from commerce_devstack.components.base import Component, ProbeError
from commerce_devstack.components.kube_build import kube_bin
from commerce_devstack.process import LaunchSpec


class Etcd(Component):
    name = "etcd"

    def ports(self) -> dict[str, int]:
        return {
            "etcd_port": self.settings.etcd_port,
            "etcd_peer_port": self.settings.etcd_peer_port,
        }

    @property
    def address(self) -> str:
        return f"http://{self.settings.host}:{self.settings.etcd_port}"

    def install(self) -> None:
        kube_bin(self.settings, self.notify)

    def launch(self) -> LaunchSpec:
        s = self.settings
        peer = f"http://{s.host}:{s.etcd_peer_port}"
        return LaunchSpec(
            [
                str(kube_bin(s) / "etcd"),
                "--name=commerce",
                f"--data-dir={self.data_dir / 'data'}",
                f"--listen-client-urls={self.address}",
                f"--advertise-client-urls={self.address}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=commerce={peer}",
                "--log-level=warn",
            ]
        )

    def probe(self) -> str:
        try:
            answer = httpx.get(f"{self.address}/health", timeout=3.0)
        except httpx.HTTPError as exc:
            raise ProbeError(f"not answering: {exc!r}") from exc
        if answer.status_code != 200 or answer.json().get("health") != "true":
            raise ProbeError(f"/health answered {answer.status_code} {answer.text[:200]}")
        return "healthy"

    def endpoint(self) -> dict[str, Any]:
        return {"url": self.address, "version": versions.ETCD}
