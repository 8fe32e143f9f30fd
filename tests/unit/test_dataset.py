"""The benchmark data set's generator (pure): the same seed gives the same tree and products,
the tree has the promised shape, products are valid and carry their category's attributes,
and their documents have the catalog store's layout."""

from __future__ import annotations

from collections import Counter

import pytest

from commerce_devstack.dataset.categories import (
    DEPARTMENTS,
    CategoryNode,
    category_tree,
    leaves,
    plural,
)
from commerce_devstack.dataset.loader import _batches, category_infos
from commerce_devstack.dataset.products import (
    DELETED_EVERY,
    ProductGenerator,
    brands,
    revision_document,
)
from commerce_devstack.dataset.target import Target
from commerce_services.product.catalog.model import validate_content
from commerce_services.search.documents import Delete, Upsert, index_op

SEEDS = [1, 2, 42]


@pytest.fixture(scope="module")
def tree() -> list[CategoryNode]:
    return category_tree(1)


@pytest.fixture(scope="module")
def generator(tree: list[CategoryNode]) -> ProductGenerator:
    return ProductGenerator(tree, 1)


@pytest.mark.parametrize("seed", SEEDS)
def test_the_same_seed_gives_the_same_tree_and_products(seed: int) -> None:
    first, second = category_tree(seed), category_tree(seed)
    assert first == second
    a, b = ProductGenerator(first, seed), ProductGenerator(second, seed)
    assert list(a.stream(150)) == list(b.stream(150))
    # Product i on its own equals product i of the stream.
    assert a.product(120) == next(b.stream(121, start=120))


def test_other_seeds_give_other_data() -> None:
    assert category_tree(1) != category_tree(2)
    one, two = ProductGenerator(category_tree(1), 1), ProductGenerator(category_tree(2), 2)
    assert one.product(0).product_id != two.product(0).product_id
    assert brands(1) != brands(2)


@pytest.mark.parametrize("seed", SEEDS)
def test_the_tree_has_hundreds_of_categories_on_three_to_five_levels(seed: int) -> None:
    tree = category_tree(seed)
    assert 300 <= len(tree) <= 1200
    assert [n.id for n in tree] == list(range(1, len(tree) + 1))
    levels = Counter(n.level for n in tree)
    assert levels[1] == len(DEPARTMENTS)
    assert set(levels) == {1, 2, 3, 4, 5}
    by_id = {n.id: n for n in tree}
    for node in tree:
        parent = by_id.get(node.parent_id) if node.parent_id else None
        assert node.path == (f"{parent.path}/{node.id}" if parent else str(node.id))
        assert node.level == (parent.level + 1 if parent else 1)
    # Products go into leaves, which lie 3 to 5 levels deep.
    assert {leaf.level for leaf in leaves(tree)} == {3, 4, 5}
    # Siblings never share a name (the product service refuses that).
    siblings = Counter((n.parent_id, n.name) for n in tree)
    assert max(siblings.values()) == 1


@pytest.mark.parametrize(
    ("noun", "expected"),
    [
        ("mug", "mugs"),
        ("glass", "glasses"),
        ("battery", "batteries"),
        ("key", "keys"),
        ("paint brush", "paint brushes"),
        ("box", "boxes"),
    ],
)
def test_plural(noun: str, expected: str) -> None:
    assert plural(noun) == expected


def test_products_are_valid_and_carry_their_categorys_attributes(
    tree: list[CategoryNode], generator: ProductGenerator
) -> None:
    by_id = {n.id: n for n in tree}
    leaf_ids = {leaf.id for leaf in leaves(tree)}
    skus: set[str] = set()
    names_of_brands = brands(1)
    for product in generator.stream(500):
        if product.content is None:
            continue
        content = validate_content(product.content)
        assert content.primary_category_id in leaf_ids
        assert set(content.category_ids) <= leaf_ids
        leaf = by_id[content.primary_category_id]
        department = DEPARTMENTS[leaf.department]
        section = department.sections[leaf.section]
        names = set(content.attributes) | {n for v in content.variants for n in v.attributes}
        assert set(department.attributes) | {section.attribute[0]} <= names
        assert leaf.product_type is not None
        assert leaf.product_type.title() in content.title
        assert content.brand in names_of_brands[leaf.department]
        assert product.created_at <= product.updated_at
        assert set(product.stock) == content.skus
        assert not skus & content.skus  # a SKU belongs to one product
        skus |= content.skus


