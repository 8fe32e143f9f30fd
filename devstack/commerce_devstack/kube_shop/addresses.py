"""Where the shop answers on this machine: the Ingress controller's public address for the
paths samples/40-ingress.yaml routes, and each Service's cluster address (the host reaches
cluster addresses through kube-proxy, as a pod would)."""

from __future__ import annotations

from typing import Any

from commerce_devstack.settings import StackSettings


def public_url(settings: StackSettings) -> str:
    return f"http://{settings.host}:{settings.ingress_port}"


def _ingress_rules(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        path
        for doc in docs
        if doc.get("kind") == "Ingress"
        for rule in doc["spec"].get("rules", [])
        for path in rule.get("http", {}).get("paths", [])
    ]


def routed_services(docs: list[dict[str, Any]]) -> set[str]:
    """The Services an Ingress of the samples routes to."""
    return {path["backend"]["service"]["name"] for path in _ingress_rules(docs)}


def ingress_paths(docs: list[dict[str, Any]]) -> list[str]:
    """Every path an Ingress of the samples routes."""
    return [str(path["path"]) for path in _ingress_rules(docs)]


def cluster_urls(services: list[dict[str, Any]]) -> dict[str, str]:
    """Service name -> http://<cluster IP>:<port named http>, from a Service list."""
    urls = {}
    for service in services:
        spec = service.get("spec") or {}
        port = next((p["port"] for p in spec.get("ports") or [] if p.get("name") == "http"), None)
        if port is not None and spec.get("clusterIP") not in (None, "None"):
            urls[service["metadata"]["name"]] = f"http://{spec['clusterIP']}:{port}"
    return urls
