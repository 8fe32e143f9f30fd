"""The query strings of GET /api/v1/search and /api/v1/search/suggest, and the search's opaque
cursors (pure). Unknown parameters are refused, text is whitespace-collapsed and may hold no
control character (they break the engine's suggester and the fallback's store).

A cursor carries the sort values to continue after, which side answered (engine or degraded
MongoDB: a search keeps paging where it started, so no hit is skipped or repeated when the
engine comes back), and a fingerprint of the query, so it cannot be used with another one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from commerce_services.product.catalog.model import ATTRIBUTE_NAME
from commerce_services.search.engine import SORTS, SearchQuery
from commerce_services.web.text import has_control_characters

MAX_SIZE = 100
MAX_TEXT = 200
MAX_FILTER = 256
MAX_ATTRIBUTE_FILTERS = 20
MAX_CURSOR = 2048
MAX_CATEGORY = 2**63 - 1
PRICE_LIMIT = 10**18  # beyond any stored price; keeps the numbers within a long
MAX_SUGGEST_TEXT = 100
MAX_SUGGESTIONS = 20
_SINGLE = ("q", "category", "brand", "price_min", "price_max", "sort", "size", "cursor")
_DIGITS = re.compile(r"^[0-9]{1,19}$")

Side = Literal["engine", "degraded"]


class InvalidSearch(ValueError):
    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter
        self.message = message


@dataclass(frozen=True)
class Cursor:
    side: Side
    after: list[Any]


def _integer(name: str, raw: str, low: int, high: int) -> int:
    if not _DIGITS.fullmatch(raw) or not low <= int(raw) <= high:
        raise InvalidSearch(name, f"an integer from {low} to {high}")
    return int(raw)


def _text(name: str, raw: str, limit: int) -> str | None:
    # Tabs and line breaks (pasted text) collapse with the other whitespace; any other control
    # character is refused, also those Python counts as whitespace (U+001C-U+001F).
    if has_control_characters(raw, line_breaks_allowed=True):
        raise InvalidSearch(name, "no control characters")
    text = " ".join(raw.split())
    if len(text) > limit:
        raise InvalidSearch(name, f"at most {limit} characters")
    return text or None


def _singles(params: Iterable[tuple[str, str]], names: Iterable[str]) -> dict[str, str]:
    allowed = set(names)
    single: dict[str, str] = {}
    for name, raw in params:
        if name not in allowed:
            raise InvalidSearch(name, "unknown parameter")
        if name in single:
            raise InvalidSearch(name, "given more than once")
        single[name] = raw
    return single


def parse_search(params: Iterable[tuple[str, str]]) -> tuple[SearchQuery, str | None]:
    """The query and the raw cursor; InvalidSearch naming the first bad parameter. Unknown
    parameters are refused: a misspelt filter must not silently widen the results."""
    single: dict[str, str] = {}
    attributes: dict[str, list[str]] = {}
    for name, raw in params:
        if name.startswith("attr."):
            attribute = name.removeprefix("attr.")
            if not ATTRIBUTE_NAME.fullmatch(attribute):
                raise InvalidSearch(name, "not an attribute name")
            value = _text(name, raw, MAX_FILTER)
            if value is None:
                raise InvalidSearch(name, "must not be empty")
            attributes.setdefault(attribute, []).append(value)
        elif name in _SINGLE:
            if name in single:
                raise InvalidSearch(name, "given more than once")
            single[name] = raw
        else:
            raise InvalidSearch(name, "unknown parameter")
    if "cursor" in single and len(single["cursor"]) > MAX_CURSOR:
        raise InvalidSearch("cursor", "not a cursor this API issued")
    if len(attributes) > MAX_ATTRIBUTE_FILTERS:
        raise InvalidSearch("attr.*", f"at most {MAX_ATTRIBUTE_FILTERS} attributes")
    sort = single.get("sort", "relevance")
    if sort not in SORTS:
        raise InvalidSearch("sort", f"one of {', '.join(SORTS)}")
    price_min = price_max = None
    if "price_min" in single:
        price_min = _integer("price_min", single["price_min"], 0, PRICE_LIMIT)
    if "price_max" in single:
        price_max = _integer("price_max", single["price_max"], 0, PRICE_LIMIT)
    if price_min is not None and price_max is not None and price_min > price_max:
        raise InvalidSearch("price_max", "must not be below price_min")
    query = SearchQuery(
        text=_text("q", single.get("q", ""), MAX_TEXT),
        category=(
            _integer("category", single["category"], 1, MAX_CATEGORY)
            if "category" in single
            else None
        ),
        brand=_text("brand", single.get("brand", ""), MAX_FILTER),
        price_min=price_min,
        price_max=price_max,
        attributes=tuple(
            (name, tuple(dict.fromkeys(values))) for name, values in sorted(attributes.items())
        ),
        sort=sort,
        size=_integer("size", single["size"], 1, MAX_SIZE) if "size" in single else 20,
    )
    return query, single.get("cursor")


def parse_suggest(params: Iterable[tuple[str, str]]) -> tuple[str, int]:
    """The prefix to complete and how many suggestions; InvalidSearch as parse_search."""
    single = _singles(params, ("q", "size"))
    text = _text("q", single.get("q", ""), MAX_SUGGEST_TEXT)
    if text is None:
        raise InvalidSearch("q", "required, not blank")
    size = _integer("size", single["size"], 1, MAX_SUGGESTIONS) if "size" in single else 10
    return text, size


def fingerprint(query: SearchQuery) -> str:
    """Everything that decides which hits come in which order (the page size does not)."""
    key = [
        query.text,
        query.category,
        query.brand,
        query.price_min,
        query.price_max,
        [[n, list(v)] for n, v in query.attributes],
        query.sort,
    ]
    return hashlib.sha256(json.dumps(key).encode()).hexdigest()[:16]


def encode_cursor(query: SearchQuery, cursor: Cursor) -> str:
    raw = json.dumps(
        {"s": cursor.side, "a": cursor.after, "f": fingerprint(query)}, separators=(",", ":")
    )
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(raw: str, query: SearchQuery) -> Cursor:
    try:
        fields = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (binascii.Error, ValueError) as exc:  # ValueError covers bad UTF-8 and JSON
        raise InvalidSearch("cursor", "not a cursor this API issued") from exc
    if (
        not isinstance(fields, dict)
        or set(fields) != {"s", "a", "f"}
        or fields["s"] not in ("engine", "degraded")
        or not isinstance(fields["a"], list)
        or not all(isinstance(v, str | int | float) for v in fields["a"])
    ):
        raise InvalidSearch("cursor", "not a cursor this API issued")
    after = fields["a"]
    if fields["s"] == "degraded" and not (
        len(after) == 2 and type(after[0]) is int and isinstance(after[1], str)
    ):
        raise InvalidSearch("cursor", "not a cursor this API issued")
    if fields["f"] != fingerprint(query):
        raise InvalidSearch("cursor", "the cursor belongs to another search")
    return Cursor(fields["s"], fields["a"])
