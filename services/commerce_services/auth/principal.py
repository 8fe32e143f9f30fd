"""The verified caller of an HTTP request: a user id and the roles its token grants."""

from __future__ import annotations

from dataclasses import dataclass

CUSTOMER = "customer"
STAFF = "staff"
ROLES = frozenset({CUSTOMER, STAFF})


@dataclass(frozen=True)
class Principal:
    user_id: str
    roles: frozenset[str]

    @property
    def is_staff(self) -> bool:
        return STAFF in self.roles

    def may_see(self, owner: str | None) -> bool:
        """A customer sees what is theirs; staff see everyone's (support, refunds)."""
        return self.is_staff or (owner is not None and owner == self.user_id)
