"""When `up` may undo another state folder's node: only once nothing of it runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from commerce_devstack.node import leftovers
from commerce_devstack.node.network import NodeOwnedElsewhere
from commerce_devstack.settings import StackSettings


class Host:
    """The host as the decision sees it; records which state folders were restored."""

    def __init__(self, owner: str, live: list[int], pods: list[int], problems: list[str]):
        self.owner, self.live, self.pods, self.problems = owner, live, pods, problems
        self.restored: list[Path] = []

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        host = self

        class Network:
            def __init__(self, _settings: StackSettings, state_dir: Path) -> None:
                self.state_dir = state_dir

            def restore(self) -> list[str]:
                host.restored.append(self.state_dir)
                return host.problems

        monkeypatch.setattr(leftovers, "node_owner", lambda: self.owner)
        monkeypatch.setattr(leftovers, "processes_naming", lambda _state: self.live)
        monkeypatch.setattr(leftovers, "cgroup_processes", lambda: self.pods)
        monkeypatch.setattr(leftovers, "unmount_under", lambda *_roots: [])
        monkeypatch.setattr(leftovers, "HostNetwork", Network)


@pytest.fixture
def other(tmp_path: Path) -> Path:
    state = tmp_path / "other"
    (state / "node").mkdir(parents=True)
    (state / "node" / "host.json").write_text("{}")
    return state


@pytest.mark.parametrize(
    ("live", "pods", "restored"),
    [
        ([], [], True),  # the other session ended without `make down`
        ([4242], [], False),  # one of its servers still runs
        ([], [4243], False),  # one of its pods still runs
    ],
)
def test_another_folders_node_is_undone_only_when_nothing_of_it_runs(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    other: Path,
    live: list[int],
    pods: list[int],
    restored: bool,
) -> None:
    host = Host(str(other), live, pods, [])
    host.install(monkeypatch)
    leftovers.release_abandoned_node(StackSettings(state_dir=tmp_path / "mine"))
    assert host.restored == ([other] if restored else [])


def test_its_own_node_is_never_undone(monkeypatch: pytest.MonkeyPatch, other: Path) -> None:
    host = Host(str(other), [], [], [])
    host.install(monkeypatch)
    leftovers.release_abandoned_node(StackSettings(state_dir=other))
    assert host.restored == []


def test_a_node_that_cannot_be_undone_stops_up(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, other: Path
) -> None:
    Host(str(other), [], [], ["bridge cni0 could not be deleted"]).install(monkeypatch)
    with pytest.raises(NodeOwnedElsewhere) as refused:
        leftovers.release_abandoned_node(StackSettings(state_dir=tmp_path / "mine"))
    assert "cni0" in refused.value.output
