"""ASGI middleware that rejects request bodies above a size limit with HTTP 413."""

from __future__ import annotations

import json
import logging
import os
from typing import Any, Awaitable, Callable

from secom.preprocessing import DEFAULT_WINDOW_LENGTH

logger = logging.getLogger(__name__)

MAX_BODY_BYTES_ENV_VAR = "SECOM_MAX_BODY_BYTES"
# The whole SECOM data set, 1567 rows of 590 readings, is 6.8 MB as JSON from
# Python's json.dumps (about 7 bytes a reading). 32 MiB admits it in one
# request even from a client that writes every float with 17 digits.
DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024
DRAIN_FACTOR = 4

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def configured_max_body_bytes() -> int:
    raw = os.environ.get(MAX_BODY_BYTES_ENV_VAR)
    if not raw:
        return DEFAULT_MAX_BODY_BYTES
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{MAX_BODY_BYTES_ENV_VAR} must be a whole number of bytes, got {raw!r}") from None
    if value <= 0:
        raise ValueError(f"{MAX_BODY_BYTES_ENV_VAR} must be positive, got {value}")
    return value


class BodySizeLimitMiddleware:
    """Reject HTTP requests whose body exceeds ``max_body_bytes``.

    A body whose declared Content-Length is within the limit passes straight
    through. A body without one (chunked) is buffered up to the limit and then
    replayed to the application, so at most ``max_body_bytes`` are held. A body
    over the limit is read and discarded before the 413 is sent.
    """

    def __init__(self, app: Callable[..., Awaitable[None]], max_body_bytes: int | None = None):
        self.app = app
        self.max_body_bytes = max_body_bytes or configured_max_body_bytes()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return

        declared = dict(scope.get("headers") or []).get(b"content-length")
        declared_size = int(declared) if declared is not None and declared.isdigit() else None
        if declared_size is not None and declared_size <= self.max_body_bytes:
            # The HTTP server (h11 or httptools under uvicorn) stops reading at
            # the declared length, so the declared size is the real one.
            await self.app(scope, receive, send)
            return

        too_large = declared_size is not None
        chunks: list[Message] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                chunks.append(message)
                break
            size += len(message.get("body", b""))
            if size > self.max_body_bytes:
                too_large = True
                chunks.clear()
            if not too_large:
                chunks.append(message)
            # Read the rest of a rejected body, because a client that sends the
            # whole body before reading the response otherwise sees a connection
            # reset instead of the 413. Past DRAIN_FACTOR times the limit, stop.
            if not message.get("more_body", False) or size > DRAIN_FACTOR * self.max_body_bytes:
                break
        if too_large:
            await self._reject(scope, send, max(size, declared_size or 0))
            return

        async def replay() -> Message:
            return chunks.pop(0) if chunks else await receive()

        await self.app(scope, replay, send)

    async def _reject(self, scope: Scope, send: Send, size: int) -> None:
        logger.warning(
            "Rejected %s %s: body of at least %d bytes exceeds the limit of %d bytes",
            scope.get("method"),
            scope.get("path"),
            size,
            self.max_body_bytes,
        )
        body = json.dumps(
            {
                "error": "request body too large",
                "detail": [
                    {
                        "type": "body_too_large",
                        "loc": ["body"],
                        "msg": (
                            f"request body of at least {size} bytes exceeds the limit of {self.max_body_bytes} bytes; "
                            f"split the rows into several requests (each repeating the {DEFAULT_WINDOW_LENGTH - 1} rows "
                            f"before its first window), or raise {MAX_BODY_BYTES_ENV_VAR} on the server"
                        ),
                    }
                ],
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})
