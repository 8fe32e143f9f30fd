"""Catalog search at scale: the search API against Elasticsearch asked directly with the same
request bodies (what the API adds), and the degraded search, at a million products.

Runs against a data set loaded by `commerce-dataset load` (target `bench` by default, 1,000,000
products): starts `commerce-search serve` on it, and a second one whose SEARCH_ELASTICSEARCH_URL
points at a closed port, so it answers every query degraded, from the catalog's indexed paths.
A fixed, seeded mix of queries (keyword, typo, category, faceted with attribute filters, price
range, sorted, cursor page 2) is derived from the data set's own products. Phases, each written
to bench/results/search_latency.json as soon as it is done (`--resume` skips the phases a
previous run of the same parameters finished):
- single: one client; each query through the API, then its body (`queries.search_body`, the
  page-2 cursor's sort values included) straight to Elasticsearch; p50/p95 per kind, and the
  ratio API / Elasticsearch;
- closed_loop: `--clients` concurrent clients for `--duration` seconds through the API, then the
  same bodies straight to Elasticsearch: requests/s of each;
- fallback: the mix through the degraded API, one client, `--fallback-per-kind` queries of each
  kind: latency, and whether each answered within its budget;
- rebuild (`--rebuild`): `commerce-search rebuild` from scratch, timed.
Results: bench/results/search_latency.json and docs/benchmarks/search.md.
Run: `make bench-catalog` (after the data set load it runs), or `make bench-search`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from elasticsearch import AsyncElasticsearch

from commerce_devstack import endpoints
from commerce_devstack.dataset.categories import DEPARTMENTS, CategoryNode, category_tree
from commerce_devstack.dataset.products import ProductGenerator
from commerce_devstack.dataset.target import Target
from commerce_devstack.local_shop import free_ports
from commerce_services.search.queries import search_body
from commerce_services.search.search_params import decode_cursor, parse_search

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "search_latency.json"
DATASET = ROOT / "bench" / "results" / "search_dataset.json"
DOC = ROOT / "docs" / "benchmarks" / "search.md"
KINDS = ("keyword", "typo", "category", "faceted", "price_range", "sorted", "page2")
PHASES = ("single", "closed_loop", "fallback", "rebuild")


@dataclass(frozen=True)
class Query:
    kind: str
    params: tuple[tuple[str, str], ...]


# ---- the query mix ----------------------------------------------------------------------------


def _typo(word: str) -> str:
    """One transposition after the first letter (the index's fuzziness keeps it exact)."""
    if len(word) < 5:
        return word
    return word[0] + word[2] + word[1] + word[3:]


def _department_root(node: CategoryNode) -> int:
    return int(node.path.split("/")[0])


def _section_id(node: CategoryNode) -> int:
    return int(node.path.split("/")[1])


def query_mix(count: int, seed: int, per_kind: int) -> list[Query]:
    """`per_kind` queries of each kind, from products of the data set, interleaved by kind."""
    tree = category_tree(seed)
    generator = ProductGenerator(tree, seed)
    rng = random.Random(seed ^ 0xBE7C)
    by_kind: dict[str, list[Query]] = {kind: [] for kind in KINDS}
    for _ in range(per_kind):
        product = generator.product(rng.randrange(count))
        content = product.content
        assert content is not None  # product(i) is always live
        leaf = tree[content.primary_category_id - 1]
        assert leaf.product_type is not None
        noun = leaf.product_type.split()[-1]
        adjective = content.title.split()[1].lower()
        root = _department_root(leaf)
        section = DEPARTMENTS[leaf.department].sections[leaf.section]
        attribute = section.attribute[0]
        value = content.attributes.get(attribute, rng.choice(section.attribute[1]))
        price = content.variants[0].price.minor
        by_kind["keyword"].append(Query("keyword", (("q", f"{adjective} {leaf.product_type}"),)))
        # One transposition in the longer of two words: short words get no typo allowance.
        assert content.brand is not None
        typo = (
            f"{content.brand} {_typo(noun)}" if len(noun) >= 5 else f"{_typo(content.brand)} {noun}"
        )
        by_kind["typo"].append(Query("typo", (("q", typo),)))
        by_kind["category"].append(Query("category", (("category", str(_section_id(leaf))),)))
        by_kind["faceted"].append(
            Query(
                "faceted",
                (
                    ("q", noun),
                    ("category", str(root)),
                    (f"attr.{attribute}", _attribute_text(value)),
                ),
            )
        )
        by_kind["price_range"].append(
            Query(
                "price_range",
                (
                    ("category", str(root)),
                    ("price_min", str(price * 8 // 10)),
                    ("price_max", str(price * 12 // 10)),
                ),
            )
        )
        by_kind["sorted"].append(Query("sorted", (("q", noun), ("sort", "price_asc"))))
        by_kind["page2"].append(Query("page2", (("q", noun), ("category", str(root)))))
    return [by_kind[kind][i] for i in range(per_kind) for kind in KINDS]


def _attribute_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# ---- the search API as processes --------------------------------------------------------------


@asynccontextmanager
async def serve(env: dict[str, str], port: int) -> AsyncIterator[str]:
    """`commerce-search serve` until the block ends; yields its base URL once ready."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "commerce_services.search",
        "serve",
        env={**os.environ, **env, "SEARCH_HTTP_PORT": str(port), "SEARCH_LOG_LEVEL": "WARNING"},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        async with httpx.AsyncClient() as http:
            while True:
                try:
                    if (await http.get(f"{base}/health/ready", timeout=2)).is_success:
                        break
                except httpx.HTTPError:
                    pass
                if proc.returncode is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"commerce-search serve on {port} never became ready")
                await asyncio.sleep(0.3)
        yield base
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()


# ---- measuring ----------------------------------------------------------------------------------


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def summary(ms: list[float]) -> dict[str, Any]:
    if not ms:
        return {"n": 0, "p50_ms": None, "p95_ms": None}
    return {
        "n": len(ms),
        "p50_ms": round(statistics.median(ms), 1),
        "p95_ms": round(_percentile(ms, 0.95), 1),
    }


class Searches:
    """The mix, asked through the API or straight from Elasticsearch with the API's bodies."""

    def __init__(self, mix: list[Query], alias: str) -> None:
        self.mix = mix
        self.alias = alias
        self.cursors: dict[Query, str] = {}  # page 1's next_cursor of each page-2 query

    async def first_pages(self, http: httpx.AsyncClient) -> None:
        for query in dict.fromkeys(q for q in self.mix if q.kind == "page2"):
            body = (await http.get("/api/v1/search", params=query.params)).json()
            if body.get("next_cursor"):
                self.cursors[query] = body["next_cursor"]

    def askable(self, query: Query) -> bool:
        return query.kind != "page2" or query in self.cursors

    async def api(self, http: httpx.AsyncClient, query: Query) -> dict[str, Any]:
        params = query.params
        if query.kind == "page2":
            params += (("cursor", self.cursors[query]),)
        response = await http.get("/api/v1/search", params=params)
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    def body(self, query: Query) -> dict[str, Any]:
        parsed, _ = parse_search(query.params)
        after = None
        if query.kind == "page2":
            after = decode_cursor(self.cursors[query], parsed).after
        return search_body(parsed, after)

    async def direct(self, es: AsyncElasticsearch, query: Query) -> None:
        await es.search(index=self.alias, body=self.body(query))


async def _timed(call: Callable[[], Awaitable[object]]) -> float:
    began = time.perf_counter()
    await call()
    return (time.perf_counter() - began) * 1000


async def measure_single(
    searches: Searches, http: httpx.AsyncClient, es: AsyncElasticsearch
) -> dict[str, Any]:
    """Each query through the API, then straight to Elasticsearch: both meet the same
    background."""
    api: dict[str, list[float]] = {k: [] for k in KINDS}
    direct: dict[str, list[float]] = {k: [] for k in KINDS}
    for query in searches.mix[: len(KINDS) * 2]:  # warm-up
        if searches.askable(query):
            await searches.api(http, query)
            await searches.direct(es, query)
    for query in searches.mix:
        if not searches.askable(query):
            continue
        api[query.kind].append(await _timed(partial(searches.api, http, query)))
        direct[query.kind].append(await _timed(partial(searches.direct, es, query)))
    rows = {}
    for kind in (*KINDS, "all"):
        a = [ms for k, v in api.items() if kind in ("all", k) for ms in v]
        d = [ms for k, v in direct.items() if kind in ("all", k) for ms in v]
        rows[kind] = {
            "api": summary(a),
            "elasticsearch": summary(d),
            "p50_ratio": round(statistics.median(a) / statistics.median(d), 2) if a and d else None,
        }
    return rows


async def _closed_loop(
    mix: list[Query], clients: int, seconds: float, ask: Callable[[Query], Awaitable[Any]]
) -> dict[str, Any]:
    """Engine answers only in the figures; degraded answers (the API's read budget or breaker
    gave the engine up) and failures are counted apart."""
    latencies: list[float] = []
    degraded = failed = 0
    deadline = time.monotonic() + seconds

    async def client(offset: int) -> None:
        nonlocal degraded, failed
        position = offset
        while time.monotonic() < deadline:
            query = mix[position % len(mix)]
            position += clients
            began = time.perf_counter()
            try:
                answer = await ask(query)
            except Exception:
                failed += 1
                continue
            if isinstance(answer, dict) and answer.get("degraded"):
                degraded += 1
            else:
                latencies.append((time.perf_counter() - began) * 1000)

    began = time.perf_counter()
    await asyncio.gather(*(client(c) for c in range(clients)))
    wall = time.perf_counter() - began
    return {
        **summary(latencies),
        "req_s": round(len(latencies) / wall, 1),
        "degraded": degraded,
        "failed": failed,
    }


async def measure_closed_loop(
    searches: Searches,
    http: httpx.AsyncClient,
    es: AsyncElasticsearch,
    clients: int,
    seconds: float,
) -> dict[str, Any]:
    mix = [q for q in searches.mix if searches.askable(q)]
    await _closed_loop(mix, clients, min(10.0, seconds), lambda q: searches.api(http, q))
    api = await _closed_loop(mix, clients, seconds, lambda q: searches.api(http, q))
    direct = await _closed_loop(mix, clients, seconds, lambda q: searches.direct(es, q))
    return {
        "clients": clients,
        "seconds": seconds,
        "api": api,
        "elasticsearch": direct,
        "throughput_ratio": round(api["req_s"] / direct["req_s"], 2) if direct["req_s"] else None,
    }


async def measure_fallback(mix: list[Query], base: str, per_kind: int) -> dict[str, Any]:
    """The degraded API, one request at a time; page 2 goes on from the page 1 it answered."""
    samples: dict[str, list[float]] = {k: [] for k in KINDS}
    hits: dict[str, list[int]] = {k: [] for k in KINDS}
    outcomes: dict[str, int] = {}
    async with httpx.AsyncClient(base_url=base, timeout=120) as http:
        for query in mix:
            if len(samples[query.kind]) >= per_kind:
                continue
            params = query.params
            if query.kind == "page2":
                first = (await http.get("/api/v1/search", params=params)).json()
                if not first.get("next_cursor"):
                    continue
                params += (("cursor", first["next_cursor"]),)
            began = time.perf_counter()
            response = await http.get("/api/v1/search", params=params)
            ms = (time.perf_counter() - began) * 1000
            outcome = (
                "degraded"
                if response.headers.get("X-Search-Degraded") == "true"
                else str(response.status_code)
            )
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
            if outcome == "degraded":
                samples[query.kind].append(ms)
                hits[query.kind].append(len(response.json()["hits"]))
    rows: dict[str, Any] = {
        kind: {
            **summary(samples[kind]),
            "hits_p50": statistics.median(hits[kind]) if hits[kind] else None,
        }
        for kind in KINDS
    }
    rows["all"] = summary([ms for v in samples.values() for ms in v])
    rows["outcomes"] = outcomes
    return rows


async def time_rebuild(env: dict[str, str], es: AsyncElasticsearch, alias: str) -> dict[str, Any]:
    """`commerce-search rebuild`: a new version from scratch."""
    began = time.perf_counter()
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "commerce_services.search", "rebuild"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - began
    if done.returncode != 0:
        raise RuntimeError(f"rebuild failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    await es.indices.refresh(index=alias)
    documents = int((await es.count(index=alias))["count"])
    return {
        "seconds": round(seconds, 1),
        "documents": documents,
        "documents_per_s": round(documents / seconds, 1),
    }


# ---- the run ------------------------------------------------------------------------------------


def _save(results: dict[str, Any]) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")


async def run(args: argparse.Namespace, results: dict[str, Any]) -> None:
    stack = endpoints.load()
    target = Target(args.target, args.mongo_uri)
    env = target.service_env(stack, "SEARCH")
    es = AsyncElasticsearch(stack["elasticsearch"]["url"], request_timeout=120)
    phases = results["phases"]

    def done(phase: str, figures: dict[str, Any]) -> None:
        phases[phase] = figures
        _save(results)
        print(f"{phase}: {json.dumps(figures)}", flush=True)

    try:
        await es.indices.refresh(index=target.alias)
        results["documents_in_index"] = int((await es.count(index=target.alias))["count"])
        mix = query_mix(args.products, args.seed, args.per_kind)
        api_port, fallback_port, closed_port = free_ports(3)
        searches = Searches(mix, target.alias)
        if "single" not in phases or "closed_loop" not in phases:
            async with (
                serve(env, api_port) as base,
                httpx.AsyncClient(base_url=base, timeout=60, limits=_limits(args.clients)) as http,
            ):
                await searches.first_pages(http)
                if "single" not in phases:
                    done("single", await measure_single(searches, http, es))
                if "closed_loop" not in phases:
                    done(
                        "closed_loop",
                        await measure_closed_loop(searches, http, es, args.clients, args.duration),
                    )
        if "fallback" not in phases:
            fallback_env = {**env, "SEARCH_ELASTICSEARCH_URL": f"http://127.0.0.1:{closed_port}"}
            async with serve(fallback_env, fallback_port) as base:
                done("fallback", await measure_fallback(mix, base, args.fallback_per_kind))
        if args.rebuild and "rebuild" not in phases:
            done("rebuild", await time_rebuild(env, es, target.alias))
    finally:
        await es.close()


def _limits(clients: int) -> httpx.Limits:
    return httpx.Limits(max_connections=clients, max_keepalive_connections=clients)


def _cell(value: object) -> str:
    return "-" if value is None else str(value)


def _markdown(report: dict[str, Any]) -> str:
    machine, params, phases = report["machine"], report["parameters"], report["phases"]
    dataset = report.get("dataset") or {}
    lines = [
        "# Catalog search at scale",
        "",
        "Generated by `make bench-catalog` (bench/search_latency.py); raw numbers in",
        "bench/results/search_latency.json. The data set is `commerce-dataset load` (seed "
        f"{params['seed']}): {report.get('documents_in_index', 0):,} products in the index,",
        "each with 1-4 variants, about 800 categories on 3-5 levels, plus one deleted product",
        "per hundred; see [../search.md](../search.md) for the index design.",
        "",
        f"Machine: {machine['cpus']} CPUs, {machine['memory_gb']} GB RAM, Python "
        f"{machine['python']}, shared with the whole local stack (MariaDB, Kafka, Connect,",
        "Elasticsearch with a 768 MB heap, FerretDB on SQLite, the Kubernetes node) and with",
        f"other engineers' work, so noisy; run at {machine['at']}. Latencies are client-side;",
        "the API's over HTTP through one `commerce-search serve` process, Elasticsearch's",
        "through the same Python client the API uses, with the bodies the API sends.",
        "",
    ]
    single = phases.get("single")
    if single:
        lines += [
            "## One client: the API against Elasticsearch asked directly",
            "",
            "| query | API p50 ms | API p95 ms | Elasticsearch p50 ms | p95 ms | API / ES (p50) |",
            "|---|---|---|---|---|---|",
        ]
        for kind in (*KINDS, "all"):
            row = single[kind]
            a, d = row["api"], row["elasticsearch"]
            lines.append(
                f"| {kind} | {_cell(a['p50_ms'])} | {_cell(a['p95_ms'])} | {_cell(d['p50_ms'])} "
                f"| {_cell(d['p95_ms'])} | {_cell(row['p50_ratio'])}x |"
            )
        lines.append("")
    loop = phases.get("closed_loop")
    if loop:
        a, d = loop["api"], loop["elasticsearch"]
        lines += [
            f"## Closed loop: {loop['clients']} clients, {loop['seconds']} s each",
            "",
            "| | engine answers/s | p50 ms | p95 ms | degraded | failed |",
            "|---|---|---|---|---|---|",
            f"| the API | {a['req_s']} | {_cell(a['p50_ms'])} | {_cell(a['p95_ms'])} "
            f"| {a.get('degraded', '-')} | {a['failed']} |",
            f"| Elasticsearch directly | {d['req_s']} | {_cell(d['p50_ms'])} "
            f"| {_cell(d['p95_ms'])} | - | {d['failed']} |",
            "",
            f"The API serves **{loop['throughput_ratio']}x** of what Elasticsearch serves on its "
            "own on these cores (the API process, its clients and Elasticsearch share them). "
            "An API answer that took longer than the API's read budget (1 s, measured in the "
            "API process, its own queueing included) is answered degraded instead, and after "
            "three of them the breaker sends everything to the degraded path for 15 s: those "
            "answers are counted apart, not in the figures.",
            "",
        ]
    fallback = phases.get("fallback")
    if fallback:
        lines += [
            "## The degraded search (Elasticsearch unreachable)",
            "",
            "Answered from the catalog's indexed paths only (MariaDB's title FULLTEXT index and",
            "listing rows, revisions by key), each page within its budget (1 s, 500",
            "candidates); one client.",
            "",
            "| query | answered | p50 ms | p95 ms | hits per page (p50) |",
            "|---|---|---|---|---|",
        ]
        for kind in KINDS:
            row = fallback[kind]
            lines.append(
                f"| {kind} | {row['n']} | {_cell(row['p50_ms'])} | {_cell(row['p95_ms'])} "
                f"| {_cell(row['hits_p50'])} |"
            )
        lines += [
            f"| all | {fallback['all']['n']} | {_cell(fallback['all']['p50_ms'])} "
            f"| {_cell(fallback['all']['p95_ms'])} | |",
            "",
            f"Outcomes: {fallback['outcomes']}.",
            "",
        ]
    lines += ["## Keeping the index in sync", "", "| what | figure |", "|---|---|"]
    if dataset:
        lines.append(
            f"| data set load (MongoDB + MariaDB + index, {dataset['products']:,} products "
            f"+ {dataset['deleted']:,} deleted) | {dataset['seconds']} s, "
            f"{dataset['products_per_s']} products/s |"
        )
    rebuild = phases.get("rebuild")
    if rebuild:
        lines.append(
            f"| `commerce-search rebuild` from scratch ({rebuild['documents']:,} documents) "
            f"| {rebuild['seconds']} s, {rebuild['documents_per_s']} documents/s |"
        )
    lines += [
        "| index lag from a write to a search hit, sync throughput | see "
        "[catalog.md](catalog.md) |",
        "",
        *_reading(report),
        "Rerun: `make bench-catalog` (options: `.venv/bin/python bench/search_latency.py "
        "--help`; `--resume` goes on after the last phase done).",
    ]
    return "\n".join(lines) + "\n"


def _reading(report: dict[str, Any]) -> list[str]:
    """What the figures say, computed from them so a rerun cannot leave the text behind."""
    phases = report["phases"]
    lines = ["## Reading it", ""]
    single = phases.get("single")
    if single:
        row = single["all"]
        lines.append(
            f"- **What the API adds** to one query: {row['api']['p50_ms']} ms against "
            f"{row['elasticsearch']['p50_ms']} ms for Elasticsearch asked directly with the "
            f"same body ({row['p50_ratio']}x, p50 over the mix): checking the parameters, "
            "building the query, one more HTTP hop and JSON both ways in one Python process."
        )
    loop = phases.get("closed_loop")
    if loop:
        api = loop["api"]
        lines.append(
            f"- **Closed loop**: {loop['clients']} clients get {api['req_s']} engine answers/s "
            f"through the API against {loop['elasticsearch']['req_s']} from Elasticsearch "
            f"directly; {api.get('degraded', 0)} answers were degraded and {api['failed']} "
            "failed (an engine cursor for page 2 while the breaker is open gets 503 "
            "`search_unavailable`, by design). One API process saturates first; its own "
            "queueing then counts against the engine's read budget, which trips the breaker "
            "and moves the load to the degraded path, which costs more per answer. More API "
            "replicas (it is stateless), or a budget that counts only the engine's time, would "
            "keep the load on the engine."
        )
    fallback = phases.get("fallback")
    if fallback and fallback["all"]["n"]:
        worst = max(
            (fallback[k]["p95_ms"] for k in KINDS if fallback[k]["p95_ms"] is not None),
            default=None,
        )
        lines.append(
            f"- **The degraded search** answered {fallback['all']['n']} queries at "
            f"{fallback['all']['p50_ms']} ms p50 (the slowest kind's p95: {worst} ms) from "
            "indexed paths only; before issue 15 it scanned the whole collection and "
            "answered none within 240 s at this size. Its pages stop at the budget: a price "
            "range or attribute filter over a broad category reads candidates by key until "
            "it has a page or the budget is spent, and then hands out a cursor. A typo finds "
            "nothing: words are matched as written."
        )
    lines.append("")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="bench")
    parser.add_argument("--products", type=int, default=1_000_000, help="as loaded")
    parser.add_argument("--seed", type=int, default=1, help="as loaded")
    parser.add_argument("--mongo-uri", help="as loaded: another MongoDB than the stack's")
    parser.add_argument("--per-kind", type=int, default=20, help="queries of each kind")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--duration", type=float, default=30.0, help="seconds, closed loop")
    parser.add_argument("--fallback-per-kind", type=int, default=5)
    parser.add_argument("--rebuild", action="store_true", help="also time a rebuild")
    parser.add_argument("--resume", action="store_true", help="keep the phases already done")
    parser.add_argument("--render-only", action="store_true", help="rewrite the doc")
    args = parser.parse_args()
    if args.render_only:
        DOC.write_text(_markdown(json.loads(RESULTS.read_text())))
        return
    parameters = {k: v for k, v in vars(args).items() if k not in ("resume", "render_only")}
    results: dict[str, Any] = {"parameters": parameters, "phases": {}}
    if args.resume and RESULTS.exists():
        earlier = json.loads(RESULTS.read_text())
        if earlier.get("parameters") == parameters:
            results = earlier
    results["machine"] = {
        "cpus": os.cpu_count(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30),
        "python": platform.python_version(),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    results["dataset"] = json.loads(DATASET.read_text()) if DATASET.exists() else None
    try:
        asyncio.run(run(args, results))
    finally:
        _save(results)
        DOC.write_text(_markdown(results))
    print(DOC.read_text())


if __name__ == "__main__":
    main()
