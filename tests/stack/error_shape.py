"""The one error shape every HTTP API answers a failure with, checked in one place."""

from __future__ import annotations

from typing import Any

import httpx


def api_error(response: httpx.Response) -> dict[str, Any]:
    """The `error` object of a failure response, after checking its shape and that no stack
    trace leaked."""
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert "Traceback" not in response.text
    return dict(body["error"])
