"""The development runtime's Ingress routing: which Service a request path goes to."""

from __future__ import annotations

from typing import Any

import pytest

from commerce_devstack.devruntime.ingress_routes import IngressRoute, ingress_routes, route_for


def _ingress(*paths: tuple[str, str, str, Any]) -> dict[str, Any]:
    return {
        "metadata": {"namespace": "shop"},
        "spec": {
            "rules": [
                {
                    "http": {
                        "paths": [
                            {
                                "path": path,
                                "pathType": kind,
                                "backend": {"service": {"name": service, "port": port}},
                            }
                            for path, kind, service, port in paths
                        ]
                    }
                }
            ]
        },
    }


ROUTES = ingress_routes(
    [
        _ingress(
            ("/api/v1/orders", "Prefix", "order", {"name": "http"}),
            ("/api/v1/orders/export", "Prefix", "reports", {"number": 8080}),
            ("/api/v1/health", "Exact", "gateway", {"number": 80}),
            ("/", "Prefix", "frontend", {"number": 80}),
        )
    ]
)


def test_routes_keep_the_port_by_name_or_number() -> None:
    assert ROUTES[0] == IngressRoute("/api/v1/orders", False, "shop", "order", "http")
    assert ROUTES[1].port == 8080


@pytest.mark.parametrize(
    ("path", "service"),
    [
        ("/api/v1/orders", "order"),
        ("/api/v1/orders/", "order"),
        ("/api/v1/orders/42", "order"),
        ("/api/v1/ordersx", "frontend"),  # element by element, not a string prefix
        ("/api/v1/orders/export/2026", "reports"),  # the longest path wins
        ("/api/v1/health", "gateway"),
        ("/api/v1/health/deep", "frontend"),  # Exact matches only itself
        ("/", "frontend"),
    ],
)
def test_route_for(path: str, service: str) -> None:
    route = route_for(ROUTES, path)
    assert route is not None
    assert route.service == service


def test_no_route_without_a_matching_path() -> None:
    only_orders = [r for r in ROUTES if r.service == "order"]
    assert route_for(only_orders, "/api/v1/users") is None
