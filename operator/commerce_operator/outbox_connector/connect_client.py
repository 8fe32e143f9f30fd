"""Kafka Connect's REST API, the calls the OutboxConnector reconciler needs.

Every call is idempotent: a config PUT creates or replaces, pause/resume/stop of a connector
already in that state are accepted by Connect, and deleting a connector that is gone is not an
error. Anything else Connect answers (a rebalance in progress, a worker down, a timeout) is
raised as `ConnectError`, which the reconciler treats as temporary.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx

from commerce_operator.outbox_connector.connector_changes import ObservedConnector, TaskState
from commerce_operator.outbox_connector.ports import ConnectError


class ConnectClient:
    """One Connect cluster, through an `httpx.AsyncClient` whose base URL is Connect's."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http

    @classmethod
    def for_url(cls, url: str, timeout_s: float = 30.0) -> ConnectClient:
        return cls(httpx.AsyncClient(base_url=url, timeout=timeout_s))

    async def close(self) -> None:
        await self._http.aclose()

    async def get_config(self, name: str) -> dict[str, str] | None:
        """The connector's config as stored (config-provider references unresolved); None
        when there is no such connector."""
        answer = await self._call("GET", f"/connectors/{_quote(name)}/config", missing_ok=True)
        return None if answer is None else {str(k): str(v) for k, v in answer.json().items()}

    async def get_status(self, name: str) -> dict[str, Any] | None:
        answer = await self._call("GET", f"/connectors/{_quote(name)}/status", missing_ok=True)
        if answer is None:
            return None
        status = answer.json()
        assert isinstance(status, dict)
        return status

    async def observe(self, name: str) -> ObservedConnector | None:
        """Config and state together; None when the connector is not on Connect. A connector
        whose config is stored but whose status is not written yet is UNASSIGNED."""
        config = await self.get_config(name)
        if config is None:
            return None
        status = await self.get_status(name)
        if status is None:
            return ObservedConnector(config=config, state="UNASSIGNED")
        connector = status.get("connector") or {}
        tasks = tuple(
            TaskState(
                id=int(task["id"]),
                state=str(task.get("state", "UNASSIGNED")),
                worker_id=str(task.get("worker_id", "")),
                trace=str(task.get("trace", "")),
            )
            for task in sorted(status.get("tasks") or [], key=lambda t: int(t["id"]))
        )
        return ObservedConnector(
            config=config, state=str(connector.get("state", "UNASSIGNED")), tasks=tasks
        )

    async def put_config(self, name: str, config: Mapping[str, str]) -> bool:
        """Creates or replaces the connector's config; True when it was created."""
        answer = await self._call("PUT", f"/connectors/{_quote(name)}/config", json=dict(config))
        assert answer is not None
        return answer.status_code == 201

    async def pause(self, name: str) -> None:
        await self._call("PUT", f"/connectors/{_quote(name)}/pause")

    async def resume(self, name: str) -> None:
        """Also starts a STOPPED connector again."""
        await self._call("PUT", f"/connectors/{_quote(name)}/resume")

    async def stop(self, name: str) -> None:
        """Stops the connector and its tasks; the config stays (Kafka >= 3.5)."""
        await self._call("PUT", f"/connectors/{_quote(name)}/stop")

    async def restart_failed(self, name: str) -> None:
        """Restarts the connector if it failed and every failed task; accepted, not done."""
        await self._call(
            "POST",
            f"/connectors/{_quote(name)}/restart",
            params={"includeTasks": "true", "onlyFailed": "true"},
        )

    async def delete(self, name: str) -> bool:
        """Removes the connector; False when it was not there."""
        return (
            await self._call("DELETE", f"/connectors/{_quote(name)}", missing_ok=True) is not None
        )

    async def _call(
        self,
        method: str,
        path: str,
        *,
        missing_ok: bool = False,
        json: Any = None,
        params: Mapping[str, str] | None = None,
    ) -> httpx.Response | None:
        try:
            answer = await self._http.request(method, path, json=json, params=params)
        except httpx.HTTPError as exc:
            raise ConnectError(f"Kafka Connect unreachable: {method} {path}: {exc!r}") from exc
        if answer.status_code == 404 and missing_ok:
            return None
        if answer.is_success:
            return answer
        raise ConnectError(
            f"Kafka Connect answered {answer.status_code} to {method} {path}: "
            f"{_error_message(answer)}",
            answer.status_code,
        )


def _quote(name: str) -> str:
    return quote(name, safe="")


def _error_message(answer: httpx.Response) -> str:
    try:
        body = answer.json()
    except ValueError:
        return answer.text[:500]
    if isinstance(body, dict) and "message" in body:
        return str(body["message"])[:500]
    return str(body)[:500]
