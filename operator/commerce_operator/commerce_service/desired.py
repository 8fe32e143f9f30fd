"""CommerceService -> ServiceAccount, ConfigMap, Deployment (with an init container that
migrates the bound database, for the roles that have migrations), Service, NetworkPolicy,
optional HPA and PDB.

The NetworkPolicy lets anyone reach the HTTP port (the public API through the Ingress, probes,
scrapes) and only the services that bind this one (`bindings.services`) its gRPC port: each
binder's pods carry the label `commerce.io/calls-<name>`, which the policy admits; a service
nobody binds has its gRPC port closed. Enforced where the cluster's network plugin enforces
NetworkPolicies; mTLS (each method's caller list) holds either way.

Pure: the objects are a function of the spec, the resource's metadata and a `ClusterView` of
what its bindings name (read by the reconciler beforehand). Bindings become env vars: Secret
values as secretKeyRef (never copied into the ConfigMap or the Deployment), everything else in
the ConfigMap. A hash of the rendered configuration, including the bound Secrets' resource
versions, is an annotation on the pod template, so a config or Secret change rolls the pods.

A binding whose target is missing or incomplete is a problem to report, not an exception: no
objects are built then, so the running Deployment keeps its last good configuration instead of
being rolled to pods that would crash on a missing setting.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from commerce_operator.bindings import (
    BINDING_INVALID,
    BINDING_NOT_FOUND,
    BindingProblem,
    SecretInfo,
    secret_key_refs,
    secret_problem,
)
from commerce_operator.commerce_service.spec import ROLES, Autoscaling, CommerceServiceSpec
from commerce_operator.conditions import Outcome, StepResult
from commerce_operator.resource import API_VERSION, MANAGED_BY, ResourceMeta, object_meta
from commerce_operator.rollout import rollout_result as deployment_rollout

CONFIG_HASH_ANNOTATION = "commerce.io/config-hash"
CALLS_LABEL_PREFIX = "commerce.io/calls-"

# The operator lacks a setting a role needs (OPERATOR_ELASTICSEARCH_URL): fixed by configuring
# the operator, so retried rather than stalled.
OPERATOR_SETTING_MISSING = "OperatorSettingMissing"

# Secret key -> setting (after the role's prefix) for each kind of Secret binding; the
# settings are those of commerce_services' settings classes (DatabaseSettings, ...).
DATABASE_KEYS = {
    "host": "DB_HOST",
    "port": "DB_PORT",
    "database": "DB_NAME",
    "username": "DB_USER",
    "password": "DB_PASSWORD",
}
BROKER_KEYS = {"bootstrapServers": "KAFKA_BOOTSTRAP"}
DOCUMENT_STORE_KEYS = {"uri": "MONGO_URI"}
SIGNING_KEYS_KEYS = {"jwks": "SIGNING_KEYS", "activeKeyId": "SIGNING_KEY_ID"}
STAFF_BOOTSTRAP_KEYS = {"email": "BOOTSTRAP_STAFF_EMAIL", "password": "BOOTSTRAP_STAFF_PASSWORD"}
GRPC_IDENTITY_KEYS = {
    "tls.crt": "GRPC_TLS_CERT",
    "tls.key": "GRPC_TLS_KEY",
    "ca.crt": "GRPC_TLS_CA",
}


@dataclass(frozen=True)
class PeerService:
    role: str
    grpc_port: int


@dataclass(frozen=True)
class ClusterView:
    """What the binding targets in the resource's namespace publish, by name: a Secret's keys,
    an OutboxConnector's and a CatalogIndex's status (never their spec, which is theirs to
    interpret), a peer CommerceService's role and port."""

    secrets: Mapping[str, SecretInfo] = field(default_factory=dict)
    # OutboxConnector name -> aggregate type -> topic (its status.eventTopics).
    outbox_topics: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    services: Mapping[str, PeerService] = field(default_factory=dict)
    # CatalogIndex name -> alias (its status.alias).
    catalog_aliases: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DesiredState:
    objects: tuple[dict[str, Any], ...]
    problems: tuple[BindingProblem, ...]
    config_hash: str
    selector: str


