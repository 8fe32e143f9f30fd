"""Bindings, as the kinds whose workloads take settings from other objects share them (a
CommerceService's bindings, a CatalogIndex's sources): what the operator knows of a Secret (its
keys and resourceVersion, never its values), the problem when a target is missing or
incomplete, and the env vars that reference a Secret's keys (values never leave the Secret)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

BINDING_NOT_FOUND = "BindingNotFound"
BINDING_INVALID = "BindingInvalid"


@dataclass(frozen=True)
class SecretInfo:
    keys: frozenset[str]
    resource_version: str


@dataclass(frozen=True)
class BindingProblem:
    reason: str  # BINDING_NOT_FOUND, BINDING_INVALID, or a kind's own
    message: str


def secret_problem(
    field: str, name: str, secrets: Mapping[str, SecretInfo], keys: Iterable[str]
) -> BindingProblem | None:
    """Why the Secret `name` that `field` binds cannot serve `keys`, or None."""
    secret = secrets.get(name)
    if secret is None:
        return BindingProblem(BINDING_NOT_FOUND, f"{field}: Secret {name!r} not found")
    missing = sorted(set(keys) - secret.keys)
    if missing:
        return BindingProblem(
            BINDING_INVALID, f"{field}: Secret {name!r} lacks key(s) {', '.join(missing)}"
        )
    return None


def secret_key_refs(name: str, settings: Mapping[str, str]) -> list[dict[str, Any]]:
    """secretKeyRef env vars; `settings` maps each of the Secret's keys to its variable."""
    return [
        {"name": variable, "valueFrom": {"secretKeyRef": {"name": name, "key": key}}}
        for key, variable in settings.items()
    ]
