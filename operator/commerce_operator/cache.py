"""The watched state the reconcilers read instead of the API server: the commerce resources,
the objects the operator owns, the Secrets they bind, and which resource binds what.

Kopf keeps it: each is a Kopf index (`watches.py` declares them) filled from the watch
streams, and Kopf starts no handler before every index has its first listing, so a reconcile
never judges from a half-filled cache. A Secret is kept as its keys and resourceVersion only;
its values never enter the operator's memory through the watch.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

import kopf

from commerce_operator.bindings import SecretInfo
from commerce_operator.kube import Kind

Json = dict[str, Any]
SECRETS_INDEX = "secrets"


class WatchedState(Protocol):
    def get(self, kind: Kind, namespace: str, name: str) -> Json | None:
        """The object as last watched, None when there is none."""
        ...

    def secret(self, namespace: str, name: str) -> SecretInfo | None: ...

    def binders(self, binder: Kind, target: Kind, namespace: str, name: str) -> list[str]:
        """The names of the `binder` resources in `namespace` that bind the object."""
        ...


def objects_index(kind: Kind) -> str:
    return kind.plural


def bindings_index(binder: Kind) -> str:
    return f"{binder.plural}_bindings"


def kept(body: Mapping[str, Any]) -> Json:
    """What the cache keeps of an object: a copy of all of it but the server's field
    bookkeeping (not even copied: it is most of an applied object)."""
    metadata = {k: v for k, v in (body.get("metadata") or {}).items() if k != "managedFields"}
    return copy.deepcopy({**body, "metadata": metadata})


def secret_info(body: Mapping[str, Any]) -> SecretInfo:
    keys = set(body.get("data") or {}) | set(body.get("stringData") or {})
    return SecretInfo(frozenset(keys), str(body["metadata"].get("resourceVersion", "")))


class KopfIndices:
    """WatchedState over Kopf's indices, handed over by Kopf's startup handler."""

    def __init__(self) -> None:
        self._indices: Mapping[str, kopf.Index[Any, Any]] = {}

    def attach(self, indices: Mapping[str, kopf.Index[Any, Any]]) -> None:
        self._indices = indices

    def _one(self, index: str, key: tuple[str, ...]) -> Any:
        found = self._indices[index]
        if key not in found:
            return None
        return next(iter(found[key]), None)

    def get(self, kind: Kind, namespace: str, name: str) -> Json | None:
        value = self._one(objects_index(kind), (namespace, name))
        return None if value is None else dict(value)

    def secret(self, namespace: str, name: str) -> SecretInfo | None:
        value = self._one(SECRETS_INDEX, (namespace, name))
        return value if isinstance(value, SecretInfo) else None

    def binders(self, binder: Kind, target: Kind, namespace: str, name: str) -> list[str]:
        found = self._indices[bindings_index(binder)]
        key = (target.kind, namespace, name)
        return sorted(set(_names(found[key]))) if key in found else []


def _names(values: Iterable[Any]) -> Iterable[str]:
    return (str(value) for value in values)