def labels(spec: CommerceServiceSpec, meta: ResourceMeta) -> dict[str, str]:
    return {**selector_labels(spec, meta), "app.kubernetes.io/part-of": "commerce"}


def selector_labels(spec: CommerceServiceSpec, meta: ResourceMeta) -> dict[str, str]:
    # Only labels that never change: a Deployment's selector is immutable (role is too).
    return {
        "app.kubernetes.io/name": spec.role.name,
        "app.kubernetes.io/instance": meta.name,
        "app.kubernetes.io/managed-by": MANAGED_BY,
    }


def desired_state(
    spec: CommerceServiceSpec,
    meta: ResourceMeta,
    view: ClusterView,
    *,
    elasticsearch_url: str | None = None,
) -> DesiredState:
    """`elasticsearch_url`: the operator's OPERATOR_ELASTICSEARCH_URL, for the roles that use
    Elasticsearch."""
    config, secret_env, problems, versions = _resolve(spec, meta, view, elasticsearch_url)
    migration_env = _migration_env(spec, view, problems, versions)
    config_hash = _hash(config, secret_env + migration_env, versions)
    selector = ",".join(f"{k}={v}" for k, v in sorted(selector_labels(spec, meta).items()))
    if problems:
        return DesiredState((), tuple(problems), config_hash, selector)
    objects = [
        _service_account(spec, meta),
        _config_map(spec, meta, config),
        _deployment(spec, meta, secret_env, migration_env, config_hash),
        _service(spec, meta),
        _network_policy(spec, meta),
    ]
    if spec.autoscaling is not None:
        objects.append(_autoscaler(spec, meta, spec.autoscaling))
    if spec.disruption_budget is not None:
        objects.append(_disruption_budget(spec, meta, spec.disruption_budget))
    return DesiredState(tuple(objects), (), config_hash, selector)


def bindings_result(state: DesiredState) -> StepResult:
    """Missing targets may still be created (resources arrive in any order under GitOps), so
    this is retried, not stalled."""
    if not state.problems:
        return StepResult("bindings", Outcome.DONE)
    first = state.problems[0]
    return StepResult(
        "bindings", Outcome.RETRYING, first.reason, "; ".join(p.message for p in state.problems)
    )


def rollout_result(spec: CommerceServiceSpec, deployment: Mapping[str, Any] | None) -> StepResult:
    """Whether the Deployment runs the current pod template on every wanted replica."""
    return deployment_rollout("rollout", spec.replicas, deployment)


