"""Retrying whole transactions that InnoDB rolled back (deadlock, lock wait timeout)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from functools import wraps
from typing import Any, ParamSpec, TypeVar

from sqlalchemy.exc import DBAPIError
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_random_exponential

DUPLICATE_KEY = 1062
RETRYABLE = {1205, 1213}  # lock wait timeout, deadlock: InnoDB rolled the transaction back

P = ParamSpec("P")
T = TypeVar("T")


def mysql_code(exc: BaseException) -> int | None:
    """The server's error number behind a SQLAlchemy error, if any."""
    if isinstance(exc, DBAPIError) and exc.orig is not None and exc.orig.args:
        code = exc.orig.args[0]
        return code if isinstance(code, int) else None
    return None


def retry_transaction(
    fn: Callable[P, Coroutine[Any, Any, T]],
) -> Callable[P, Coroutine[Any, Any, T]]:
    """Runs `fn` (which must open and commit its own transaction) again when InnoDB aborted it."""

    @wraps(fn)
    async def run(*args: P.args, **kwargs: P.kwargs) -> T:
        async for attempt in AsyncRetrying(
            retry=retry_if_exception(lambda exc: mysql_code(exc) in RETRYABLE),
            stop=stop_after_attempt(5),
            wait=wait_random_exponential(multiplier=0.01, max=0.5),
            reraise=True,
        ):
            with attempt:
                return await fn(*args, **kwargs)
        raise AssertionError("unreachable: tenacity reraises the last error")

    return run
