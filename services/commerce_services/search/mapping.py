"""The search index's layout: names, settings and the mapping (pure data).

Clients and the API use the alias (`products`); documents live in a generation-numbered index
behind it (`products-v1`, `products-v2` after a rebuild; the naming and the checkpoints are the
contract with the operator, commerce_services.contracts), so a mapping change is a new index
and one atomic alias swap. Only fields that search, filter, facet, sort or suggest on are
indexed; the catalog in MongoDB stays the source of truth for everything else.

Chosen for the integ-test distribution of Elasticsearch (no analysis-common, no mapper-extras):
- text uses the built-in `standard` analyzer (no custom analyzers or edge n-grams exist);
- autocomplete is a `completion` field (core), not `search_as_you_type` (mapper-extras);
- money is `long` minor units (no `scaled_float`, and never a float anyway);
- attributes are one `keyword` list of "name=value" pairs instead of `flattened` (x-pack) or an
  `attrs.<name>` object: a dynamic object would grow the mapping with every new attribute name
  (mapping explosion at a million products) and `dynamic: strict` would refuse it.
"""

from __future__ import annotations

from typing import Any

# `_meta.owner` of every index this service creates (the worker's first version, a rebuild's):
# `commerce-search rebuild` swaps the alias away from, and deletes, only indices that carry it.
# A CatalogIndex's operator creates its own versions, without it.
OWNER = "commerce-search"

# Bump when the mapping changes. 2 added `skus` (a new field: applied to a running index in
# place; documents written before carry it after their next revision or a rebuild).
MAPPING_VERSION = 2

SETTINGS: dict[str, Any] = {
    "number_of_shards": 1,
    "number_of_replicas": 0,
    # The sync refreshes by itself after each bulk it cares about; 1 s is the usual freshness.
    "refresh_interval": "1s",
}

MAPPING: dict[str, Any] = {
    "dynamic": "strict",
    "_meta": {"mapping_version": MAPPING_VERSION},
    "properties": {
        # A keyword copy of _id: sorting on _id needs fielddata, which ES 8 refuses.
        "product_id": {"type": "keyword"},
        "title": {"type": "text"},
        "description": {"type": "text"},
        "brand": {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 256}}},
        "category_ids": {"type": "long"},
        # Every category on the path of every category the product is in: a term on an
        # ancestor matches its whole subtree.
        "category_ancestors": {"type": "long"},
        "breadcrumbs": {"type": "keyword", "index": False},
        "facets": {"type": "keyword", "ignore_above": 512},
        # Every variant's price: a range filter matches when some variant is in range.
        "prices": {"type": "long"},
        "price_min": {"type": "long"},
        "price_max": {"type": "long"},
        "currency": {"type": "keyword"},
        # Which products a stock change touches (the sync looks them up here, not in MongoDB).
        "skus": {"type": "keyword"},
        "available": {"type": "boolean"},
        "created_at": {"type": "date", "format": "epoch_millis"},
        "updated_at": {"type": "date", "format": "epoch_millis"},
        "suggest": {"type": "completion"},
    },
}
