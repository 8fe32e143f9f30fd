"""Which Service an Ingress sends a request path to (pure): the paths of every rule, Exact
before Prefix, the longest matching path first, Prefix matched element by element (`/api/v1/
orders` matches `/api/v1/orders/42`, not `/api/v1/ordersx`), as the Ingress API defines. Host
rules are not told apart: locally there is one address."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class IngressRoute:
    path: str
    exact: bool
    namespace: str
    service: str
    port: int | str  # the Service port's number or name


def ingress_routes(ingresses: Sequence[Mapping[str, Any]]) -> list[IngressRoute]:
    routes = []
    for ingress in ingresses:
        namespace = ingress["metadata"]["namespace"]
        for rule in ingress.get("spec", {}).get("rules") or []:
            for path in (rule.get("http") or {}).get("paths") or []:
                backend = (path.get("backend") or {}).get("service")
                if backend is None:
                    continue  # a resource backend: nothing local to send it to
                port = backend.get("port") or {}
                routes.append(
                    IngressRoute(
                        path=path.get("path") or "/",
                        exact=path.get("pathType") == "Exact",
                        namespace=namespace,
                        service=backend["name"],
                        port=port["number"] if "number" in port else str(port.get("name", "")),
                    )
                )
    return routes


def _prefix_matches(prefix: str, path: str) -> bool:
    wanted = [p for p in prefix.split("/") if p]
    given = [p for p in path.split("/") if p]
    return given[: len(wanted)] == wanted


def route_for(routes: Sequence[IngressRoute], path: str) -> IngressRoute | None:
    exact = [r for r in routes if r.exact and r.path == path]
    if exact:
        return exact[0]
    prefixes = [r for r in routes if not r.exact and _prefix_matches(r.path, path)]
    return max(prefixes, key=lambda r: len(r.path.rstrip("/")), default=None)
