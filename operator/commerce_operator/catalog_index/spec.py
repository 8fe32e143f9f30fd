"""A CatalogIndex's spec as typed values (the API server has applied the CRD's defaults)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

RETAIN = "Retain"
DELETE = "Delete"


@dataclass(frozen=True)
class SyncWorker:
    image: str
    replicas: int = 1
    resources: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class CatalogIndexSpec:
    alias: str
    mappings: Mapping[str, Any]
    document_store_secret: str  # MongoDB: key uri
    product_database_secret: str  # the product service's MariaDB: host, port, database, ...
    broker_secret: str  # Kafka: key bootstrapServers
    # The OutboxConnector relaying the product outbox, and the aggregate type of the events.
    events_connector: str
    worker: SyncWorker
    events_aggregate: str = "product"
    settings: Mapping[str, Any] = field(default_factory=dict)
    mongo_database: str = "commerce_catalog"
    previous_versions: int = 1
    deletion_policy: str = RETAIN  # Retain | Delete

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> CatalogIndexSpec:
        source = spec["source"]
        worker = spec["syncWorker"]
        return cls(
            alias=str(spec["alias"]),
            mappings=dict(spec["mappings"]),
            document_store_secret=str(source["documentStore"]["secretName"]),
            product_database_secret=str(source["productDatabase"]["secretName"]),
            broker_secret=str(source["broker"]["secretName"]),
            events_connector=str(source["productEvents"]["outboxConnector"]),
            events_aggregate=str(source["productEvents"].get("aggregateType", "product")),
            worker=SyncWorker(
                image=str(worker["image"]),
                replicas=int(worker.get("replicas", 1)),
                resources=worker.get("resources"),
            ),
            settings=dict(spec.get("settings") or {}),
            mongo_database=str(source.get("database", "commerce_catalog")),
            previous_versions=int((spec.get("retention") or {}).get("previousVersions", 1)),
            deletion_policy=str(spec.get("deletionPolicy", RETAIN)),
        )
