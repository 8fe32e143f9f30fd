"""kube-apiserver on loopback with client-certificate auth and RBAC; writes an admin kubeconfig."""

from __future__ import annotations

import json
import ssl
from pathlib import Path
from typing import Any

import httpx

from commerce_devstack import versions
from commerce_devstack.components.base import Component, ProbeError
from commerce_devstack.components.helm_build import helm_bin, helm_path
from commerce_devstack.components.kube_build import kube_bin
from commerce_devstack.pki import ensure_pki
from commerce_devstack.process import LaunchSpec
from commerce_devstack.settings import StackSettings

SERVICE_CIDR = "10.0.0.0/24"
# A /24 holds about 250 ClusterIPs: too few for the operator benchmark's hundreds of Services
# plus the tests' namespaces. More room comes as a second ServiceCIDR object, since changing the
# flag's range of an existing cluster is not supported in place.
EXTRA_SERVICE_CIDR = {
    "apiVersion": "networking.k8s.io/v1",
    "kind": "ServiceCIDR",
    "metadata": {"name": "commerce-dev-extra"},
    "spec": {"cidrs": ["10.1.0.0/16"]},
}


def pki_dir(settings: StackSettings) -> Path:
    return settings.data_dir("kube") / "pki"


def kubeconfig_path(settings: StackSettings) -> Path:
    return settings.data_dir("kube") / "admin.kubeconfig"


def write_kubeconfig(settings: StackSettings) -> Path:
    pki = pki_dir(settings)
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "commerce-local",
                "cluster": {
                    "server": f"https://{settings.host}:{settings.apiserver_port}",
                    "certificate-authority": str(pki / "ca.crt"),
                },
            }
        ],
        "users": [
            {
                "name": "commerce-admin",
                "user": {
                    "client-certificate": str(pki / "admin.crt"),
                    "client-key": str(pki / "admin.key"),
                },
            }
        ],
        "contexts": [
            {
                "name": "commerce-local",
                "context": {
                    "cluster": "commerce-local",
                    "user": "commerce-admin",
                    "namespace": "default",
                },
            }
        ],
        "current-context": "commerce-local",
    }
    path = kubeconfig_path(settings)
    path.write_text(json.dumps(config, indent=2))  # JSON is valid YAML for every kubeconfig reader
    path.chmod(0o600)
    return path


def admin_client(settings: StackSettings) -> httpx.Client:
    pki = pki_dir(settings)
    # One SSL context with the CA and the client certificate: httpx ignores `cert=` next to a
    # `verify=` path, and the API server would take the request as anonymous.
    context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    context.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
    return httpx.Client(
        base_url=f"https://{settings.host}:{settings.apiserver_port}",
        verify=context,
        timeout=5.0,
    )


class KubeApiServer(Component):
    name = "kube-apiserver"
    depends_on = ("etcd",)

    def ports(self) -> dict[str, int]:
        return {"apiserver_port": self.settings.apiserver_port}

    @property
    def address(self) -> str:
        return f"https://{self.settings.host}:{self.settings.apiserver_port}"

    def install(self) -> None:
        kube_bin(self.settings, self.notify)
        helm_bin(self.settings, self.notify)  # a client tool, like kubectl

    def prepare(self) -> None:
        ensure_pki(pki_dir(self.settings), self.settings.host)
        write_kubeconfig(self.settings)

    def launch(self) -> LaunchSpec:
        s = self.settings
        pki = pki_dir(s)
        return LaunchSpec(
            [
                str(kube_bin(s) / "kube-apiserver"),
                f"--etcd-servers=http://{s.host}:{s.etcd_port}",
                f"--bind-address={s.host}",
                f"--advertise-address={s.host}",
                f"--secure-port={s.apiserver_port}",
                f"--tls-cert-file={pki / 'apiserver.crt'}",
                f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--authorization-mode=RBAC",
                "--allow-privileged=true",
                "--profiling=false",
                "--v=0",
            ]
        )

    def probe(self) -> str:
        try:
            with admin_client(self.settings) as client:
                ready = client.get("/readyz")
                version = client.get("/version")
        except httpx.HTTPError as exc:
            raise ProbeError(f"not answering: {exc!r}") from exc
        if ready.status_code != 200:
            raise ProbeError(f"/readyz answered {ready.status_code}: {ready.text[-300:]}")
        return f"ready, {version.json().get('gitVersion')}"

    def configure(self) -> None:
        with admin_client(self.settings) as client:
            answer = client.post("/apis/networking.k8s.io/v1/servicecidrs", json=EXTRA_SERVICE_CIDR)
        if answer.status_code not in (201, 409):  # 409: there from an earlier start
            raise ProbeError(f"creating ServiceCIDR: {answer.status_code} {answer.text[-300:]}")

    def endpoint(self) -> dict[str, Any]:
        return {
            "url": self.address,
            "kubeconfig": str(kubeconfig_path(self.settings)),
            "kubectl": str(kube_bin(self.settings) / "kubectl"),
            "helm": str(helm_path(self.settings)),
            "version": versions.KUBERNETES,
        }
