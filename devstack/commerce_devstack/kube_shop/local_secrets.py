"""The samples' Secrets filled from the local stack: every Secret the template in
samples/secrets/ declares gets the same keys, with this machine's addresses and the stack's
generated credentials. A Secret or key the template adds without a local value is an error
here, so the samples and `make up` cannot drift apart silently."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from commerce_devstack.endpoints import Endpoints

# The stack's database account behind each database Secret (components/mariadb.py).
DATABASE_ACCOUNTS = {
    "product-db": "shop_product",
    "order-db": "shop_order",
    "payment-db": "shop_payment",
}
# MongoDB Secret -> the database its URI names: the shop's own, apart from every other user of
# the stack's FerretDB (tests, `make shop`), since the services take the URI's database.
DOCUMENT_STORES = {"user-mongo": "shop_user", "catalog-mongo": "shop_catalog"}


class NoLocalValue(Exception):
    """The Secret template names a Secret or key this module cannot fill."""


def _values(name: str, stack: Endpoints) -> dict[str, str]:
    mariadb = stack["mariadb"]
    address = {"host": str(mariadb["host"]), "port": str(mariadb["port"])}
    if name in DATABASE_ACCOUNTS:
        dsn = stack.mariadb_dsn(DATABASE_ACCOUNTS[name])
        return {
            **address,
            "database": str(dsn["database"]),
            "username": str(dsn["user"]),
            "password": str(dsn["password"]),
        }
    if name == "debezium-replication":
        replication = mariadb["replication"]
        return {
            **address,
            "username": str(replication["user"]),
            "password": stack.secret(replication["password_ref"]),
        }
    if name == "kafka":
        return {"bootstrapServers": str(stack["kafka"]["bootstrap_servers"])}
    if name in DOCUMENT_STORES:
        return {"uri": str(stack["ferretdb"]["uri"]).rstrip("/") + "/" + DOCUMENT_STORES[name]}
    raise NoLocalValue(f"no local value for Secret {name!r}; teach kube_shop/local_secrets.py")


def local_secrets(templates: Iterable[Mapping[str, Any]], stack: Endpoints) -> list[dict[str, Any]]:
    """One filled Secret per template, with exactly the template's keys."""
    filled = []
    for template in templates:
        if template.get("kind") != "Secret":
            continue
        meta = template["metadata"]
        values = _values(meta["name"], stack)
        keys = sorted(template.get("stringData") or {})
        missing = [k for k in keys if k not in values]
        if missing:
            raise NoLocalValue(f"Secret {meta['name']!r}: no local value for {', '.join(missing)}")
        filled.append(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {
                    "name": meta["name"],
                    "namespace": meta["namespace"],
                    "labels": {
                        "app.kubernetes.io/part-of": "commerce",
                        "commerce.io/local": "true",
                    },
                },
                "stringData": {k: values[k] for k in keys},
            }
        )
    return filled
