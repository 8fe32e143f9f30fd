"""A Service port on loopback: a TCP proxy on a stable local port that spreads connections over
the ready replicas behind it, round robin (the part of kube-proxy the shop needs)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Callable


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


class ServiceProxy:
    def __init__(self, port: int, backends: Callable[[], list[int]]) -> None:
        self.port = port
        self._backends = backends
        self._turn = itertools.count()
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        ports = self._backends()
        if not ports:
            client_w.close()  # no ready replica: refuse, as a Service without endpoints does
            return
        port = ports[next(self._turn) % len(ports)]
        try:
            backend_r, backend_w = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            client_w.close()
            return
        await asyncio.gather(_pipe(client_r, backend_w), _pipe(backend_r, client_w))
