"""OutboxConnectors against the stack's Kafka Connect as in production (`config-provider`): a
Secret a resource names is laid out where the worker's DirectoryConfigProvider reads it,
<root>/<namespace>/<secret>/<key>, as a cluster mounts a namespace's Secrets on its Connect
workers, and the connector config names it by reference, so no password shows in Connect's
REST API (issue 14). `release` removes what a namespace's OutboxConnectors left on Connect
whatever became of the test, and their finalizers, so the namespace's deletion is not wedged
once no operator runs."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from kubernetes import client

from commerce_devstack import connect_secrets
from commerce_devstack.endpoints import Endpoints
from commerce_operator.settings import CredentialsMode, OutboxSettings

GROUP, VERSION, PLURAL = "commerce.io", "v1alpha1", "outboxconnectors"


def secrets_root(stack: Endpoints) -> Path:
    """Where the stack's Connect worker reads Secrets; the test fails without one."""
    connect = stack["connect"]
    if "secrets_root" not in connect:
        pytest.fail(
            "the stack's Connect worker has no config provider (no connect.secrets_root), so "
            "an OutboxConnector cannot name its password by reference: the worker was started "
            "before it had one; it gets one when it next starts (`commerce-stack up` after a "
            "restart)",
            pytrace=False,
        )
    return Path(connect["secrets_root"])


def outbox_settings(stack: Endpoints) -> OutboxSettings:
    """The operator's settings for the stack's Kafka and Connect, credentials by reference."""
    return OutboxSettings(
        bootstrap_servers=stack["kafka"]["bootstrap_servers"],
        connect_url=stack["connect"]["url"],
        credentials=CredentialsMode.CONFIG_PROVIDER,
        secrets_mount_root=str(secrets_root(stack)),
    )


def operator_env(settings: OutboxSettings) -> dict[str, str]:
    """`settings` as an operator process reads them (OPERATOR_*)."""
    return {
        "OPERATOR_KAFKA_BOOTSTRAP": settings.bootstrap_servers,
        "OPERATOR_CONNECT_URL": settings.connect_url,
        "OPERATOR_CONNECT_CREDENTIALS": settings.credentials.value,
        "OPERATOR_CONNECT_SECRETS_ROOT": settings.secrets_mount_root,
    }


def create_secret(
    api: client.ApiClient, stack: Endpoints, namespace: str, name: str, values: Mapping[str, str]
) -> None:
    """The Secret on the API server, and mounted on the stack's Connect worker."""
    connect_secrets.put(secrets_root(stack), f"{namespace}/{name}", values)
    body = {"metadata": {"name": name}, "stringData": dict(values)}
    client.CoreV1Api(api).create_namespaced_secret(namespace, cast(Any, body))


def replication_values(stack: Endpoints) -> dict[str, str]:
    """The stack's replication user as a credentialsSecretRef Secret holds it."""
    replication = stack["mariadb"]["replication"]
    return {"username": replication["user"], "password": stack.secret(replication["password_ref"])}


@contextmanager
def released_namespace(api: client.ApiClient, stack: Endpoints, name: str) -> Iterator[str]:
    """A new namespace `name`; when the block ends, whatever became of it, `release`d, then
    deleted."""
    core = client.CoreV1Api(api)
    core.create_namespace(cast(Any, {"metadata": {"name": name}}))
    try:
        yield name
    finally:
        try:
            release(api, stack, name)
        finally:
            core.delete_namespace(name)


def release(api: client.ApiClient, stack: Endpoints, namespace: str) -> None:
    """docs/crds.md's release without the operator, for every OutboxConnector left in the
    namespace (its connector `<namespace>.<name>` deleted from Connect, then its finalizers
    removed); then the namespace's Secrets unmounted."""
    objects = client.CustomObjectsApi(api)
    try:
        listed = objects.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
        for item in cast(dict[str, Any], listed)["items"]:
            name = item["metadata"]["name"]
            connector = f"{stack['connect']['url']}/connectors/{namespace}.{name}"
            answer = httpx.delete(connector, timeout=30)
            assert answer.status_code in (204, 404), f"DELETE {connector}: {answer.text}"
            if item["metadata"].get("finalizers"):
                patch = {"metadata": {"finalizers": None}}
                objects.patch_namespaced_custom_object(
                    GROUP, VERSION, namespace, PLURAL, name, patch
                )
    finally:
        connect_secrets.remove(secrets_root(stack), namespace)
