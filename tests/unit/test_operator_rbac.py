"""Every watch and every request the operator makes is granted by the chart's RBAC
(charts/commerce-operator/templates/_rules.tpl): the watches are read from the registry of an
operator run, the requests from the kinds' flows on the in-memory cluster, which counts each
by RBAC verb and resource. A verb the chart lacks fails here, before a pod would meet a 403."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Any

import yaml
from kubernetes import client

from commerce_devstack.kube_shop.operator_rbac import chart_rules
from commerce_devstack.kube_shop.settings import CHART_DIR
from commerce_operator.main import OperatorOptions, build
from commerce_operator.resource import RESTART_ANNOTATION
from commerce_operator.settings import CredentialsMode
from tests.unit import test_operator_catalog_index_flow as catalog_flow
from tests.unit import test_operator_commerce_service_flow as service_flow
from tests.unit import test_operator_outbox_flow as outbox_flow
from tests.unit.operator_fakes import Call

Need = tuple[str, str, str]  # group, resource, verb


def missing(needs: Iterable[Need], rules: list[dict[str, Any]]) -> set[Need]:
    granted = {
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    return set(needs) - granted


def watched() -> set[Need]:
    """Kopf lists and watches every resource a handler or an index of the run names; the
    deletion handlers patch their resources (Kopf's finalizer and progress)."""
    environ = {
        "OPERATOR_KAFKA_BOOTSTRAP": "kafka:9092",
        "OPERATOR_CONNECT_URL": "http://connect:8083",
        "OPERATOR_ELASTICSEARCH_URL": "http://es:9200",
    }
    configuration = client.Configuration()
    configuration.host = "https://127.0.0.1:1"
    registry = build(
        OperatorOptions(standalone=True), client.ApiClient(configuration), "me", 1, environ
    ).registry
    needs: set[Need] = set()
    handlers = [*registry._watching.get_all_handlers(), *registry._indexing.get_all_handlers()]
    for handler in handlers:
        selector = handler.selector
        assert selector is not None
        plural = str(selector.plural or selector.any_name)
        needs |= {(str(selector.group), plural, "list"), (str(selector.group), plural, "watch")}
    for deletion in registry._changing.get_all_handlers():
        assert deletion.selector is not None
        plural = str(deletion.selector.plural or deletion.selector.any_name)
        needs.add((str(deletion.selector.group), plural, "patch"))
    return needs


def _needs(calls: Iterable[Call]) -> set[Need]:
    return {(c.group, c.resource, c.verb) for c in calls}


async def requested() -> set[Need]:
    """What the three kinds' flows ask the API server for, in the unit tests' scenarios."""
    calls: list[Call] = []

    shop = service_flow.Shop()
    shop.cluster.lagging = True  # the driver's re-read when the watch is behind
    shop.secret("order-db", service_flow.DB)
    spec = {"role": "user", "autoscaling": {"maxReplicas": 2}, "podDisruptionBudget": {
        "minAvailable": 1}}  # fmt: skip
    shop.service("users", spec)
    shop.cluster.catch_up()
    await shop.reconcile("users")
    await shop.reconcile("users")
    shop.service("users", {"role": "user"})
    shop.cluster.catch_up()
    await shop.reconcile("users")
    calls += shop.cluster.calls

    outbox = outbox_flow.Outbox(CredentialsMode.LITERAL)
    outbox.heartbeat(1)
    await outbox.reconcile()
    outbox.resource({RESTART_ANNOTATION: "true"})
    await outbox.reconcile()
    outbox.now += timedelta(minutes=5)
    await outbox.reconcile()
    await outbox.driver.finalize(outbox.body())
    calls += outbox.cluster.calls

    catalog = catalog_flow.Catalog()
    await catalog.reconcile()
    await catalog.driver.finalize(catalog.cluster.find("CatalogIndex", "shop", "products") or {})
    calls += catalog.cluster.calls
    return _needs(calls)


async def test_the_chart_grants_every_watch_and_request_of_the_operator() -> None:
    needs = watched() | await requested()
    # The scenarios reach what matters: status, Events, owned objects, Secrets, deletions.
    assert {
        ("commerce.io", "outboxconnectors/status", "patch"),
        ("", "events", "create"),
        ("apps", "deployments", "create"),
        ("autoscaling", "horizontalpodautoscalers", "delete"),
        ("", "secrets", "watch"),
        ("", "secrets", "get"),
        ("commerce.io", "commerceservices", "get"),
        ("commerce.io", "outboxconnectors", "patch"),
    } <= needs
    assert missing(needs, chart_rules()) == set()


async def test_a_verb_the_chart_lacks_is_found() -> None:
    rules = chart_rules()
    for rule in rules:
        if rule["resources"] == ["secrets"]:
            rule["verbs"] = [v for v in rule["verbs"] if v != "watch"]
    assert missing(watched() | await requested(), rules) == {("", "secrets", "watch")}


def test_the_work_queues_read_the_peering_objects_kopf_keeps() -> None:
    """The gate (peering_gate.py) gets the peering objects: Kopf's own role grants it."""
    lines = (CHART_DIR / "templates" / "rbac.yaml").read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if "apiGroups: [kopf.dev]" in line)
    verbs = next(line for line in lines[at:] if "verbs:" in line)
    assert "get" in yaml.safe_load(verbs.strip().removeprefix("- "))["verbs"]
