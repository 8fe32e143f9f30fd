from __future__ import annotations

from pathlib import Path

import pytest

from commerce_devstack.components import ALL
from commerce_devstack.orchestrator import Stack, check_distinct_ports, select, with_dependents
from commerce_devstack.settings import StackSettings


@pytest.mark.parametrize(
    ("only", "expected"),
    [
        (None, [cls.name for cls in ALL]),
        (["ferretdb"], ["ferretdb"]),
        (["connect"], ["kafka", "connect"]),
        (["kube-controller-manager"], ["etcd", "kube-apiserver", "kube-controller-manager"]),
        (["connect", "mariadb"], ["mariadb", "kafka", "connect"]),
        (
            ["kubelet"],
            ["etcd", "kube-apiserver", "containerd", "kubelet"],
        ),
    ],
)
def test_dependencies_come_along_in_start_order(
    only: list[str] | None, expected: list[str]
) -> None:
    assert [cls.name for cls in select(only)] == expected


def test_unknown_component_is_a_clear_error() -> None:
    with pytest.raises(SystemExit, match="unknown component"):
        select(["kafak"])


def test_dependencies_are_listed_before_their_dependents() -> None:
    order = [cls.name for cls in ALL]
    for cls in ALL:
        for dep in cls.depends_on:
            assert order.index(dep) < order.index(cls.name)


def test_every_default_port_is_distinct(tmp_path: Path) -> None:
    stack = Stack(StackSettings(state_dir=tmp_path))
    ports = [p for c in stack.components for p in c.ports().values()]
    assert len(ports) == len(set(ports))


def test_two_components_on_one_port_is_refused(tmp_path: Path) -> None:
    settings = StackSettings(state_dir=tmp_path, etcd_port=9092)
    with pytest.raises(SystemExit, match="COMMERCE_STACK_ETCD_PORT and COMMERCE_STACK_KAFKA_PORT"):
        check_distinct_ports(settings)


@pytest.mark.parametrize(
    ("only", "expected"),
    [
        (
            ["etcd"],
            [
                "etcd",
                "kube-apiserver",
                "kube-controller-manager",
                "kube-scheduler",
                "kubelet",
                "kube-proxy",
                "cluster-addons",
            ],
        ),
        (["containerd"], ["containerd", "kubelet", "cluster-addons"]),
        (["kafka"], ["kafka", "connect"]),
        (["connect"], ["connect"]),
        (["mariadb", "ferretdb"], ["mariadb", "ferretdb"]),
    ],
)
def test_down_only_takes_the_dependents_along(only: list[str], expected: list[str]) -> None:
    assert [cls.name for cls in with_dependents(only)] == expected
