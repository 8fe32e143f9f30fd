"""A catalog revision (a `product_revisions` document) as an index operation (pure).

The revision's `version` becomes the document's external version, so whichever order revisions
reach the index in, the newest wins; a tombstone becomes a delete carrying its version too; a
stub (`superseded: true`) is skipped, because its successor's change follows it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

Revision = dict[str, Any]  # as PyMongo returns it


@dataclass(frozen=True)
class CategoryInfo:
    id: int
    name: str
    path: tuple[int, ...]  # ids from the root down to this category


@dataclass(frozen=True)
class Upsert:
    product_id: str
    version: int
    document: dict[str, Any]
    # Rewrites the document at the version it already has (a stock change does not make a new
    # revision); a newer version still wins.
    same_version: bool = False


@dataclass(frozen=True)
class Delete:
    product_id: str
    version: int


IndexOp = Upsert | Delete


def epoch_ms(moment: datetime) -> int:
    """Milliseconds since the epoch; naive datetimes are UTC, as PyMongo returns them."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return int(aware.timestamp() * 1000)


def attribute_value(value: object) -> str:
    """How an attribute value reads in a facet and in `attr.<name>=` filters."""
    if isinstance(value, bool):  # before int: bool is an int
        return "true" if value else "false"
    return str(value)


def facet(name: str, value: object) -> str:
    return f"{name}={attribute_value(value)}"


def _facets(revision: Revision) -> list[str]:
    pairs = {facet(n, v) for n, v in revision.get("attributes", {}).items()}
    for variant in revision.get("variants", ()):
        pairs |= {facet(n, v) for n, v in variant.get("attributes", {}).items()}
    return sorted(pairs)


def category_ids_needed(revisions: Iterable[Revision]) -> set[int]:
    return {c for r in revisions for c in r.get("category_ids", ())}


def skus_needed(revisions: Iterable[Revision]) -> set[str]:
    return {v["sku"] for r in revisions for v in r.get("variants", ())}


def index_op(
    revision: Revision, categories: Mapping[int, CategoryInfo], sellable: Mapping[str, int]
) -> IndexOp | None:
    """The operation that brings the index to `revision`; None for a stub.

    `categories`: at least the revision's categories (a missing one adds no ancestors or
    breadcrumbs); `sellable`: units in stock minus reserved per SKU (absent: none)."""
    if revision.get("superseded"):
        return None
    product_id, version = str(revision["product_id"]), int(revision["version"])
    if revision.get("deleted"):
        return Delete(product_id, version)
    category_ids = [int(c) for c in revision["category_ids"]]
    ancestors = sorted({a for c in category_ids if c in categories for a in categories[c].path})
    primary = categories.get(int(revision["primary_category_id"]))
    breadcrumbs = (
        [categories[a].name for a in primary.path if a in categories] if primary is not None else []
    )
    prices = [int(v["price"]["amount_minor"]) for v in revision["variants"]]
    currencies = sorted({str(v["price"]["currency"]) for v in revision["variants"]})
    brand = revision.get("brand")
    document: dict[str, Any] = {
        "product_id": product_id,
        "title": revision["title"],
        "description": revision.get("description") or "",
        "brand": brand,
        "category_ids": category_ids,
        "category_ancestors": ancestors,
        "breadcrumbs": breadcrumbs,
        "facets": _facets(revision),
        "prices": sorted(set(prices)),
        "price_min": min(prices),
        "price_max": max(prices),
        "currency": currencies,
        "skus": sorted({str(v["sku"]) for v in revision["variants"]}),
        "available": any(sellable.get(v["sku"], 0) > 0 for v in revision["variants"]),
        "created_at": epoch_ms(revision["created_at"]),
        "updated_at": epoch_ms(revision["updated_at"]),
        "suggest": {"input": [revision["title"], *([brand] if brand else [])]},
    }
    return Upsert(product_id, version, document)
