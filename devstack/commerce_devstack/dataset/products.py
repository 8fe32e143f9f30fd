"""The products of the data set (pure): a stream, so memory does not grow with the count.

Product `i` depends only on the seed, `i` and the category tree: it can be generated again on
its own (the benchmark derives its queries that way). Every 100th live product is followed by
one deleted product, stored as the tombstone the catalog keeps. Products are what the product
service would accept (`validate_content`), written as the catalog stores them once committed.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from commerce_devstack.dataset.categories import DEPARTMENTS, CategoryNode, leaves
from commerce_services.product.catalog.model import (
    AttributeValue,
    Price,
    ProductContent,
    Variant,
)
from commerce_services.product.catalog.store import revision_document as store_revision
from commerce_services.product.catalog.store import tombstone_document

DELETED_EVERY = 100  # one tombstone after this many live products
BRANDS_PER_DEPARTMENT = 30
# Fixed, so the same seed gives the same timestamps on any day; before any real write.
EPOCH = datetime(2024, 1, 1)
SPAN_DAYS = 600

_SYLLABLES = (
    "al", "ben", "cor", "da", "el", "fin", "gar", "hal", "is", "jun", "ka", "lor", "mar",
    "nor", "ol", "pen", "quin", "ros", "sol", "tor", "ul", "vik", "wen", "xa", "yor", "zen",
)  # fmt: skip
ADJECTIVES = (
    "classic", "compact", "deluxe", "essential", "everyday", "modern", "portable", "premium",
    "pro", "rugged", "sleek", "smart", "soft", "sturdy", "ultra", "vintage", "lightweight",
    "heavy-duty", "slim", "eco", "family", "travel", "urban", "studio", "outdoor", "quiet",
)  # fmt: skip
_FEATURES = (
    "Easy to clean and built to last.",
    "Designed for daily use.",
    "Comes with a two-year guarantee.",
    "Tested by our team for a month.",
    "A favourite of our customers.",
    "Ships in recyclable packaging.",
    "Pairs well with the rest of the range.",
    "Made in small batches.",
)


@dataclass(frozen=True)
class GeneratedProduct:
    index: int  # position in the stream; deleted products share their predecessor's index
    product_id: str
    version: int  # the stored version: 1 + earlier edits (+ 1 for the delete)
    content: ProductContent | None  # None: deleted (a tombstone)
    created_at: datetime
    updated_at: datetime
    stock: dict[str, int]  # units per SKU, for the inventory

    @property
    def deleted(self) -> bool:
        return self.content is None


def brands(seed: int) -> list[list[str]]:
    """Brand names per department; unique across the data set."""
    rng = random.Random(seed ^ 0x5EED)
    taken: set[str] = set()
    result = []
    for _ in DEPARTMENTS:
        names: list[str] = []
        while len(names) < BRANDS_PER_DEPARTMENT:
            name = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 3))).title()
            if name not in taken:
                taken.add(name)
                names.append(name)
        result.append(names)
    return result


def _zipf_index(rng: random.Random, size: int) -> int:
    """An index below `size` where lower ones are much more likely: a few brands sell most."""
    return min(int(size * rng.random() ** 2.5), size - 1)


def _price_minor(rng: random.Random, low_eur: int, high_eur: int) -> int:
    """Log-uniform in the range, ending in .99 or .49 like shop prices."""
    euros = int(low_eur * (high_eur / low_eur) ** rng.random())
    return max(euros, 1) * 100 - rng.choice((1, 51))


def _moment(rng: random.Random) -> tuple[datetime, datetime]:
    created = EPOCH + timedelta(milliseconds=rng.randrange(SPAN_DAYS * 86_400_000))
    updated = created + timedelta(milliseconds=rng.randrange(90 * 86_400_000))
    return created, updated


def _product_id(rng: random.Random) -> str:
    return f"{rng.getrandbits(128):032x}"


class ProductGenerator:
    """Products over one category tree; `product(i)` is the i-th live product."""

    def __init__(self, tree: list[CategoryNode], seed: int) -> None:
        self._seed = seed
        self._leaves = leaves(tree)
        self._brands = brands(seed)
        # Leaves of each department, for the few products listed in a second category.
        self._by_department: dict[int, list[CategoryNode]] = {}
        for leaf in self._leaves:
            self._by_department.setdefault(leaf.department, []).append(leaf)

    def product(self, i: int) -> GeneratedProduct:
        rng = random.Random((self._seed << 40) | i)
        product_id = _product_id(rng)
        leaf = self._leaves[_zipf_index(rng, len(self._leaves)) if rng.random() < 0.5
                            else rng.randrange(len(self._leaves))]  # fmt: skip
        department = DEPARTMENTS[leaf.department]
        section = department.sections[leaf.section]
        assert leaf.product_type is not None  # leaves are at level 3 or deeper
        brand = self._brands[leaf.department][_zipf_index(rng, BRANDS_PER_DEPARTMENT)]
        adjective = rng.choice(ADJECTIVES)
        model = f"{brand[0]}{rng.randint(100, 999)}"
        title = f"{brand} {adjective.title()} {leaf.product_type.title()} {model}"
        attributes: dict[str, AttributeValue] = {
            name: rng.choice(values) for name, values in department.attributes.items()
        }
        attributes[section.attribute[0]] = rng.choice(section.attribute[1])
        if leaf.segment is not None:
            attributes["segment"] = leaf.segment.lower()
        base = _price_minor(rng, *section.price_eur)
        axis = department.variant_axis
        picked = (
            sorted(rng.sample(range(len(axis[1])), rng.randint(1, min(4, len(axis[1])))))
            if axis is not None and rng.random() < 0.6
            else [-1]
        )
        variants = []
        for k, position in enumerate(picked):
            variant_attributes: dict[str, AttributeValue] = {}
            if axis is not None and position >= 0:
                variant_attributes[axis[0]] = axis[1][position]
                attributes.pop(axis[0], None)  # the variants say it
            # Larger sizes cost a little more, as they often do.
            price = base + k * (base // 20) if k else base
            variants.append(Variant(f"DS{i:08d}-{k}", Price(price, "EUR"), variant_attributes))
        categories = [leaf.id]
        if rng.random() < 0.1:  # listed in a second category of its department
            other = rng.choice(self._by_department[leaf.department])
            if other.id != leaf.id:
                categories.append(other.id)
        description = f"{adjective.capitalize()} {leaf.product_type} by {brand}. " + " ".join(
            rng.sample(_FEATURES, 2)
        )
        created, updated = _moment(rng)
        stock = {v.sku: (0 if rng.random() < 0.12 else rng.randint(1, 250)) for v in variants}
        content = ProductContent(
            title=title,
            description=description,
            brand=brand,
            attributes=attributes,
            variants=tuple(variants),
            images=(f"https://images.example.com/{product_id}/1.jpg",),
            category_ids=tuple(categories),
            primary_category_id=leaf.id,
        )
        version = 1 + _zipf_index(rng, 4)
        return GeneratedProduct(i, product_id, version, content, created, updated, stock)

    def deleted(self, i: int) -> GeneratedProduct:
        """The tombstone that follows live product `i`."""
        rng = random.Random((self._seed << 40) | (1 << 39) | i)
        created, updated = _moment(rng)
        return GeneratedProduct(i, _product_id(rng), 2, None, created, updated, {})

    def stream(self, count: int, start: int = 0) -> Iterator[GeneratedProduct]:
        """Live products `start`..`count - 1`, each 100th followed by a deleted one."""
        for i in range(start, count):
            yield self.product(i)
            if i % DELETED_EVERY == DELETED_EVERY - 1:
                yield self.deleted(i)


def revision_document(product: GeneratedProduct) -> dict[str, Any]:
    """The product's latest revision as the catalog store keeps it (older revisions long
    dropped as stubs); a tombstone when deleted."""
    if product.content is None:
        return tombstone_document(product.product_id, product.version, product.updated_at)
    return store_revision(
        product.product_id,
        product.version,
        product.content,
        product.created_at,
        product.updated_at,
    )
