"""A bounded request body: 413 `payload_too_large` in the error shape, before anything is parsed.

A declared Content-Length over the limit is refused before a byte of the body is read; a body
without one (chunked) is counted as it arrives and refused as soon as it passes the limit, so a
request never costs more memory than the limit. Starlette's own limiter answers plain text, not
the error shape, hence this one.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from commerce_services.web.errors import error_response


def too_large(limit: int) -> str:
    return f"the request body is larger than {limit} bytes"


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None:
            if not (declared.isascii() and declared.isdigit()):
                response = error_response(400, "bad_request", "Content-Length is not a length")
                await response(scope, receive, send)
                return
            if int(declared) > self.max_bytes:
                response = error_response(413, "payload_too_large", too_large(self.max_bytes))
                await response(scope, receive, send)
                return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # FastAPI passes an HTTPException raised while reading the body on to the
                    # error handlers, which answer it in the error shape.
                    raise HTTPException(413, too_large(self.max_bytes))
            return message

        await self.app(scope, counted, send)
