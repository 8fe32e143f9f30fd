"""A CommerceService's steps, run by the driver (`driver.py`), against the watched state:

1. bindings: what the bindings name, as their targets publish it (a Secret's keys and
   resourceVersion, an OutboxConnector's `status.eventTopics`, a CatalogIndex's
   `status.alias`, a peer's role and gRPC port); a target missing or incomplete is retried and
   no object is touched, so the running Deployment keeps its last good configuration;
2. objects: the ServiceAccount, ConfigMap, Deployment, Service and optional HPA and PDB
   (`desired.py`), each applied only when it is not up to date (`owned_objects.py`); an HPA or
   PDB the spec no longer asks for is deleted;
3. rollout: whether the Deployment runs the current pod template on every wanted replica.

Nothing here reads the API server: every object comes from the watches, and the watch events
of the owned objects, the bound Secrets and the binding targets bring the next pass. The
CommerceService's spec is never written, only its status.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubernetes import client

from commerce_operator.bindings import SecretInfo
from commerce_operator.cache import WatchedState
from commerce_operator.commerce_service.desired import (
    CONFIG_HASH_ANNOTATION,
    ClusterView,
    PeerService,
    bindings_result,
    desired_state,
    rollout_result,
    status_fields,
)
from commerce_operator.commerce_service.spec import CommerceServiceSpec
from commerce_operator.conditions import Outcome, StepResult
from commerce_operator.driver import InvalidSpec, Run
from commerce_operator.kube import (
    CATALOG_INDEX,
    COMMERCE_SERVICE,
    CONFIG_MAP,
    DEPLOYMENT,
    HORIZONTAL_POD_AUTOSCALER,
    NETWORK_POLICY,
    OUTBOX_CONNECTOR,
    POD_DISRUPTION_BUDGET,
    SECRET,
    SERVICE,
    SERVICE_ACCOUNT,
    Kind,
)
from commerce_operator.owned_objects import OwnedObjects, apply_error, controlled_by

log = logging.getLogger(__name__)

# Built only when the spec asks for them: deleted when it stops asking.
OPTIONAL_KINDS = (HORIZONTAL_POD_AUTOSCALER, POD_DISRUPTION_BUDGET)
OWNED_KINDS = (
    SERVICE_ACCOUNT,
    CONFIG_MAP,
    DEPLOYMENT,
    SERVICE,
    NETWORK_POLICY,
    *OPTIONAL_KINDS,
)

STATUS_FIELDS = (
    "replicas",
    "readyReplicas",
    "updatedReplicas",
    "selector",
    "configHash",
    "endpoints",
)


@dataclass
class CommerceServiceFlow:
    state: WatchedState
    owned: OwnedObjects
    # The operator's OPERATOR_ELASTICSEARCH_URL, for the roles that use Elasticsearch.
    elasticsearch_url: str | None
    observe_every: float
    kind: Kind = COMMERCE_SERVICE
    owns: tuple[Kind, ...] = OWNED_KINDS
    status_fields: tuple[str, ...] = STATUS_FIELDS
    cleans_up: bool = False
    temporary: tuple[type[Exception], ...] = ()

    def parse(self, body: Mapping[str, Any]) -> CommerceServiceSpec:
        try:
            return CommerceServiceSpec.from_dict(body["spec"])
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidSpec(f"spec cannot be read: {exc!r}") from exc

    def binds(self, body: Mapping[str, Any]) -> list[tuple[Kind, str]]:
        """The objects this resource's bindings name (their events reconcile it)."""
        try:
            bindings = CommerceServiceSpec.from_dict(body["spec"]).bindings
        except (KeyError, TypeError, ValueError):
            return []
        targets: list[tuple[Kind, str]] = [(SECRET, name) for name in bindings.secrets()]
        targets += [(OUTBOX_CONNECTOR, e.outbox_connector) for e in bindings.events]
        targets += [(COMMERCE_SERVICE, name) for name in bindings.services]
        if bindings.catalog_index is not None:
            targets.append((CATALOG_INDEX, bindings.catalog_index))
        return targets

    def published(self, body: Mapping[str, Any]) -> object:
        """What a peer's services binding reads of this resource."""
        spec = body.get("spec") or {}
        return (spec.get("role"), (spec.get("ports") or {}).get("grpc"))

    def needs_finalizer(self, body: Mapping[str, Any]) -> bool:
        return False  # the garbage collector deletes the owned objects with the resource

    async def finalize(self, body: Mapping[str, Any]) -> list[str]:
        return []

    def forget(self, namespace: str, name: str) -> None:
        self.owned.forget(namespace, [name])

    def while_paused(self, run: Run) -> None:
        deployment = self._deployment(run)
        observed = (deployment or {}).get("status") or {}
        for field in ("replicas", "readyReplicas", "updatedReplicas"):
            run.fields[field] = observed.get(field, 0)

    async def steps(self, run: Run, spec: CommerceServiceSpec) -> Sequence[StepResult]:
        meta = run.meta
        state = desired_state(
            spec,
            meta,
            self.cluster_view(spec, meta.namespace),
            elasticsearch_url=self.elasticsearch_url,
        )
        results = [bindings_result(state)]
        deployment = self._deployment(run)
        if state.objects:
            try:
                stored = await self.owned.ensure(state.objects)
                wanted = {obj["kind"] for obj in state.objects}
                unwanted = [kind for kind in OPTIONAL_KINDS if kind.kind not in wanted]
                pruned = await self.owned.prune(unwanted, meta.namespace, meta.name, meta.uid)
            except client.ApiException as exc:
                results.append(apply_error("objects", exc))
            else:
                results.append(StepResult("objects", Outcome.DONE))
                deployment = stored.get(f"Deployment/{meta.name}", deployment)
                for name in pruned:
                    await run.announce("Pruned", f"deleted {name}, no longer in the spec")
                results.append(rollout_result(spec, deployment))
        previous_hash = run.written.get("configHash")
        run.fields.update(status_fields(spec, meta, state, deployment))
        template = ((deployment or {}).get("spec") or {}).get("template") or {}
        # The hash on the pod template that runs, not of a configuration not applied.
        running_hash = (
            (template.get("metadata") or {}).get("annotations", {}).get(CONFIG_HASH_ANNOTATION)
        )
        run.fields["configHash"] = running_hash
        if previous_hash and running_hash and previous_hash != running_hash:
            await run.announce(
                "ConfigChanged", f"configuration changed ({previous_hash} -> {running_hash})"
            )
        return results

    def cluster_view(self, spec: CommerceServiceSpec, namespace: str) -> ClusterView:
        bindings = spec.bindings
        secrets: dict[str, SecretInfo] = {}
        for name in bindings.secrets():
            found = self.state.secret(namespace, name)
            if found is not None:
                secrets[name] = found
        outbox_topics: dict[str, Mapping[str, str]] = {}
        for name in {e.outbox_connector for e in bindings.events}:
            connector = self.state.get(OUTBOX_CONNECTOR, namespace, name)
            topics = ((connector or {}).get("status") or {}).get("eventTopics")
            if isinstance(topics, Mapping):
                outbox_topics[name] = {str(k): str(v) for k, v in topics.items()}
        services: dict[str, PeerService] = {}
        for name in set(bindings.services):
            peer = self.state.get(COMMERCE_SERVICE, namespace, name)
            if peer is not None:
                peer_spec = peer.get("spec") or {}
                grpc_port = int((peer_spec.get("ports") or {}).get("grpc", 50051))
                services[name] = PeerService(str(peer_spec.get("role")), grpc_port)
        aliases: dict[str, str] = {}
        if bindings.catalog_index is not None:
            index = self.state.get(CATALOG_INDEX, namespace, bindings.catalog_index)
            alias = ((index or {}).get("status") or {}).get("alias")
            if alias:
                aliases[bindings.catalog_index] = str(alias)
        return ClusterView(secrets, outbox_topics, services, aliases)

    def _deployment(self, run: Run) -> dict[str, Any] | None:
        """The owned Deployment as watched, None when absent or not this resource's."""
        found = self.state.get(DEPLOYMENT, run.meta.namespace, run.meta.name)
        return found if found is not None and controlled_by(found, run.meta.uid) else None
