"""Search traffic during a fault: the search API as a real process (its own index behind its own
alias, the shop's catalog as the fallback), asked at a steady rate; every answer's status,
whether it was degraded, and how long it took."""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from elasticsearch import AsyncElasticsearch

from commerce_devstack.endpoints import Endpoints
from commerce_devstack.local_shop import free_ports
from commerce_services.search.mapping import MAPPING, SETTINGS


@dataclass
class SearchAnswers:
    statuses: Counter[int] = field(default_factory=Counter)
    degraded: int = 0
    latencies_ms: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, object]:
        ordered = sorted(self.latencies_ms) or [0.0]
        return {
            "answers": sum(self.statuses.values()),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "degraded": self.degraded,
            "p50_ms": round(statistics.median(ordered), 1),
            "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 1),
            "max_ms": round(ordered[-1], 1),
        }


@asynccontextmanager
async def search_api(stack: Endpoints, logs: Path, prefix: str) -> AsyncIterator[str]:
    """A search API process with an empty index of its own; yields its base URL."""
    alias = f"{prefix}-search"
    es = AsyncElasticsearch(stack["elasticsearch"]["url"], request_timeout=30)
    await es.indices.create(index=f"{alias}-v1", settings=SETTINGS, mappings=MAPPING)
    await es.indices.put_alias(index=f"{alias}-v1", name=alias)
    (port,) = free_ports(1)
    env = {
        **os.environ,
        **{f"SEARCH_{k.upper()}": v for k, v in stack.service_settings("product").items()},
        "SEARCH_ELASTICSEARCH_URL": stack["elasticsearch"]["url"],
        "SEARCH_ALIAS": alias,
        "SEARCH_MONGO_DATABASE": f"{prefix}_catalog",
        "SEARCH_HTTP_PORT": str(port),
    }
    log = logs / "search.log"
    with log.open("ab") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "commerce_services.search",
            "serve",
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(timeout=2) as http:
            async with asyncio.timeout(60):
                while True:
                    try:
                        if (await http.get(f"{url}/health/ready")).is_success:
                            break
                    except httpx.HTTPError:
                        pass
                    if proc.returncode is not None:
                        raise RuntimeError(f"search API exited; see {log}")
                    await asyncio.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 15)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        await es.indices.delete(index=f"{alias}-v1", ignore_unavailable=True)
        await es.close()


async def ask(url: str, rate_per_s: float, duration_s: float) -> SearchAnswers:
    """Searches at `rate_per_s` for `duration_s`, one request at a time."""
    answers = SearchAnswers()
    began = time.monotonic()
    async with httpx.AsyncClient(timeout=30) as http:
        n = 0
        while (elapsed := time.monotonic() - began) < duration_s:
            await asyncio.sleep(max(0.0, n / rate_per_s - elapsed))
            n += 1
            sent = time.monotonic()
            try:
                response = await http.get(f"{url}/api/v1/search", params={"q": "mug"})
            except httpx.HTTPError:
                answers.statuses[0] += 1
                continue
            answers.latencies_ms.append((time.monotonic() - sent) * 1000)
            answers.statuses[response.status_code] += 1
            answers.degraded += response.headers.get("X-Search-Degraded") == "true"
    return answers
