"""User service REST API under /api/v1/users."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, FastAPI, Path
from pydantic import BaseModel, ConfigDict, EmailStr, Field

from commerce_services.user.model import EmailTaken, InvalidUserId, User, UserNotFound
from commerce_services.user.store import UserStore
from commerce_services.web.app import service_app
from commerce_services.web.errors import ApiError
from commerce_services.web.health import ReadinessCheck
from commerce_services.web.text import SingleLineText
from commerce_services.web.timestamps import UtcTimestamp

# The store tells a malformed id (422 invalid_user_id) from an unknown one; this only bounds it.
UserId = Annotated[str, Path(max_length=64)]


class NewUser(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, strict=True)

    email: EmailStr = Field(max_length=254)
    name: SingleLineText = Field(min_length=1, max_length=120)


class UserView(BaseModel):
    user_id: str
    email: str
    name: str
    status: str
    last_active_at: UtcTimestamp
    created_at: UtcTimestamp

    @classmethod
    def of(cls, user: User) -> UserView:
        return cls(
            user_id=user.user_id,
            email=user.email,
            name=user.name,
            status=user.status.value,
            last_active_at=user.last_active_at,
            created_at=user.created_at,
        )


def _errors(exc: Exception) -> ApiError:
    if isinstance(exc, UserNotFound):
        return ApiError(404, "not_found", f"no user {exc}")
    if isinstance(exc, InvalidUserId):
        return ApiError(422, "invalid_user_id", str(exc))
    if isinstance(exc, EmailTaken):
        return ApiError(409, "email_taken", str(exc))
    raise exc


def users_router(store: UserStore) -> APIRouter:
    router = APIRouter(prefix="/api/v1/users", tags=["users"])

    @router.post("", status_code=201)
    async def create(body: NewUser) -> UserView:
        try:
            return UserView.of(await store.create(str(body.email), body.name))
        except EmailTaken as exc:
            raise _errors(exc) from exc

    @router.get("/{user_id}")
    async def get(user_id: UserId) -> UserView:
        try:
            return UserView.of(await store.get(user_id))
        except (UserNotFound, InvalidUserId) as exc:
            raise _errors(exc) from exc

    @router.post("/{user_id}/reactivate")
    async def reactivate(user_id: UserId) -> UserView:
        try:
            return UserView.of(await store.reactivate(user_id))
        except (UserNotFound, InvalidUserId) as exc:
            raise _errors(exc) from exc

    return router


def create_app(store: UserStore, readiness: dict[str, ReadinessCheck]) -> FastAPI:
    app = service_app("user", readiness)
    app.include_router(users_router(store))
    return app
