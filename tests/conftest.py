"""Suite-wide rule: under CI a skipped test is a failure, so missing infrastructure never hides."""

from __future__ import annotations

import os

import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if os.environ.get("CI") and report.skipped:
        report.outcome = "failed"
        report.longrepr = f"skipped under CI={os.environ['CI']}, which counts as a failure: " + str(
            report.longrepr
        )
    return None
