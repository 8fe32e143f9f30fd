"""The operator runtime without a server: options, Kopf settings (peering, bookkeeping), the
registry of one run (watches, indices, deletion handlers, no timers), the one retry backoff,
metrics, API error mapping."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, cast

import kopf
import pytest
from kubernetes import client
from prometheus_client import REGISTRY

from commerce_operator import kube, metrics
from commerce_operator.backoff import Backoff
from commerce_operator.conditions import Outcome
from commerce_operator.driver import INVALID_SPEC
from commerce_operator.main import Operator, OperatorOptions, build, build_settings, parse_options
from commerce_operator.owned_objects import KUBERNETES_API_ERROR, apply_error
from commerce_operator.resource import controlling_owner
from commerce_operator.unconfigured import Unconfigured
from commerce_operator.workqueue import AlwaysOpen


def test_options_default_to_cluster_wide_peered_and_take_repeated_namespaces(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OPERATOR_NAMESPACES", raising=False)
    monkeypatch.delenv("OPERATOR_STANDALONE", raising=False)
    monkeypatch.delenv("OPERATOR_METRICS_PORT", raising=False)
    monkeypatch.delenv("OPERATOR_HEALTH_PORT", raising=False)
    monkeypatch.delenv("OPERATOR_API_THREADS", raising=False)
    monkeypatch.delenv("OPERATOR_WORKERS", raising=False)
    options = parse_options([])
    assert options.namespaces == ()
    assert (options.api_threads, options.workers) == (32, 16)
    assert not options.standalone
    assert (options.liveness_port, options.metrics_port) == (8081, 8080)
    options = parse_options(
        ["--namespace", "a", "--namespace", "b", "--namespace", "a", "--standalone"]
    )
    assert options.namespaces == ("a", "b")
    assert options.standalone
    assert parse_options(["--metrics-port", "0"]).metrics_port is None
    assert parse_options(["--all-namespaces"]).namespaces == ()
    with pytest.raises(SystemExit):
        parse_options(["--all-namespaces", "--namespace", "a"])
    with pytest.raises(SystemExit):
        parse_options(["--api-threads", "0"])
    with pytest.raises(SystemExit):
        parse_options(["--workers", "0"])


def test_options_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPERATOR_NAMESPACES", "shop,staging")
    monkeypatch.setenv("OPERATOR_RESYNC_SECONDS", "15")
    monkeypatch.setenv("OPERATOR_METRICS_PORT", "9100")
    monkeypatch.setenv("OPERATOR_HEALTH_PORT", "9101")
    monkeypatch.setenv("OPERATOR_API_THREADS", "64")
    monkeypatch.setenv("OPERATOR_WORKERS", "4")
    options = parse_options([])
    assert (options.api_threads, options.workers) == (64, 4)
    assert options.namespaces == ("shop", "staging")
    assert options.resync_seconds == 15
    assert (options.metrics_port, options.liveness_port) == (9100, 9101)


def test_peering_is_mandatory_unless_standalone() -> None:
    peered = build_settings(OperatorOptions(), 1_700_000_000_000)
    assert peered.peering.mandatory
    assert not peered.peering.standalone
    assert peered.peering.priority == 1_700_000_000_000
    standalone = build_settings(OperatorOptions(standalone=True), 1)
    assert standalone.peering.standalone
    assert not standalone.peering.mandatory


def test_kopf_bookkeeping_is_under_our_group_and_posts_no_log_events() -> None:
    settings = build_settings(OperatorOptions(), 1)
    assert settings.persistence.finalizer == "operator.commerce.io/finalizer"
    progress: Any = settings.persistence.progress_storage
    assert progress.prefix == "operator.commerce.io"
    assert not settings.posting.enabled


def _api() -> client.ApiClient:
    configuration = client.Configuration()
    configuration.host = "https://127.0.0.1:1"
    return client.ApiClient(configuration)


ENV = {
    "OPERATOR_KAFKA_BOOTSTRAP": "kafka:9092",
    "OPERATOR_CONNECT_URL": "http://connect:8083",
    "OPERATOR_ELASTICSEARCH_URL": "http://es:9200",
}


def _built(environ: dict[str, str], **options: Any) -> Operator:
    return build(OperatorOptions(**options), _api(), "me@host/1", 1, environ)


def test_the_registry_watches_and_indexes_without_timers_or_bookkeeping() -> None:
    registry = _built(ENV, standalone=True).registry
    watched = {str(h.id) for h in registry._watching.get_all_handlers()}
    indexed = {str(h.id) for h in registry._indexing.get_all_handlers()}
    kinds = ("commerceservices", "outboxconnectors", "catalogindexes")
    owned = (
        "deployments",
        "services",
        "configmaps",
        "serviceaccounts",
        "horizontalpodautoscalers",
        "poddisruptionbudgets",
        "networkpolicies",
    )
    assert {f"{p}-event" for p in (*kinds, *owned, "secrets")} == watched
    assert {*kinds, *(f"{k}_bindings" for k in kinds), *owned, "secrets"} == indexed
    # No timer or daemon: each would put Kopf's finalizer on every resource.
    assert not registry._spawning.get_all_handlers()
    # Only the kinds that own something outside Kubernetes have a deletion handler, and a
    # CatalogIndex only under deletionPolicy Delete.
    deletions = {str(h.id): h for h in registry._changing.get_all_handlers()}
    assert set(deletions) == {"outboxconnectors-delete", "catalogindexes-delete"}
    when = cast(Callable[..., bool], deletions["catalogindexes-delete"].when)
    assert when(body={"spec": {"deletionPolicy": "Delete"}}) is True
    assert when(body={"spec": {"deletionPolicy": "Retain"}}) is False
    assert registry._activities.get_all_handlers()  # login, startup, cleanup


def test_a_kind_whose_systems_are_not_configured_says_so_and_the_rest_runs() -> None:
    operator = _built({}, standalone=True)
    flows = {c.kind.kind: c.reconciler.flow for c in operator.controllers}
    assert isinstance(flows["OutboxConnector"], Unconfigured)
    assert "OPERATOR_KAFKA_BOOTSTRAP must be set" in flows["OutboxConnector"].problem
    assert isinstance(flows["CatalogIndex"], Unconfigured)
    assert not isinstance(flows["CommerceService"], Unconfigured)
    # A standalone operator has no peers to defer to; a peered one waits for its gate.
    assert isinstance(operator.gate, AlwaysOpen)
    assert not isinstance(_built(ENV).gate, AlwaysOpen)


def test_the_one_retry_backoff_doubles_and_is_capped() -> None:
    backoff = Backoff()
    assert [backoff.delay(n) for n in range(1, 8)] == [2, 4, 8, 16, 32, 60, 60]
    assert backoff.delay(10_000) == 60
    assert backoff.delay(0) == 2


def _sample(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_metrics_count_outcomes_durations_and_errors_per_kind() -> None:
    kind = "UnitTestKind"
    with metrics.observe(kind) as observation:
        observation.finish(Outcome.DONE)
    with metrics.observe(kind) as observation:
        observation.finish(Outcome.RETRYING, "BindingNotFound")
    with pytest.raises(RuntimeError), metrics.observe(kind):
        raise RuntimeError("boom")
    total = "commerce_operator_reconciles_total"
    assert _sample(total, {"kind": kind, "outcome": "done"}) == 1
    assert _sample(total, {"kind": kind, "outcome": "retrying"}) == 1
    assert _sample(total, {"kind": kind, "outcome": "error"}) == 1
    errors = "commerce_operator_reconcile_errors_total"
    assert _sample(errors, {"kind": kind, "reason": "BindingNotFound"}) == 1
    assert _sample(errors, {"kind": kind, "reason": "RuntimeError"}) == 1
    count = "commerce_operator_reconcile_duration_seconds_count"
    assert _sample(count, {"kind": kind}) == 3


@pytest.mark.parametrize(
    ("status", "outcome", "reason"),
    [
        (422, Outcome.STALLED, INVALID_SPEC),
        (400, Outcome.STALLED, INVALID_SPEC),
        (403, Outcome.RETRYING, KUBERNETES_API_ERROR),
        (409, Outcome.RETRYING, KUBERNETES_API_ERROR),
        (503, Outcome.RETRYING, KUBERNETES_API_ERROR),
    ],
)
def test_api_errors_are_stalled_only_when_the_server_refused_the_object(
    status: int, outcome: Outcome, reason: str
) -> None:
    exc = client.ApiException(status=status, reason="Reason")
    exc.body = json.dumps({"message": "spec.template: Invalid value"})
    result = apply_error("objects", exc)
    assert (result.outcome, result.reason) == (outcome, reason)
    assert result.message == "spec.template: Invalid value"
    exc.body = "not json"
    assert apply_error("objects", exc).message == f"{status} Reason"


def test_only_a_commerce_service_controller_owns_a_deployment() -> None:
    ref: dict[str, Any] = {"apiVersion": "commerce.io/v1alpha1", "kind": "CommerceService"}
    ref |= {"name": "a", "uid": "u1", "controller": True}
    assert controlling_owner({"metadata": {"ownerReferences": [ref]}}, "CommerceService") == {
        "name": "a",
        "uid": "u1",
    }
    for other in ({**ref, "controller": False}, {**ref, "apiVersion": "other.io/v1"}):
        assert (
            controlling_owner({"metadata": {"ownerReferences": [other]}}, "CommerceService") is None
        )
    assert controlling_owner({"metadata": {}}, "CommerceService") is None


def test_paths_of_core_grouped_and_custom_kinds() -> None:
    assert (
        kube.kind_of("v1", "ConfigMap").path("shop", "a") == "/api/v1/namespaces/shop/configmaps/a"
    )
    assert (
        kube.kind_of("apps/v1", "Deployment").path("shop")
        == "/apis/apps/v1/namespaces/shop/deployments"
    )
    assert kube.kind_of("commerce.io/v1alpha1", "CommerceService").path("s", "x") == (
        "/apis/commerce.io/v1alpha1/namespaces/s/commerceservices/x"
    )


@pytest.mark.parametrize(
    ("path", "resource"),
    [
        ("/api/v1/namespaces/shop/secrets/db", "secrets"),
        ("/apis/apps/v1/namespaces/shop/deployments/orders", "deployments"),
        (
            "/apis/commerce.io/v1alpha1/namespaces/s/outboxconnectors/o/status",
            "outboxconnectors/status",
        ),
        ("/api/v1/namespaces/shop/events", "events"),
        ("/apis/kopf.dev/v1/clusterkopfpeerings/commerce-operator", "clusterkopfpeerings"),
    ],
)
def test_requests_are_counted_by_resource(path: str, resource: str) -> None:
    assert kube._resource(path) == resource


def test_kopf_logs_in_with_the_same_credentials() -> None:
    configuration = client.Configuration()
    configuration.host = "https://api.example:6443"
    configuration.api_key = {"BearerToken": "t0ken"}
    configuration.api_key_prefix = {"BearerToken": "Bearer"}
    configuration.ssl_ca_cert = "/ca.crt"
    info = kube.connection_info(client.ApiClient(configuration))
    assert isinstance(info, kopf.ConnectionInfo)
    assert (info.server, info.scheme, info.token, info.ca_path) == (
        "https://api.example:6443",
        "Bearer",
        "t0ken",
        "/ca.crt",
    )
    assert not info.insecure
