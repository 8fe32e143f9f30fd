"""REST routes of the category tree under /api/v1/categories."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from commerce_services.product.categories.model import (
    MAX_DEPTH,
    MAX_NAME,
    Category,
    CategoryNotFound,
    DuplicateName,
    InvalidCategory,
    MoveIntoOwnSubtree,
    ParentNotFound,
    TooDeep,
)
from commerce_services.product.categories.store import CategoryStore, Move
from commerce_services.web.errors import ApiError
from commerce_services.web.text import SingleLineText

CategoryId = Annotated[int, Field(ge=1, le=2**63 - 1)]


class NewCategory(BaseModel):
    # strict: a JSON true is not the category 1, nor 5 the name "5".
    model_config = ConfigDict(extra="forbid", strict=True)

    name: SingleLineText = Field(min_length=1, max_length=MAX_NAME)
    parent_id: CategoryId | None = None


class CategoryChange(BaseModel):
    """Rename (name), move (parent_id; null makes it a root), or both. Absent means unchanged."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: SingleLineText | None = Field(default=None, min_length=1, max_length=MAX_NAME)
    parent_id: CategoryId | None = None


class CategoryView(BaseModel):
    id: int
    name: str
    parent_id: int | None
    level: int
    path: str

    @classmethod
    def of(cls, category: Category) -> CategoryView:
        return cls(
            id=category.id,
            name=category.name,
            parent_id=category.parent_id,
            level=category.level,
            path=category.path,
        )


def _api_error(exc: Exception) -> ApiError:
    if isinstance(exc, CategoryNotFound):
        return ApiError(404, "not_found", str(exc))
    if isinstance(exc, ParentNotFound):
        return ApiError(422, "parent_not_found", str(exc))
    if isinstance(exc, InvalidCategory):
        return ApiError(422, "invalid_category", str(exc))
    if isinstance(exc, TooDeep):
        return ApiError(422, "too_deep", str(exc))
    if isinstance(exc, MoveIntoOwnSubtree):
        return ApiError(409, "move_into_own_subtree", str(exc))
    if isinstance(exc, DuplicateName):
        return ApiError(409, "duplicate_name", str(exc))
    raise exc


_EXPECTED = (
    CategoryNotFound,
    ParentNotFound,
    InvalidCategory,
    TooDeep,
    MoveIntoOwnSubtree,
    DuplicateName,
)


def categories_router(store: CategoryStore) -> APIRouter:
    router = APIRouter(prefix="/api/v1/categories", tags=["categories"])

    @router.post("", status_code=201)
    async def create(body: NewCategory) -> CategoryView:
        try:
            return CategoryView.of(await store.create(body.name, body.parent_id))
        except _EXPECTED as exc:
            raise _api_error(exc) from exc

    @router.get("/{category_id}")
    async def get(category_id: CategoryId) -> CategoryView:
        try:
            return CategoryView.of(await store.get(category_id))
        except _EXPECTED as exc:
            raise _api_error(exc) from exc

    @router.get("/{category_id}/ancestors")
    async def ancestors(category_id: CategoryId) -> list[CategoryView]:
        """Breadcrumbs: from the root down to the category itself."""
        try:
            return [CategoryView.of(c) for c in await store.ancestors(category_id)]
        except _EXPECTED as exc:
            raise _api_error(exc) from exc

    @router.get("/{category_id}/descendants")
    async def descendants(
        category_id: CategoryId,
        level: Annotated[
            int | None, Query(ge=1, le=MAX_DEPTH, description="how many levels down")
        ] = None,
    ) -> list[CategoryView]:
        try:
            return [CategoryView.of(c) for c in await store.descendants(category_id, level)]
        except _EXPECTED as exc:
            raise _api_error(exc) from exc

    @router.patch("/{category_id}")
    async def change(category_id: CategoryId, body: CategoryChange) -> CategoryView:
        if not body.model_fields_set:
            raise ApiError(422, "validation_failed", "give a name, a parent_id, or both")
        if "name" in body.model_fields_set and body.name is None:
            raise ApiError(422, "validation_failed", "name cannot be null")
        move = Move(body.parent_id) if "parent_id" in body.model_fields_set else None
        try:
            return CategoryView.of(await store.change(category_id, name=body.name, move=move))
        except _EXPECTED as exc:
            raise _api_error(exc) from exc

    return router
