"""Listing the node's cgroups while the kubelet and containerd remove them."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from commerce_devstack.node.network import cgroups_under


def test_cgroups_are_listed_deepest_first(tmp_path: Path) -> None:
    for path in ("kubepods/burstable/pod1/c1", "kubepods/besteffort", "other"):
        (tmp_path / path).mkdir(parents=True)

    found = [p.relative_to(tmp_path).as_posix() for p in cgroups_under(tmp_path)]

    assert found[0] == "kubepods/burstable/pod1/c1"
    assert sorted(found) == sorted(
        [
            "kubepods",
            "kubepods/burstable",
            "kubepods/burstable/pod1",
            "kubepods/burstable/pod1/c1",
            "kubepods/besteffort",
            "other",
        ]
    )
    assert found.index("kubepods/burstable/pod1") < found.index("kubepods/burstable")


def test_a_cgroup_removed_during_the_listing_is_not_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "pod1/container1").mkdir(parents=True)
    (tmp_path / "pod2").mkdir()
    real_scandir = os.scandir

    def scandir_after_its_owner_removed_pod1(path: str | int) -> Iterator[os.DirEntry[str]]:
        if not isinstance(path, int) and Path(path).name == "pod1":
            shutil.rmtree(path)  # containerd got there first
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir_after_its_owner_removed_pod1)

    found = {p.relative_to(tmp_path).as_posix() for p in cgroups_under(tmp_path)}

    assert "pod2" in found
    assert "pod1/container1" not in found
