from __future__ import annotations

from pathlib import Path

import pytest

from commerce_devstack.settings import REPO_ROOT, StackSettings


def test_defaults_live_in_the_repository_state_folder_and_user_cache() -> None:
    settings = StackSettings()
    assert settings.state_dir == REPO_ROOT / ".stack"
    assert settings.endpoints_file == REPO_ROOT / ".stack" / "endpoints.json"
    assert not settings.cache_dir.is_relative_to(REPO_ROOT)


def test_ports_and_folders_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("COMMERCE_STACK_KAFKA_PORT", "19092")
    monkeypatch.setenv("COMMERCE_STACK_STATE_DIR", str(tmp_path))
    settings = StackSettings()
    assert settings.kafka_port == 19092
    assert settings.log_dir == tmp_path / "logs"


def test_a_port_that_is_not_a_number_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMMERCE_STACK_KAFKA_PORT", "ninety")
    with pytest.raises(ValueError, match="kafka_port"):
        StackSettings()
