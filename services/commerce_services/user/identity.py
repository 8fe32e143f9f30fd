"""Sign-up, sign-in, token refresh and sign-out: the user service's identity flows over its
ports (the account store, password hashes, sign-in limits, refresh tokens, the access token
issuer). A wrong email and a wrong password are the same answer, after the same work."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from commerce_services.auth.principal import CUSTOMER, STAFF
from commerce_services.user.model import EmailTaken, User, UserNotFound
from commerce_services.user.passwords import Passwords
from commerce_services.user.refresh_tokens import RefreshRefused, RefreshTokens
from commerce_services.user.sign_in_limits import SignInLimits
from commerce_services.user.signing import AccessTokenIssuer
from commerce_services.user.store import UserStore

log = logging.getLogger(__name__)


class BadCredentials(Exception):
    pass


@dataclass(frozen=True)
class Tokens:
    user_id: str
    access_token: str
    expires_in: int  # seconds
    refresh_token: str


class Identity:
    def __init__(
        self,
        users: UserStore,
        passwords: Passwords,
        limits: SignInLimits,
        refresh_tokens: RefreshTokens,
        issuer: AccessTokenIssuer,
        clock: Callable[[], datetime],
    ) -> None:
        self._users = users
        self._passwords = passwords
        self._limits = limits
        self._refresh = refresh_tokens
        self._issuer = issuer
        self._clock = clock

    async def sign_up(self, email: str, name: str, password: str) -> User:
        """A customer account; EmailTaken if the email has one."""
        return await self._users.create(email, name, await self._passwords.hash(password))

    async def sign_in(self, email: str, password: str, address: str) -> Tokens:
        """Tokens for the account; SignInRefused past a limit, BadCredentials otherwise."""
        await self._limits.attempt(email, address)
        found = await self._users.credentials(email)
        user, hashed = found if found is not None else (None, None)
        # Verified even without an account or a password (against a decoy): the same work.
        if not await self._passwords.verify(hashed, password) or user is None or hashed is None:
            raise BadCredentials("wrong email or password")
        await self._limits.succeeded(email, address)
        if self._passwords.needs_rehash(hashed):
            await self._users.set_password_hash(user.user_id, await self._passwords.hash(password))
        return await self._tokens(user, await self._refresh.issue(user.user_id))

    async def refresh(self, refresh_token: str) -> Tokens:
        """New tokens for a valid refresh token, which is spent; RefreshRefused otherwise
        (also when its account is gone)."""
        grant, successor = await self._refresh.rotate(refresh_token)
        try:
            user = await self._users.get(grant.user_id)
        except UserNotFound as exc:
            raise RefreshRefused("the account is gone") from exc
        return await self._tokens(user, successor)

    async def sign_out(self, refresh_token: str) -> None:
        await self._refresh.revoke(refresh_token)

    async def ensure_staff(self, email: str, name: str, password: str) -> User:
        """The first staff account, from the bootstrap Secret: created with this password if
        the email has no account, else given the staff role (its password is left alone)."""
        try:
            user = await self._users.create(
                email, name, await self._passwords.hash(password), frozenset({CUSTOMER, STAFF})
            )
            log.info("staff account created", extra={"user_id": user.user_id})
            return user
        except EmailTaken:
            granted = await self._users.grant_role(email, STAFF)
            assert granted is not None  # the email is taken, and accounts are never deleted
            return granted

    async def _tokens(self, user: User, refresh_token: str) -> Tokens:
        lifetime = self._issuer.lifetime
        return Tokens(
            user_id=user.user_id,
            access_token=self._issuer.issue(user.user_id, user.roles, self._clock()),
            expires_in=int(lifetime.total_seconds()),
            refresh_token=refresh_token,
        )