def status_fields(
    spec: CommerceServiceSpec,
    meta: ResourceMeta,
    state: DesiredState,
    deployment: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The CommerceService's own status fields (conditions come from `summarize`)."""
    observed = (deployment or {}).get("status") or {}
    host = f"{meta.name}.{meta.namespace}.svc"
    endpoints = {"http": f"http://{host}:{spec.http_port}"}
    if spec.role.serves_grpc:
        endpoints["grpc"] = f"{host}:{spec.grpc_port}"
    return {
        "replicas": observed.get("replicas", 0),
        "readyReplicas": observed.get("readyReplicas", 0),
        "updatedReplicas": observed.get("updatedReplicas", 0),
        "selector": state.selector,
        "configHash": state.config_hash,
        "endpoints": endpoints,
    }


def _resolve(
    spec: CommerceServiceSpec,
    meta: ResourceMeta,
    view: ClusterView,
    elasticsearch_url: str | None,
) -> tuple[dict[str, str], list[dict[str, Any]], list[BindingProblem], dict[str, str]]:
    """The ConfigMap's data, the secretKeyRef env vars, the problems, and the bound Secrets'
    resource versions (for the hash)."""
    prefix = spec.role.env_prefix
    config = {f"{prefix}_LISTEN_HOST": "0.0.0.0", f"{prefix}_HTTP_PORT": str(spec.http_port)}
    if spec.role.serves_grpc:
        config[f"{prefix}_GRPC_PORT"] = str(spec.grpc_port)
    secret_env: list[dict[str, Any]] = []
    problems: list[BindingProblem] = []
    versions: dict[str, str] = {}
    bindings = spec.bindings

    for binding, secret_name, keys in (
        ("database", bindings.database, DATABASE_KEYS),
        ("broker", bindings.broker, BROKER_KEYS),
        ("documentStore", bindings.document_store, DOCUMENT_STORE_KEYS),
        ("signingKeys", bindings.signing_keys, SIGNING_KEYS_KEYS),
        ("staffBootstrap", bindings.staff_bootstrap, STAFF_BOOTSTRAP_KEYS),
        ("grpcIdentity", bindings.grpc_identity, GRPC_IDENTITY_KEYS),
    ):
        if secret_name is not None:
            secret_env += _secret_env(spec, binding, secret_name, keys, view, problems, versions)

    for event in bindings.events:
        topics = view.outbox_topics.get(event.outbox_connector)
        if topics is None:
            problems.append(
                BindingProblem(
                    BINDING_NOT_FOUND,
                    f"events: OutboxConnector {event.outbox_connector!r} not found, or its "
                    "topics not in its status yet",
                )
            )
        elif event.aggregate_type not in topics:
            problems.append(
                BindingProblem(
                    BINDING_INVALID,
                    f"events: OutboxConnector {event.outbox_connector!r} has no aggregate type "
                    f"{event.aggregate_type!r}",
                )
            )
        else:
            config[f"{prefix}_{_env_word(event.aggregate_type)}_EVENTS_TOPIC"] = topics[
                event.aggregate_type
            ]

    for peer_name in bindings.services:
        peer = view.services.get(peer_name)
        if peer is None:
            problems.append(
                BindingProblem(
                    BINDING_NOT_FOUND, f"services: CommerceService {peer_name!r} not found"
                )
            )
        elif not ROLES[peer.role].serves_grpc:
            problems.append(
                BindingProblem(
                    BINDING_INVALID,
                    f"services: CommerceService {peer_name!r} ({peer.role}) serves no gRPC",
                )
            )
        else:
            target = f"{peer_name}.{meta.namespace}.svc:{peer.grpc_port}"
            config[f"{prefix}_{ROLES[peer.role].env_prefix}_GRPC_TARGET"] = target

    if bindings.catalog_index is not None:
        alias = view.catalog_aliases.get(bindings.catalog_index)
        if alias is None:
            problems.append(
                BindingProblem(
                    BINDING_NOT_FOUND,
                    f"catalogIndex: CatalogIndex {bindings.catalog_index!r} not found, or its "
                    "alias not in its status yet",
                )
            )
        else:
            config[f"{prefix}_{spec.role.alias_setting}"] = alias

    if spec.role.uses_elasticsearch:
        setting = f"{prefix}_ELASTICSEARCH_URL"
        if elasticsearch_url is not None:
            config[setting] = elasticsearch_url
        elif setting not in dict(spec.env):
            problems.append(
                BindingProblem(
                    OPERATOR_SETTING_MISSING,
                    f"role {spec.role.name} needs Elasticsearch: set OPERATOR_ELASTICSEARCH_URL "
                    f"on the operator (or {setting} in spec.env)",
                )
            )

    # Explicit settings win over what bindings derive (e.g. another consumer group or topic).
    config.update(dict(spec.env))
    return config, secret_env, problems, versions


def _migration_env(
    spec: CommerceServiceSpec,
    view: ClusterView,
    problems: list[BindingProblem],
    versions: dict[str, str],
) -> list[dict[str, Any]]:
    """The migration account's settings for the init container (empty without the binding:
    it then migrates as the database binding's account)."""
    name = spec.bindings.migration_database
    if name is None:
        return []
    return _secret_env(spec, "migrationDatabase", name, DATABASE_KEYS, view, problems, versions)


def _secret_env(
    spec: CommerceServiceSpec,
    binding: str,
    secret_name: str,
    keys: Mapping[str, str],
    view: ClusterView,
    problems: list[BindingProblem],
    versions: dict[str, str],
) -> list[dict[str, Any]]:
    """The env vars (secretKeyRefs) of one Secret binding, its version recorded for the hash;
    none, and a problem, when the Secret is missing or lacks a key."""
    problem = secret_problem(binding, secret_name, view.secrets, keys)
    if problem is not None:
        problems.append(problem)
        return []
    versions[secret_name] = view.secrets[secret_name].resource_version
    prefix = spec.role.env_prefix
    return secret_key_refs(secret_name, {key: f"{prefix}_{s}" for key, s in keys.items()})


def calls_label(service: str) -> str:
    """The label a pod carries to be let through `service`'s gRPC NetworkPolicy (a label name
    is at most 63 characters: a long service name is shortened with a hash)."""
    room = 63 - len("calls-")
    if len(service) > room:
        digest = hashlib.sha256(service.encode()).hexdigest()[:8]
        service = f"{service[: room - 9]}-{digest}"
    return f"{CALLS_LABEL_PREFIX}{service}"


def _env_word(value: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "_", value).upper()


def _hash(
    config: Mapping[str, str], secret_env: list[dict[str, Any]], versions: Mapping[str, str]
) -> str:
    rendered = json.dumps(
        {"config": config, "secretEnv": secret_env, "secretVersions": versions},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(rendered.encode()).hexdigest()[:16]


def _service_account(spec: CommerceServiceSpec, meta: ResourceMeta) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": object_meta(meta, meta.name, labels(spec, meta)),
        # The services never call the Kubernetes API.
        "automountServiceAccountToken": False,
    }


def _config_map(
    spec: CommerceServiceSpec, meta: ResourceMeta, config: Mapping[str, str]
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": object_meta(meta, meta.name, labels(spec, meta)),
        "data": dict(sorted(config.items())),
    }


def _deployment(
    spec: CommerceServiceSpec,
    meta: ResourceMeta,
    secret_env: list[dict[str, Any]],
    migration_env: list[dict[str, Any]],
    config_hash: str,
) -> dict[str, Any]:
    ports = [{"name": "http", "containerPort": spec.http_port, "protocol": "TCP"}]
    if spec.role.serves_grpc:
        ports.append({"name": "grpc", "containerPort": spec.grpc_port, "protocol": "TCP"})
    container: dict[str, Any] = {
        "name": "service",
        "image": spec.image,
        "imagePullPolicy": spec.image_pull_policy,
        # The entry point itself, not args to an image ENTRYPOINT: the same Deployment runs
        # under any image layout.
        "command": list(spec.role.command),
        "ports": ports,
        "envFrom": [{"configMapRef": {"name": meta.name}}],
        "env": secret_env,
        "readinessProbe": {
            "httpGet": {"path": "/health/ready", "port": "http"},
            "periodSeconds": 5,
        },
        "livenessProbe": {
            "httpGet": {"path": "/health/live", "port": "http"},
            "periodSeconds": 10,
            "failureThreshold": 6,
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    if spec.resources:
        container["resources"] = dict(spec.resources)
    pod: dict[str, Any] = {
        "serviceAccountName": meta.name,
        "securityContext": {
            "runAsNonRoot": True,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        # SIGTERM drains REST, gRPC and consumers (runtime/serving.py).
        "terminationGracePeriodSeconds": 30,
        "containers": [container],
    }
    migrations = _migrations(spec, container, migration_env or secret_env)
    if migrations is not None:
        pod["initContainers"] = [migrations]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": object_meta(meta, meta.name, labels(spec, meta)),
        "spec": {
            "replicas": spec.replicas,
            "selector": {"matchLabels": selector_labels(spec, meta)},
            "template": {
                "metadata": {
                    "labels": {
                        **labels(spec, meta),
                        **{calls_label(peer): "true" for peer in spec.bindings.services},
                    },
                    "annotations": {CONFIG_HASH_ANNOTATION: config_hash},
                },
                "spec": pod,
            },
        },
    }


def _migrations(
    spec: CommerceServiceSpec, service: Mapping[str, Any], secret_env: list[dict[str, Any]]
) -> dict[str, Any] | None:
    """The init container that migrates the bound database before the service starts: the
    same image, only the database settings (`migrate` reads nothing else): the migration
    account's when migrationDatabase is bound, else the service's. Every replica runs it; a
    run that finds the schema current changes nothing, and concurrent runs queue on a lock in
    the database (commerce_services.db.alembic_env)."""
    if spec.role.migrate_command is None or spec.bindings.database is None:
        return None
    database_settings = {f"{spec.role.env_prefix}_{s}" for s in DATABASE_KEYS.values()}
    container = {
        "name": "migrate",
        "image": spec.image,
        "imagePullPolicy": spec.image_pull_policy,
        "command": list(spec.role.migrate_command),
        "env": [var for var in secret_env if var["name"] in database_settings],
        "securityContext": service["securityContext"],
    }
    if "resources" in service:
        container["resources"] = service["resources"]
    return container


def _service(spec: CommerceServiceSpec, meta: ResourceMeta) -> dict[str, Any]:
    ports: list[dict[str, Any]] = [
        {"name": "http", "port": spec.http_port, "targetPort": "http", "protocol": "TCP"}
    ]
    if spec.role.serves_grpc:
        ports.append(
            {
                "name": "grpc",
                "port": spec.grpc_port,
                "targetPort": "grpc",
                "protocol": "TCP",
                "appProtocol": "grpc",
            }
        )
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": object_meta(meta, meta.name, labels(spec, meta)),
        "spec": {"selector": selector_labels(spec, meta), "ports": ports},
    }


def _network_policy(spec: CommerceServiceSpec, meta: ResourceMeta) -> dict[str, Any]:
    ingress: list[dict[str, Any]] = [{"ports": [{"protocol": "TCP", "port": spec.http_port}]}]
    if spec.role.serves_grpc:
        ingress.append(
            {
                "from": [{"podSelector": {"matchLabels": {calls_label(meta.name): "true"}}}],
                "ports": [{"protocol": "TCP", "port": spec.grpc_port}],
            }
        )
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": object_meta(meta, meta.name, labels(spec, meta)),
        "spec": {
            "podSelector": {"matchLabels": selector_labels(spec, meta)},
            "policyTypes": ["Ingress"],
            "ingress": ingress,
        },
    }


def _autoscaler(
    spec: CommerceServiceSpec, meta: ResourceMeta, scaling: Autoscaling
) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": object_meta(meta, meta.name, labels(spec, meta)),
        "spec": {
            # The HPA scales the CommerceService (its scale subresource), not the Deployment:
            # spec.replicas stays the one source the operator carries to the Deployment.
            "scaleTargetRef": {
                "apiVersion": API_VERSION,
                "kind": meta.kind,
                "name": meta.name,
            },
            "minReplicas": scaling.min_replicas,
            "maxReplicas": scaling.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {
                            "type": "Utilization",
                            "averageUtilization": scaling.target_cpu_percent,
                        },
                    },
                }
            ],
        },
    }


def _disruption_budget(
    spec: CommerceServiceSpec, meta: ResourceMeta, budget: Mapping[str, int | str]
) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": object_meta(meta, meta.name, labels(spec, meta)),
        "spec": {**budget, "selector": {"matchLabels": selector_labels(spec, meta)}},
    }
