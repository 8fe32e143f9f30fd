"""A Kopf timer that puts no finalizer on the resource.

Kopf blocks the deletion of every object that has a timer or a daemon with its finalizer, so it
can stop them first. For a kind whose owned objects go with Kubernetes' garbage collector (a
CommerceService) that finalizer buys nothing and costs a lot: with the operator gone, deleting
the resource, or its namespace, would hang on it. A timer of a deleted object simply ends when
Kopf sees the deletion, so this registers Kopf's own timer handler with `requires_finalizer`
off. It touches Kopf's registry internals (`_spawning`, the one list every timer goes into);
`tests/stack/test_operator_commerce_service.py` checks that no finalizer appears.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import kopf


def timer_without_finalizer(
    registry: kopf.OperatorRegistry,
    fn: Callable[..., Any],
    *,
    group: str,
    version: str,
    plural: str,
    interval: float,
    initial_delay: float | None = None,
    handler_id: str | None = None,
) -> None:
    kopf.timer(
        group,
        version,
        plural,
        registry=registry,
        interval=interval,
        initial_delay=initial_delay,
        id=handler_id,
    )(fn)
    spawning: Any = registry._spawning
    handlers = spawning._handlers
    handlers[-1] = dataclasses.replace(handlers[-1], requires_finalizer=False)
