"""The version constants match the recipes that actually decide what gets built."""

from __future__ import annotations

import re

from commerce_devstack import versions
from commerce_devstack.settings import REPO_ROOT

GO = REPO_ROOT / "devstack" / "go"


def test_kubernetes_and_etcd_match_the_wrapper_module() -> None:
    gomod = (GO / "kube" / "go.mod").read_text()
    assert re.search(rf"k8s.io/kubernetes {re.escape(versions.KUBERNETES)}\b", gomod)
    assert re.search(rf"go.etcd.io/etcd/server/v3 {re.escape(versions.ETCD)}\b", gomod)
    staging = versions.KUBERNETES.replace("v1.", "v0.")
    replaced = re.findall(r"(k8s.io/[\w-]+) => (k8s.io/[\w-]+) (v[\d.]+)", gomod)
    assert replaced
    assert all(left == right and version == staging for left, right, version in replaced)


def test_ferretdb_matches_its_module() -> None:
    gomod = (GO / "ferretdb" / "go.mod").read_text()
    assert f"github.com/FerretDB/FerretDB {versions.FERRETDB}" in gomod


def test_kafka_matches_the_pom_and_debezium_pairing() -> None:
    pom = (REPO_ROOT / "devstack" / "maven" / "kafka" / "pom.xml").read_text()
    assert f"<kafka.version>{versions.KAFKA}</kafka.version>" in pom
    # Debezium 3.3 to 3.5 are built against Kafka 4.1.
    assert versions.DEBEZIUM.startswith(("3.3.", "3.4.", "3.5."))
    assert versions.KAFKA.startswith("4.1.")
