"""A TCP proxy on loopback in front of a real server, for outage tests that must not touch the
shared stack: `hold()` stops passing the server's bytes (a request is left in flight), `cut()`
closes every connection and stops listening (the port has nothing behind it: connection
refused), `restore()` listens again on the same port."""

from __future__ import annotations

import asyncio
import contextlib


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()
        self.port = 0

    async def start(self) -> int:
        """Listens on a free loopback port; returns it."""
        await self._listen()
        return self.port

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}
        await asyncio.gather(
            self._pipe(reader, up_writer, held=False),
            self._pipe(up_reader, writer, held=True),
            return_exceptions=True,
        )

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, held: bool
    ) -> None:
        try:
            while data := await reader.read(65536):
                if held:
                    await self._flowing.wait()
                writer.write(data)
                await writer.drain()
        finally:
            self._writers.discard(writer)
            writer.close()

    def hold(self) -> None:
        """The server's answers are kept back until `cut()` (or `restore()`)."""
        self._flowing.clear()

    async def cut(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()
        self._flowing.set()  # the held pipes see their closed peers and end
        if server is not None:
            await server.wait_closed()

    async def restore(self) -> None:
        self._flowing.set()
        if self._server is None:
            await self._listen()

    async def close(self) -> None:
        with contextlib.suppress(OSError):
            await self.cut()
