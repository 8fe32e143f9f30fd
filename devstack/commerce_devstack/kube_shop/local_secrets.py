"""The samples' Secrets filled from the local stack: every Secret the template in
samples/secrets/ declares gets the same keys, with the cluster names of the stack's servers
(`mariadb.infra.svc`, ...: Services in the namespace `infra`) and the stack's generated
credentials. A Secret or key the template adds without a local value is an error here, so the
samples and `make up` cannot drift apart silently.

One exception: the replication user's Secret names the node address, because it is read by
the stack's Kafka Connect worker, which runs on the host, outside the cluster and its DNS.

The identity Secrets (signing keys, the bootstrap staff account) hold no server's credentials:
their values come from kube_shop/identity.py, made once for this machine."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from commerce_devstack.endpoints import Endpoints
from commerce_devstack.node.addons import INFRA_NAMESPACE

# The stack's database account behind each database Secret (components/mariadb.py).
DATABASE_ACCOUNTS = {
    "product-db": "shop_product",
    "order-db": "shop_order",
    "payment-db": "shop_payment",
}
# ... and the migration account behind each migrations Secret.
MIGRATION_ACCOUNTS = {
    f"{secret}-migrations": account for secret, account in DATABASE_ACCOUNTS.items()
}
# MongoDB Secret -> the database its URI names: the shop's own, apart from every other user of
# the stack's FerretDB (tests, `make shop`), since the services take the URI's database.
DOCUMENT_STORES = {"user-mongo": "shop_user", "catalog-mongo": "shop_catalog"}


class NoLocalValue(Exception):
    """The Secret template names a Secret or key this module cannot fill."""


def cluster_name(server: str) -> str:
    """The DNS name of a stack server's Service inside the cluster."""
    return f"{server}.{INFRA_NAMESPACE}.svc"


def _port(address: str) -> str:
    return str(urlsplit(address if "//" in address else f"//{address}").port)


def _values(
    name: str, stack: Endpoints, identity: Mapping[str, Mapping[str, str]]
) -> dict[str, str]:
    if name in identity:
        return dict(identity[name])
    mariadb = stack["mariadb"]
    address = {"host": cluster_name("mariadb"), "port": str(mariadb["port"])}
    if name in DATABASE_ACCOUNTS or name in MIGRATION_ACCOUNTS:
        migrations = name in MIGRATION_ACCOUNTS
        account = (MIGRATION_ACCOUNTS if migrations else DATABASE_ACCOUNTS)[name]
        dsn = stack.mariadb_dsn(account, migrations=migrations)
        return {
            **address,
            "database": str(dsn["database"]),
            "username": str(dsn["user"]),
            "password": str(dsn["password"]),
        }
    if name == "debezium-replication":
        replication = mariadb["replication"]
        return {
            "host": str(mariadb["host"]),
            "port": str(mariadb["port"]),
            "username": str(replication["user"]),
            "password": stack.secret(replication["password_ref"]),
        }
    if name == "kafka":
        port = _port(str(stack["kafka"]["bootstrap_servers"]))
        return {"bootstrapServers": f"{cluster_name('kafka')}:{port}"}
    if name in DOCUMENT_STORES:
        port = _port(str(stack["ferretdb"]["uri"]))
        return {"uri": f"mongodb://{cluster_name('ferretdb')}:{port}/{DOCUMENT_STORES[name]}"}
    raise NoLocalValue(f"no local value for Secret {name!r}; teach kube_shop/local_secrets.py")


def local_secrets(
    templates: Iterable[Mapping[str, Any]],
    stack: Endpoints,
    identity: Mapping[str, Mapping[str, str]],
) -> list[dict[str, Any]]:
    """One filled Secret per template, with exactly the template's keys; `identity`: the
    values of the identity Secrets by name."""
    filled = []
    for template in templates:
        if template.get("kind") != "Secret":
            continue
        meta = template["metadata"]
        values = _values(meta["name"], stack, identity)
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
