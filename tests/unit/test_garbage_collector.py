"""A serving process freezes what it started with and collects its young objects less often."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from commerce_services.runtime.garbage_collector import YOUNG_THRESHOLD, settle_for_serving


@pytest.fixture
def restored_collector() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


@pytest.mark.usefixtures("restored_collector")
def test_start_up_objects_are_frozen_and_young_passes_are_rarer() -> None:
    wiring = [object()]  # a container: tracked by the collector

    settle_for_serving()

    assert gc.get_threshold()[0] == YOUNG_THRESHOLD > 700
    assert gc.get_freeze_count() > 0
    assert not any(o is wiring for o in gc.get_objects())  # frozen: no pass walks it
