"""Which failures mean "a database is unreachable or restarting" (retry later: a consumer keeps
the event, an API answers 503) rather than "this operation is wrong" (a poison event, a bug).

Told apart by the server's or client's error number, not by the driver's exception class:
PyMySQL raises OperationalError for many server errors that no retry will fix.
"""

from __future__ import annotations

from pymongo.errors import ConnectionFailure
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from commerce_services.db.transactions import RETRYABLE, mysql_code

# Server errors that pass: too many connections, shutdown in progress, connection killed,
# disconnected for inactivity; with deadlock and lock wait timeout (InnoDB rolled back).
_SERVER_TRANSIENT = {1040, 1053, 1927, 4031} | RETRYABLE


def _transient_code(code: int | None) -> bool:
    # 2000-2999 are the client library's own errors: cannot connect, server gone, connection
    # lost mid-query.
    return code is not None and (code in _SERVER_TRANSIENT or 2000 <= code < 3000)


def is_outage(exc: BaseException) -> bool:
    """True when `exc`, or an error it was raised from (`raise ... from`), says a database is
    unavailable. An error merely raised while handling an outage is not one."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DBAPIError) and (
            current.connection_invalidated or _transient_code(mysql_code(current))
        ):
            return True
        if isinstance(current, PoolTimeout | ConnectionFailure | ConnectionError | TimeoutError):
            return True
        current = current.__cause__
    return False