def test_one_product_in_a_hundred_is_deleted(generator: ProductGenerator) -> None:
    stream = list(generator.stream(3 * DELETED_EVERY))
    deleted = [p for p in stream if p.deleted]
    assert len(stream) == 3 * DELETED_EVERY + 3
    assert len(deleted) == 3
    assert len({p.product_id for p in stream}) == len(stream)


def test_documents_have_the_catalog_stores_layout(generator: ProductGenerator) -> None:
    product = generator.product(7)
    assert product.content is not None
    document = revision_document(product)
    assert set(document) == {
        "_id", "product_id", "version", "deleted", "created_at", "updated_at", "title",
        "description", "brand", "attributes", "variants", "images", "category_ids",
        "primary_category_id",
    }  # fmt: skip
    assert document["_id"] == f"{product.product_id}:{product.version}"
    assert set(document["variants"][0]["price"]) == {"amount_minor", "currency"}
    tombstone = generator.deleted(DELETED_EVERY - 1)
    assert revision_document(tombstone) == {
        "_id": f"{tombstone.product_id}:2",
        "product_id": tombstone.product_id,
        "version": 2,
        "deleted": True,
        "updated_at": tombstone.updated_at,
    }


def test_documents_become_the_index_documents_the_sync_writes(
    tree: list[CategoryNode], generator: ProductGenerator
) -> None:
    product = generator.product(3)
    assert product.content is not None
    op = index_op(revision_document(product), category_infos(tree), product.stock)
    assert isinstance(op, Upsert)
    leaf = tree[product.content.primary_category_id - 1]
    assert op.document["breadcrumbs"][-1] == leaf.name
    assert op.document["breadcrumbs"][0] == DEPARTMENTS[leaf.department].name
    assert op.document["category_ancestors"][0] == int(leaf.path.split("/")[0])
    assert op.document["available"] == any(units > 0 for units in product.stock.values())
    deleted = index_op(revision_document(generator.deleted(0)), {}, {})
    assert isinstance(deleted, Delete)


@pytest.mark.parametrize(
    ("name", "mongo", "mariadb", "alias", "topic"),
    [
        ("bench", "catalog_bench", "commerce_catalog_bench", "bench-products",
         "bench.product.events"),
        ("ds_test1", "catalog_ds_test1", "commerce_catalog_ds_test1", "ds-test1-products",
         "ds-test1.product.events"),
    ],
)  # fmt: skip
def test_target_names(name: str, mongo: str, mariadb: str, alias: str, topic: str) -> None:
    target = Target(name)
    assert (
        target.mongo_database,
        target.mariadb_database,
        target.alias,
        target.events_topic,
    ) == (mongo, mariadb, alias, topic)


@pytest.mark.parametrize("size", [1, 7, 99, 100, 101, 250])
async def test_batches_end_with_whole_products_so_a_load_goes_on_at_a_product(
    generator: ProductGenerator, size: int
) -> None:
    stream = list(generator.stream(450))
    batches = [b async for b in _batches(iter(stream), size)]
    assert [p for b in batches for p in b] == stream
    for batch in batches:
        assert not batch[0].deleted  # a deleted product never starts a batch
        assert len(batch) <= size + 1
    # Going on at the live product after a batch gives exactly the rest of the stream.
    first = batches[0]
    rest = list(generator.stream(450, first[-1].index + 1))
    assert rest == stream[len(first) :]


@pytest.mark.parametrize("name", ["", "Bench", "1bench", "bench-x", "a" * 32, "bench;drop"])
def test_target_names_that_could_not_name_a_database_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="target name"):
        Target(name)
