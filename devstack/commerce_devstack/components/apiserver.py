"""kube-apiserver on the node address with client-certificate auth, the Node authorizer and
RBAC; writes a kubeconfig per component (the admin's, the kubelet's, ...)."""

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
from commerce_devstack.node.addons import INGRESS_NAMESPACE
from commerce_devstack.node.network import EXTRA_SERVICE_CIDR, SERVICE_CIDR
from commerce_devstack.pki import ensure_pki
from commerce_devstack.process import LaunchSpec
from commerce_devstack.settings import StackSettings

# A /24 holds about 250 ClusterIPs: too few for the operator benchmark's hundreds of Services
# plus the tests' namespaces. More room comes as a second ServiceCIDR object, since changing the
# flag's range of an existing cluster is not supported in place.
EXTRA_SERVICE_CIDR_OBJECT = {
    "apiVersion": "networking.k8s.io/v1",
    "kind": "ServiceCIDR",
    "metadata": {"name": "commerce-dev-extra"},
    "spec": {"cidrs": [EXTRA_SERVICE_CIDR]},
}
# The components that talk to the API server, each with its own client certificate (pki.py).
CLIENTS = ("admin", "controller-manager", "scheduler", "kube-proxy", "kubelet")
# What workloads do with their ServiceAccounts is audited (who asked for what, and the
# answer): a test can then see every request RBAC refused an operator. The control plane's own
# requests, and those of the cluster's add-ons, are not written.
AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived", "ResponseStarted"],
    "rules": [
        {
            "level": "None",
            "userGroups": [
                "system:serviceaccounts:kube-system",
                f"system:serviceaccounts:{INGRESS_NAMESPACE}",
            ],
        },
        {"level": "Metadata", "userGroups": ["system:serviceaccounts"]},
        {"level": "None"},
    ],
}


def pki_dir(settings: StackSettings) -> Path:
    return settings.data_dir("kube") / "pki"


def kubeconfig_path(settings: StackSettings, client: str = "admin") -> Path:
    return settings.data_dir("kube") / f"{client}.kubeconfig"


def api_url(settings: StackSettings) -> str:
    return f"https://{settings.node_address}:{settings.apiserver_port}"


def write_kubeconfig(settings: StackSettings, client: str = "admin") -> Path:
    pki = pki_dir(settings)
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "commerce-local",
                "cluster": {
                    "server": api_url(settings),
                    "certificate-authority": str(pki / "ca.crt"),
                },
            }
        ],
        "users": [
            {
                "name": f"commerce-{client}",
                "user": {
                    "client-certificate": str(pki / f"{client}.crt"),
                    "client-key": str(pki / f"{client}.key"),
                },
            }
        ],
        "contexts": [
            {
                "name": "commerce-local",
                "context": {
                    "cluster": "commerce-local",
                    "user": f"commerce-{client}",
                    "namespace": "default",
                },
            }
        ],
        "current-context": "commerce-local",
    }
    path = kubeconfig_path(settings, client)
    path.write_text(json.dumps(config, indent=2))  # JSON is valid YAML for every kubeconfig reader
    path.chmod(0o600)
    return path


def audit_log(settings: StackSettings) -> Path:
    return settings.log_dir / "kube-apiserver-audit.log"


def admin_client(settings: StackSettings) -> httpx.Client:
    pki = pki_dir(settings)
    # One SSL context with the CA and the client certificate: httpx ignores `cert=` next to a
    # `verify=` path, and the API server would take the request as anonymous.
    context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    context.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
    return httpx.Client(
        base_url=api_url(settings),
        verify=context,
        timeout=5.0,
    )


class KubeApiServer(Component):
    name = "kube-apiserver"
    depends_on = ("etcd",)

    def ports(self) -> dict[str, int]:
        return {"apiserver_port": self.settings.apiserver_port}

    @property
    def listen_address(self) -> str:
        return self.settings.node_address

    @property
    def address(self) -> str:
        return api_url(self.settings)

    def install(self) -> None:
        kube_bin(self.settings, self.notify)
        helm_bin(self.settings, self.notify)  # a client tool, like kubectl

    def prepare(self) -> None:
        s = self.settings
        # One address when the node runs on loopback (no node): the same certificates then.
        ensure_pki(pki_dir(s), list(dict.fromkeys([s.node_address, s.host])), s.node_name)
        for client in CLIENTS:
            write_kubeconfig(s, client)
        self._audit_policy.write_text(json.dumps(AUDIT_POLICY, indent=2))

    @property
    def _audit_policy(self) -> Path:
        return self.settings.data_dir("kube") / "audit-policy.json"

    def launch(self) -> LaunchSpec:
        s = self.settings
        pki = pki_dir(s)
        return LaunchSpec(
            [
                str(kube_bin(s) / "kube-apiserver"),
                f"--etcd-servers=http://{s.host}:{s.etcd_port}",
                # Pods reach it through the `kubernetes` Service, whose endpoint is this address.
                f"--bind-address={s.node_address}",
                f"--advertise-address={s.node_address}",
                f"--secure-port={s.apiserver_port}",
                f"--tls-cert-file={pki / 'apiserver.crt'}",
                f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
                f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
                f"--kubelet-certificate-authority={pki / 'ca.crt'}",
                "--kubelet-preferred-address-types=InternalIP",
                "--authorization-mode=Node,RBAC",
                "--enable-admission-plugins=NodeRestriction",
                "--allow-privileged=true",
                "--profiling=false",
                f"--audit-policy-file={self._audit_policy}",
                f"--audit-log-path={audit_log(s)}",
                "--audit-log-format=json",
                "--audit-log-maxsize=50",
                "--audit-log-maxbackup=1",
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
            answer = client.post(
                "/apis/networking.k8s.io/v1/servicecidrs", json=EXTRA_SERVICE_CIDR_OBJECT
            )
        if answer.status_code not in (201, 409):  # 409: there from an earlier start
            raise ProbeError(f"creating ServiceCIDR: {answer.status_code} {answer.text[-300:]}")

    def endpoint(self) -> dict[str, Any]:
        return {
            "url": self.address,
            "kubeconfig": str(kubeconfig_path(self.settings)),
            "kubectl": str(kube_bin(self.settings) / "kubectl"),
            "helm": str(helm_path(self.settings)),
            "audit_log": str(audit_log(self.settings)),
            "version": versions.KUBERNETES,
        }
