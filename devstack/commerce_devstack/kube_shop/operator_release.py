"""The operator installed with Helm from charts/commerce-operator, as a platform engineer
would: a pod under the chart's ServiceAccount and RBAC, watching the shop's namespace, pointed
at the stack's servers by their cluster names."""

from __future__ import annotations

from typing import Any

from commerce_devstack.endpoints import Endpoints
from commerce_devstack.kube_shop.local_secrets import cluster_name
from commerce_devstack.kube_shop.settings import KubeShopSettings


def values(stack: Endpoints, shop: KubeShopSettings, image: str) -> dict[str, str | int]:
    """--set values for `helm upgrade --install`; `image` is repository:tag."""
    connect_port = str(stack["connect"]["url"]).rsplit(":", 1)[1]
    es_port = str(stack["elasticsearch"]["url"]).rsplit(":", 1)[1]
    repository, tag = image.rsplit(":", 1)
    return {
        "image.repository": repository,
        "image.tag": tag,
        "replicas": 1,  # one machine: peering's standby would only cost memory
        "watchNamespaces[0]": shop.namespace,
        # The node address, not a cluster name: the operator also writes it into connector
        # configs, read by the stack's Connect worker on the host, outside the cluster's DNS.
        "kafka.bootstrapServers": str(stack["kafka"]["bootstrap_servers"]),
        "connect.url": f"http://{cluster_name('connect')}:{connect_port}",
        # The stack's Connect worker runs on the host: `make up` copies the Secrets the
        # connectors name under its secrets root, as a cluster mounts them on its workers, and
        # the connector configs reference them. A worker started before it had a config
        # provider gets the values written in (literal) until the stack restarts.
        **(
            {"connect.credentials": "config-provider", "connect.secretsRoot": root}
            if (root := stack["connect"].get("secrets_root")) is not None
            else {"connect.credentials": "literal"}
        ),
        "elasticsearch.url": f"http://{cluster_name('elasticsearch')}:{es_port}",
    }


def helm_command(
    helm: str, kubeconfig: str, shop: KubeShopSettings, settings: dict[str, str | int]
) -> list[str]:
    """Strings go in with --set-string: a content tag of digits only stays a string."""
    return [
        helm,
        "upgrade",
        "--install",
        shop.release,
        str(shop.chart_dir),
        f"--kubeconfig={kubeconfig}",
        f"--namespace={shop.operator_namespace}",
        "--create-namespace",
        "--wait",
        "--timeout=300s",
        *(
            f"--set={key}={value}" if isinstance(value, int) else f"--set-string={key}={value}"
            for key, value in settings.items()
        ),
    ]


def recovery(history: list[dict[str, Any]], release: str) -> list[str] | None:
    """The helm command that clears what a killed `helm upgrade --install` left, from `helm
    history -o json` (oldest first): a release stuck in pending-install is uninstalled, one
    stuck in pending-upgrade or pending-rollback is rolled back to its last good revision;
    None when nothing is stuck. Helm refuses every other operation on a stuck release."""
    if not history or not str(history[-1]["status"]).startswith("pending-"):
        return None
    good = [h["revision"] for h in history[:-1] if h["status"] in ("deployed", "superseded")]
    if not good:
        return ["uninstall", release]
    return ["rollback", release, str(good[-1])]
