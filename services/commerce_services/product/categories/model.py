"""Pure category-tree rules: names, paths, depth, what a move may not do."""

from __future__ import annotations

from dataclasses import dataclass

MAX_DEPTH = 10
MAX_NAME = 120


class InvalidCategory(ValueError):
    pass


class CategoryNotFound(LookupError):
    pass


class ParentNotFound(LookupError):
    pass


class MoveIntoOwnSubtree(Exception):
    pass


class DuplicateName(Exception):
    pass


class TooDeep(Exception):
    pass


@dataclass(frozen=True)
class Category:
    id: int
    name: str
    parent_id: int | None
    level: int  # 1 for a root
    path: str  # ids from the root down to this category, "1/4/28"


def clean_name(name: str) -> str:
    cleaned = " ".join(name.split())
    if not cleaned or len(cleaned) > MAX_NAME:
        raise InvalidCategory(f"a category name has 1 to {MAX_NAME} characters")
    return cleaned


def child_path(parent_path: str | None, category_id: int) -> str:
    return f"{parent_path}/{category_id}" if parent_path else str(category_id)


def subtree_prefix(path: str) -> str:
    """LIKE pattern of every strict descendant; ids are digits, so no escaping is needed."""
    return f"{path}/%"


def ancestor_ids(path: str) -> list[int]:
    """Ids from the root down to and including the category itself."""
    return [int(part) for part in path.split("/")]


def check_move(node: Category, new_parent: Category | None, subtree_height: int) -> None:
    """Raises if moving `node` (whose deepest descendant is `subtree_height` levels below it)
    under `new_parent` (None: make it a root) would break the tree."""
    if new_parent is None:
        return
    if new_parent.id == node.id or new_parent.path.startswith(node.path + "/"):
        raise MoveIntoOwnSubtree(f"category {node.id} cannot move under its own subtree")
    if new_parent.level + 1 + subtree_height > MAX_DEPTH:
        raise TooDeep(f"the tree would be deeper than {MAX_DEPTH} levels")
