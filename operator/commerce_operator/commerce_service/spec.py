"""A CommerceService's spec as typed values (the API server has applied the CRD's defaults),
and the facts about each role: its entry point, its env prefix, whether it serves gRPC."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Role:
    name: str
    command: tuple[str, ...]
    serves_grpc: bool
    # The prefix of the service's settings class (ORDER_DB_HOST, SEARCH_ALIAS, ...).
    env_prefix: str
    # The setting a catalogIndex binding fills: the search package's own is SEARCH_ALIAS.
    alias_setting: str = "SEARCH_ALIAS"
    # Talks to Elasticsearch: gets <prefix>_ELASTICSEARCH_URL from the operator's
    # OPERATOR_ELASTICSEARCH_URL (one address per cluster, like Kafka's for OutboxConnectors).
    uses_elasticsearch: bool = False
    # Applies the role's database migrations (reads only <prefix>_DB_*): the Deployment runs it
    # as an init container, so a replica never serves an older schema than its code expects.
    migrate_command: tuple[str, ...] | None = None


ROLES: Mapping[str, Role] = {
    role.name: role
    for role in (
        Role("user", ("commerce-user", "serve"), serves_grpc=True, env_prefix="USER"),
        Role(
            "product",
            ("commerce-product", "serve"),
            serves_grpc=True,
            env_prefix="PRODUCT",
            migrate_command=("commerce-product", "migrate"),
        ),
        Role(
            "order",
            ("commerce-order", "serve"),
            serves_grpc=False,
            env_prefix="ORDER",
            migrate_command=("commerce-order", "migrate"),
        ),
        Role(
            "payment",
            ("commerce-payment", "serve"),
            serves_grpc=False,
            env_prefix="PAYMENT",
            migrate_command=("commerce-payment", "migrate"),
        ),
        # The catalog sync worker of the search package (commerce_services.search.main); a
        # CatalogIndex runs its own, this role is for a worker outside of one.
        Role(
            "catalog-sync",
            ("commerce-search", "run"),
            serves_grpc=False,
            env_prefix="SEARCH",
            alias_setting="ALIAS",
            uses_elasticsearch=True,
        ),
        # The search API (GET /api/v1/search), answering from MongoDB while Elasticsearch is away.
        Role(
            "search",
            ("commerce-search", "serve"),
            serves_grpc=False,
            env_prefix="SEARCH",
            alias_setting="ALIAS",
            uses_elasticsearch=True,
        ),
    )
}


@dataclass(frozen=True)
class EventBinding:
    outbox_connector: str
    aggregate_type: str


@dataclass(frozen=True)
class Bindings:
    database: str | None = None  # Secret names
    broker: str | None = None
    document_store: str | None = None
    # The database account the `migrate` init container uses (schema changes); the service
    # itself runs under `database`'s, which has data privileges only.
    migration_database: str | None = None
    # The user service's token signing keys, and the first staff account.
    signing_keys: str | None = None
    staff_bootstrap: str | None = None
    # The certificate, key and CA of the service's gRPC identity (mTLS).
    grpc_identity: str | None = None
    events: tuple[EventBinding, ...] = ()
    services: tuple[str, ...] = ()  # CommerceService names
    catalog_index: str | None = None  # CatalogIndex name

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Bindings:
        def secret(key: str) -> str | None:
            value = raw.get(key)
            return None if value is None else str(value["secretName"])

        return cls(
            database=secret("database"),
            broker=secret("broker"),
            document_store=secret("documentStore"),
            migration_database=secret("migrationDatabase"),
            signing_keys=secret("signingKeys"),
            staff_bootstrap=secret("staffBootstrap"),
            grpc_identity=secret("grpcIdentity"),
            events=tuple(
                EventBinding(e["outboxConnector"], e["aggregateType"])
                for e in raw.get("events", ())
            ),
            services=tuple(raw.get("services", ())),
            catalog_index=raw.get("catalogIndex"),
        )

    def secrets(self) -> set[str]:
        """Every Secret the bindings name."""
        named = (
            self.database,
            self.broker,
            self.document_store,
            self.migration_database,
            self.signing_keys,
            self.staff_bootstrap,
            self.grpc_identity,
        )
        return {name for name in named if name is not None}


@dataclass(frozen=True)
class Autoscaling:
    min_replicas: int
    max_replicas: int
    target_cpu_percent: int


@dataclass(frozen=True)
class CommerceServiceSpec:
    role: Role
    image: str
    image_pull_policy: str = "IfNotPresent"
    replicas: int = 1
    resources: Mapping[str, Any] | None = None
    env: tuple[tuple[str, str], ...] = ()
    http_port: int = 8080
    grpc_port: int = 50051
    bindings: Bindings = Bindings()
    autoscaling: Autoscaling | None = None
    # minAvailable or maxUnavailable, as in a PodDisruptionBudget's spec.
    disruption_budget: Mapping[str, int | str] | None = None

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> CommerceServiceSpec:
        ports = spec.get("ports", {})
        scaling = spec.get("autoscaling")
        return cls(
            role=ROLES[spec["role"]],
            image=spec["image"],
            image_pull_policy=spec.get("imagePullPolicy", "IfNotPresent"),
            replicas=int(spec.get("replicas", 1)),
            resources=spec.get("resources"),
            env=tuple((e["name"], e.get("value", "")) for e in spec.get("env", ())),
            http_port=int(ports.get("http", 8080)),
            grpc_port=int(ports.get("grpc", 50051)),
            bindings=Bindings.from_dict(spec.get("bindings", {})),
            autoscaling=None
            if scaling is None
            else Autoscaling(
                min_replicas=int(scaling.get("minReplicas", 1)),
                max_replicas=int(scaling["maxReplicas"]),
                target_cpu_percent=int(scaling.get("targetCPUUtilizationPercentage", 80)),
            ),
            disruption_budget=spec.get("podDisruptionBudget"),
        )
