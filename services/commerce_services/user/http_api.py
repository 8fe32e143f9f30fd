"""User service REST API: accounts under /api/v1/users, sign-in under /api/v1/auth.

Who may: anyone signs up (a customer account), signs in, refreshes and signs out (the refresh
token is the credential there) and reads the JWKS; a signed-in customer reads their own
account, staff read any; staff reactivate dormant accounts. Another customer's account is
answered 404, as one that does not exist. Passwords are taken, hashed and never answered."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Path, Request, Response
from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints

from commerce_services.auth.http_access import Access, AccessRules, Caller
from commerce_services.auth.tokens import TokenVerifier
from commerce_services.user.client_address import Network, client_address
from commerce_services.user.identity import BadCredentials, Identity, Tokens
from commerce_services.user.model import EmailTaken, InvalidUserId, User, UserNotFound
from commerce_services.user.passwords import MAX_PASSWORD, MIN_PASSWORD
from commerce_services.user.refresh_tokens import MAX_REFRESH_TOKEN, RefreshRefused
from commerce_services.user.sign_in_limits import SignInRefused
from commerce_services.user.signing import SigningKeys
from commerce_services.user.store import UserStore
from commerce_services.web.app import service_app
from commerce_services.web.errors import ApiError
from commerce_services.web.health import ReadinessCheck
from commerce_services.web.text import SINGLE_LINE, SingleLineText
from commerce_services.web.timestamps import UtcTimestamp

# The store tells a malformed id (422 invalid_user_id) from an unknown one; this only bounds it.
UserId = Annotated[str, Path(max_length=64)]
# Any characters but control ones, spaces kept: a password is taken as typed.
Password = Annotated[
    str,
    StringConstraints(strip_whitespace=False),
    Field(min_length=MIN_PASSWORD, max_length=MAX_PASSWORD, pattern=SINGLE_LINE),
]
RefreshToken = Annotated[
    str, Field(min_length=1, max_length=MAX_REFRESH_TOKEN, pattern=r"^[\x21-\x7e]+$")
]

ACCESS: AccessRules = {
    ("POST", "/api/v1/users"): Access.ANONYMOUS,
    ("GET", "/api/v1/users/{user_id}"): Access.SIGNED_IN,
    ("POST", "/api/v1/users/{user_id}/reactivate"): Access.STAFF,
    ("POST", "/api/v1/auth/token"): Access.ANONYMOUS,
    ("POST", "/api/v1/auth/refresh"): Access.ANONYMOUS,
    ("POST", "/api/v1/auth/sign-out"): Access.ANONYMOUS,
    ("GET", "/api/v1/auth/jwks.json"): Access.ANONYMOUS,
}


class NewUser(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, strict=True)

    email: EmailStr = Field(max_length=254)
    name: SingleLineText = Field(min_length=1, max_length=120)
    password: Password


class SignIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    email: EmailStr = Field(max_length=254)
    password: Annotated[str, Field(min_length=1, max_length=MAX_PASSWORD)]


class RefreshIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    refresh_token: RefreshToken


class TokenView(BaseModel):
    user_id: str
    access_token: str
    token_type: str = "Bearer"
    expires_in: int  # seconds
    refresh_token: str

    @classmethod
    def of(cls, tokens: Tokens) -> TokenView:
        return cls(
            user_id=tokens.user_id,
            access_token=tokens.access_token,
            expires_in=tokens.expires_in,
            refresh_token=tokens.refresh_token,
        )


class UserView(BaseModel):
    user_id: str
    email: str
    name: str
    status: str
    roles: list[str]
    last_active_at: UtcTimestamp
    created_at: UtcTimestamp

    @classmethod
    def of(cls, user: User) -> UserView:
        return cls(
            user_id=user.user_id,
            email=user.email,
            name=user.name,
            status=user.status.value,
            roles=sorted(user.roles),
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


def users_router(store: UserStore, identity: Identity) -> APIRouter:
    router = APIRouter(prefix="/api/v1/users", tags=["users"])

    @router.post("", status_code=201)
    async def sign_up(body: NewUser) -> UserView:
        try:
            return UserView.of(await identity.sign_up(str(body.email), body.name, body.password))
        except EmailTaken as exc:
            raise _errors(exc) from exc

    @router.get("/{user_id}")
    async def get(user_id: UserId, caller: Caller) -> UserView:
        if not caller.may_see(user_id):
            raise ApiError(404, "not_found", f"no user {user_id}")
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


def auth_router(
    identity: Identity, keys: SigningKeys, trusted_proxies: tuple[Network, ...]
) -> APIRouter:
    router = APIRouter(prefix="/api/v1/auth", tags=["auth"])

    @router.post("/token")
    async def sign_in(body: SignIn, request: Request) -> TokenView:
        """Email and password in, an access token (Bearer, `expires_in` seconds) and a refresh
        token out."""
        address = client_address(
            request.client.host if request.client else None,
            request.headers.get("x-forwarded-for"),
            trusted_proxies,
        )
        try:
            return TokenView.of(await identity.sign_in(str(body.email), body.password, address))
        except SignInRefused as exc:
            raise ApiError(
                429,
                "too_many_attempts",
                "too many sign-in attempts; retry after Retry-After seconds",
                headers={"Retry-After": str(exc.retry_after_s)},
            ) from exc
        except BadCredentials as exc:
            raise ApiError(401, "invalid_credentials", "wrong email or password") from exc

    @router.post("/refresh")
    async def refresh(body: RefreshIn) -> TokenView:
        """A refresh token in (it is spent), new tokens out."""
        try:
            return TokenView.of(await identity.refresh(body.refresh_token))
        except RefreshRefused as exc:
            raise ApiError(401, "invalid_refresh_token", "sign in again") from exc

    @router.post("/sign-out", status_code=204)
    async def sign_out(body: RefreshIn) -> Response:
        """Revokes the refresh token (and those it was rotated from or into)."""
        await identity.sign_out(body.refresh_token)
        return Response(status_code=204)

    @router.get("/jwks.json")
    async def jwks() -> dict[str, Any]:
        """The public keys access tokens are signed with, by `kid`."""
        return keys.jwks()

    return router


def create_app(
    store: UserStore,
    identity: Identity,
    keys: SigningKeys,
    verifier: TokenVerifier,
    readiness: dict[str, ReadinessCheck],
    trusted_proxies: tuple[Network, ...] = (),
) -> FastAPI:
    app = service_app("user", readiness, ACCESS, verifier)
    app.include_router(users_router(store, identity))
    app.include_router(auth_router(identity, keys, trusted_proxies))
    return app
