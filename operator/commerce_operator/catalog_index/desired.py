"""CatalogIndex -> versioned Elasticsearch index names behind the alias, the body of a new
index version, which old versions the retention setting lets go, and the sync worker's
ServiceAccount and Deployment (pure).

Documents live in `<alias>-v<N>` (the naming is the services' contract,
commerce_services.contracts); searches use the alias, so a new version is filled while
the old one keeps answering, then one atomic alias swap moves every search over.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from commerce_operator.bindings import (
    BINDING_INVALID,
    BINDING_NOT_FOUND,
    BindingProblem,
    SecretInfo,
    secret_key_refs,
    secret_problem,
)
from commerce_operator.catalog_index.spec import CatalogIndexSpec
from commerce_operator.resource import MANAGED_BY, ResourceMeta, object_meta
from commerce_services.contracts import index_name, index_version

# On the worker's pod template: a config or Secret change rolls it.
CONFIG_HASH_ANNOTATION = "commerce.io/config-hash"


def next_index(alias: str, existing: Iterable[str]) -> str:
    """One above every version that exists, including a half-built one from an interrupted
    migration, so a new version never reuses a name that still holds other documents."""
    versions = [v for v in (index_version(alias, i) for i in existing) if v is not None]
    return index_name(alias, max(versions, default=0) + 1)


def index_body(settings: Mapping[str, Any], mappings: Mapping[str, Any]) -> dict[str, Any]:
    """The create-index request for a new version."""
    return {"settings": dict(settings), "mappings": dict(mappings)}


def indices_to_delete(
    alias: str, existing: Iterable[str], current: str, keep_previous: int
) -> list[str]:
    """Older versions than `current` beyond the newest `keep_previous`. Newer ones are left
    alone: they may be a migration in progress."""
    current_version = index_version(alias, current)
    if current_version is None:
        return []
    older = sorted(
        (v for v in (index_version(alias, i) for i in existing) if v is not None),
        reverse=True,
    )
    older = [v for v in older if v < current_version]
    return [index_name(alias, v) for v in older[keep_previous:]]


# ---- the sync worker ----------------------------------------------------------------------

# Secret key -> setting of the worker (commerce_services.search.settings.SearchSettings), per
# source Secret; the same keys as a CommerceService's database and documentStore bindings.
DOCUMENT_STORE_KEYS = {"uri": "SEARCH_MONGO_URI"}
PRODUCT_DATABASE_KEYS = {
    "host": "SEARCH_DB_HOST",
    "port": "SEARCH_DB_PORT",
    "database": "SEARCH_DB_NAME",
    "username": "SEARCH_DB_USER",
    "password": "SEARCH_DB_PASSWORD",
}
BROKER_KEYS = {"bootstrapServers": "SEARCH_KAFKA_BOOTSTRAP"}
WORKER_ROLE = "catalog-sync"
HTTP_PORT = 8080


def worker_name(meta: ResourceMeta) -> str:
    return f"{meta.name}-sync"


def worker_labels(meta: ResourceMeta) -> dict[str, str]:
    return {**worker_selector(meta), "app.kubernetes.io/part-of": "commerce"}


def worker_selector(meta: ResourceMeta) -> dict[str, str]:
    # Only labels that never change: a Deployment's selector is immutable.
    return {
        "app.kubernetes.io/name": WORKER_ROLE,
        "app.kubernetes.io/instance": meta.name,
        "app.kubernetes.io/managed-by": MANAGED_BY,
    }


def worker_problems(
    spec: CatalogIndexSpec,
    secrets: Mapping[str, SecretInfo],
    event_topics: Mapping[str, str] | None,
) -> list[BindingProblem]:
    """A source Secret missing or lacking a key, or the product events' OutboxConnector not
    publishing their topic: the worker would crash on a missing setting, so nothing is applied
    until it is there (it may be created later: retried). `event_topics`: the connector's
    status.eventTopics, None when there is no such connector or it published none yet."""
    problems = [
        secret_problem(
            "source.documentStore", spec.document_store_secret, secrets, DOCUMENT_STORE_KEYS
        ),
        secret_problem(
            "source.productDatabase", spec.product_database_secret, secrets, PRODUCT_DATABASE_KEYS
        ),
        secret_problem("source.broker", spec.broker_secret, secrets, BROKER_KEYS),
    ]
    where = f"source.productEvents: OutboxConnector {spec.events_connector!r}"
    if event_topics is None:
        problems.append(
            BindingProblem(
                BINDING_NOT_FOUND, f"{where} not found, or its topics not in its status yet"
            )
        )
    elif spec.events_aggregate not in event_topics:
        problems.append(
            BindingProblem(
                BINDING_INVALID, f"{where} has no aggregate type {spec.events_aggregate!r}"
            )
        )
    return [problem for problem in problems if problem is not None]


def worker_objects(
    spec: CatalogIndexSpec,
    meta: ResourceMeta,
    elasticsearch_url: str,
    secrets: Mapping[str, SecretInfo],
    events_topic: str,
) -> list[dict[str, Any]]:
    """The worker's ServiceAccount (no API token) and Deployment running `commerce-search run`
    with SEARCH_CREATE_INDEX=false: the operator creates every index version with the spec's
    settings and mappings; the worker only fills the one behind the alias, following the
    product service's events on `events_topic`."""
    config = {
        "SEARCH_ALIAS": spec.alias,
        "SEARCH_PRODUCT_EVENTS_TOPIC": events_topic,
        "SEARCH_ELASTICSEARCH_URL": elasticsearch_url,
        "SEARCH_MONGO_DATABASE": spec.mongo_database,
        "SEARCH_CREATE_INDEX": "false",
        "SEARCH_LISTEN_HOST": "0.0.0.0",
        "SEARCH_HTTP_PORT": str(HTTP_PORT),
    }
    env = (
        secret_key_refs(spec.document_store_secret, DOCUMENT_STORE_KEYS)
        + secret_key_refs(spec.product_database_secret, PRODUCT_DATABASE_KEYS)
        + secret_key_refs(spec.broker_secret, BROKER_KEYS)
    )
    bound = (spec.document_store_secret, spec.product_database_secret, spec.broker_secret)
    versions = {name: secrets[name].resource_version for name in bound if name in secrets}
    # A rotated Secret changes the hash and so rolls the worker (env is read at start).
    config_hash = hashlib.sha256(
        json.dumps([config, env, versions], sort_keys=True).encode()
    ).hexdigest()[:16]
    container: dict[str, Any] = {
        "name": "sync",
        "image": spec.worker.image,
        # The entry point itself: runs under any image layout.
        "command": ["commerce-search", "run"],
        "ports": [{"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"}],
        "env": [{"name": k, "value": v} for k, v in sorted(config.items())] + env,
        "readinessProbe": {
            "httpGet": {"path": "/health/ready", "port": "http"},
            "periodSeconds": 5,
        },
        "livenessProbe": {
            "httpGet": {"path": "/health/live", "port": "http"},
            "periodSeconds": 10,
            "failureThreshold": 6,
        },
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
    }
    if spec.worker.resources:
        container["resources"] = dict(spec.worker.resources)
    name = worker_name(meta)
    return [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": object_meta(meta, name, worker_labels(meta)),
            "automountServiceAccountToken": False,
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": object_meta(meta, name, worker_labels(meta)),
            "spec": {
                "replicas": spec.worker.replicas,
                # One worker owns the checkpoint: the old pod stops before the new one starts.
                "strategy": {"type": "Recreate"},
                "selector": {"matchLabels": worker_selector(meta)},
                "template": {
                    "metadata": {
                        "labels": worker_labels(meta),
                        "annotations": {CONFIG_HASH_ANNOTATION: config_hash},
                    },
                    "spec": {
                        "serviceAccountName": name,
                        "securityContext": {
                            "runAsNonRoot": True,
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                        "terminationGracePeriodSeconds": 30,
                        "containers": [container],
                    },
                },
            },
        },
    ]
