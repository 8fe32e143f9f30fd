from __future__ import annotations

from pathlib import Path

import pytest

from commerce_devstack.install import cache


def test_builds_once_then_reuses(tmp_path: Path) -> None:
    calls: list[Path] = []

    def build(tmp: Path) -> None:
        calls.append(tmp)
        (tmp / "artifact").write_text("v1")

    entry = tmp_path / "thing"
    assert cache.ensure(entry, "k1", build) == entry
    assert cache.ensure(entry, "k1", build) == entry
    assert len(calls) == 1
    assert (entry / "artifact").read_text() == "v1"


def test_changed_key_rebuilds(tmp_path: Path) -> None:
    versions = iter(["v1", "v2"])

    def build(tmp: Path) -> None:
        (tmp / "artifact").write_text(next(versions))

    entry = tmp_path / "thing"
    cache.ensure(entry, "k1", build)
    cache.ensure(entry, "k2", build)
    assert (entry / "artifact").read_text() == "v2"


def test_interrupted_build_is_never_used_and_is_redone(tmp_path: Path) -> None:
    def broken(tmp: Path) -> None:
        (tmp / "half").write_text("partial")
        raise RuntimeError("network dropped")

    entry = tmp_path / "thing"
    with pytest.raises(RuntimeError):
        cache.ensure(entry, "k1", broken)
    assert not entry.exists()

    def whole(tmp: Path) -> None:
        (tmp / "whole").write_text("ok")

    cache.ensure(entry, "k1", whole)
    assert sorted(p.name for p in entry.iterdir()) == [cache.STAMP, "whole"]


def test_notifies_only_when_there_is_work(tmp_path: Path) -> None:
    said: list[str] = []
    entry = tmp_path / "thing"
    cache.ensure(entry, "k", lambda tmp: None, "downloading thing", said.append)
    cache.ensure(entry, "k", lambda tmp: None, "downloading thing", said.append)
    assert said == ["downloading thing"]


def test_content_key_follows_file_contents(tmp_path: Path) -> None:
    recipe = tmp_path / "go.mod"
    recipe.write_text("module a")
    before = cache.content_key("v1", recipe)
    assert cache.content_key("v1", recipe) == before
    recipe.write_text("module b")
    assert cache.content_key("v1", recipe) != before
    assert cache.content_key("v2", recipe) != cache.content_key("v1", recipe)
