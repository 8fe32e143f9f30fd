"""REST routes of catalog search under /api/v1/search, and the search service's app.

The engine answers; when it cannot (EngineUnavailable), the catalog in MongoDB does, and the
response says so: header `X-Search-Degraded: true` and `"degraded": true`.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from pydantic import BaseModel

from commerce_services.auth.http_access import Access, AccessRules
from commerce_services.search.engine import (
    SORTS,
    EngineUnavailable,
    Facets,
    Hit,
    SearchEngine,
    SearchPage,
    SearchQuery,
)
from commerce_services.search.fallback import MongoFallback
from commerce_services.search.metrics import DEGRADED_ANSWERS
from commerce_services.search.search_params import (
    MAX_ATTRIBUTE_FILTERS,
    MAX_CATEGORY,
    MAX_CURSOR,
    MAX_FILTER,
    MAX_SIZE,
    MAX_SUGGEST_TEXT,
    MAX_SUGGESTIONS,
    MAX_TEXT,
    PRICE_LIMIT,
    Cursor,
    InvalidSearch,
    decode_cursor,
    encode_cursor,
    parse_search,
    parse_suggest,
)
from commerce_services.web.app import service_app
from commerce_services.web.errors import ApiError
from commerce_services.web.health import ReadinessCheck

log = logging.getLogger(__name__)

DEGRADED_HEADER = "X-Search-Degraded"


def _parameter(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "schema": schema, "description": description}


# The query strings are parsed by search_params (attr.<name> is open-ended, which FastAPI's
# parameters cannot say); these describe them in OpenAPI.
_PRICE = {"type": "integer", "minimum": 0, "maximum": PRICE_LIMIT}
SEARCH_PARAMETERS = [
    _parameter("q", {"type": "string", "maxLength": MAX_TEXT}, "words to find"),
    _parameter(
        "category",
        {"type": "integer", "minimum": 1, "maximum": MAX_CATEGORY},
        "a category id; its descendants are included",
    ),
    _parameter("brand", {"type": "string", "maxLength": MAX_FILTER}, "exact brand"),
    _parameter("price_min", _PRICE, "lowest price, minor units"),
    _parameter("price_max", _PRICE, "highest price, minor units"),
    _parameter("sort", {"type": "string", "enum": list(SORTS), "default": "relevance"}, ""),
    _parameter("size", {"type": "integer", "minimum": 1, "maximum": MAX_SIZE, "default": 20}, ""),
    _parameter(
        "cursor",
        {"type": "string", "maxLength": MAX_CURSOR},
        "next_cursor of the previous page",
    ),
]
SUGGEST_PARAMETERS = [
    {
        **_parameter(
            "q", {"type": "string", "minLength": 1, "maxLength": MAX_SUGGEST_TEXT}, "a prefix"
        ),
        "required": True,
    },
    _parameter(
        "size", {"type": "integer", "minimum": 1, "maximum": MAX_SUGGESTIONS, "default": 10}, ""
    ),
]


def _invalid(exc: InvalidSearch) -> ApiError:
    return ApiError(422, "invalid_parameter", exc.message, {"parameter": exc.parameter})


class HitView(BaseModel):
    product_id: str
    title: str
    brand: str | None
    price_min: int  # minor units
    price_max: int
    currency: list[str]
    breadcrumbs: list[str]
    available: bool

    @classmethod
    def of(cls, hit: Hit) -> HitView:
        return cls(**hit.__dict__)


class BucketView(BaseModel):
    value: str
    count: int


class PriceBucketView(BaseModel):
    min: int | None
    max: int | None
    count: int


class FacetsView(BaseModel):
    categories: list[BucketView]
    brands: list[BucketView]
    attributes: dict[str, list[BucketView]]
    prices: list[PriceBucketView]

    @classmethod
    def of(cls, facets: Facets) -> FacetsView:
        def buckets(found: list[Any]) -> list[BucketView]:
            return [BucketView(value=b.value, count=b.count) for b in found]

        return cls(
            categories=buckets(facets.categories),
            brands=buckets(facets.brands),
            attributes={n: buckets(b) for n, b in facets.attributes.items()},
            prices=[PriceBucketView(min=p.min, max=p.max, count=p.count) for p in facets.prices],
        )


class SearchResponse(BaseModel):
    hits: list[HitView]
    total: int
    total_is_exact: bool
    facets: FacetsView | None  # first page only; none when degraded
    next_cursor: str | None
    degraded: bool


class SuggestResponse(BaseModel):
    suggestions: list[str]
    degraded: bool


def search_router(engine: SearchEngine, alias: str, fallback: MongoFallback) -> APIRouter:
    router = APIRouter(prefix="/api/v1/search", tags=["search"])

    async def run(query: SearchQuery, cursor: Cursor | None) -> tuple[SearchPage, bool]:
        if cursor is None or cursor.side == "engine":
            try:
                return await engine.search(alias, query, cursor.after if cursor else None), False
            except EngineUnavailable as exc:
                if cursor is not None:  # its sort values mean nothing to MongoDB
                    raise ApiError(503, "search_unavailable", str(exc)) from exc
                log.warning("search engine unavailable, answering from MongoDB: %s", exc)
        DEGRADED_ANSWERS.labels("search").inc()
        return await fallback.search(query, cursor.after if cursor else None), True

    @router.get(
        "",
        openapi_extra={"parameters": SEARCH_PARAMETERS},
        description=f"Also attr.<name> (repeatable: any of the values; at most "
        f"{MAX_ATTRIBUTE_FILTERS} attributes). Any other parameter is refused.",
    )
    async def search(request: Request, response: Response) -> SearchResponse:
        try:
            query, raw_cursor = parse_search(request.query_params.multi_items())
            cursor = decode_cursor(raw_cursor, query) if raw_cursor is not None else None
        except InvalidSearch as exc:
            raise _invalid(exc) from exc
        page, degraded = await run(query, cursor)
        if degraded:
            response.headers[DEGRADED_HEADER] = "true"
        next_cursor = None
        if page.next_after is not None:
            next_cursor = encode_cursor(
                query, Cursor("degraded" if degraded else "engine", page.next_after)
            )
        return SearchResponse(
            hits=[HitView.of(h) for h in page.hits],
            total=page.total,
            total_is_exact=page.total_is_exact,
            facets=FacetsView.of(page.facets) if page.facets is not None else None,
            next_cursor=next_cursor,
            degraded=degraded,
        )

    @router.get("/suggest", openapi_extra={"parameters": SUGGEST_PARAMETERS})
    async def suggest(request: Request, response: Response) -> SuggestResponse:
        """Titles and brands that start with `q` (one typo allowed from 3 letters on)."""
        try:
            q, size = parse_suggest(request.query_params.multi_items())
        except InvalidSearch as exc:
            raise _invalid(exc) from exc
        try:
            return SuggestResponse(suggestions=await engine.suggest(alias, q, size), degraded=False)
        except EngineUnavailable as exc:
            log.warning("search engine unavailable, suggesting from MongoDB: %s", exc)
        DEGRADED_ANSWERS.labels("suggest").inc()
        response.headers[DEGRADED_HEADER] = "true"
        return SuggestResponse(suggestions=await fallback.suggest(q, size), degraded=True)

    return router


# Searching the catalog is for everyone, signed in or not.
ACCESS: AccessRules = {
    ("GET", "/api/v1/search"): Access.ANONYMOUS,
    ("GET", "/api/v1/search/suggest"): Access.ANONYMOUS,
}


def create_app(
    engine: SearchEngine,
    alias: str,
    fallback: MongoFallback,
    readiness: dict[str, ReadinessCheck],
) -> FastAPI:
    app = service_app("search", readiness, ACCESS, None)
    app.include_router(search_router(engine, alias, fallback))
    return app
