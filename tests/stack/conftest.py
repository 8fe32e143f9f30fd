"""Fixtures for tests against the real servers of the local stack.

There is no skip here: when the stack is not up, or a component does not answer, the test
fails with a message that says what to run. `make test` brings the stack up first.
"""

from __future__ import annotations

import uuid

import pytest

from commerce_devstack import endpoints
from commerce_devstack.endpoints import Endpoints, StackNotRunning


@pytest.fixture(scope="session")
def stack() -> Endpoints:
    try:
        return endpoints.load()
    except StackNotRunning as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def unique() -> str:
    """A short random suffix so tests never collide with earlier runs on the same stack."""
    return uuid.uuid4().hex[:8]
