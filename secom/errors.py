"""Errors raised by the secom package, each with the HTTP status the service maps it to."""

from __future__ import annotations

from http import HTTPStatus


class SecomError(Exception):
    """Base class of secom errors; ``status`` is the HTTP status a service returns for it."""

    status: HTTPStatus = HTTPStatus.INTERNAL_SERVER_ERROR


class DataError(SecomError):
    """The SECOM archive is missing, damaged or not in the expected format."""


class NotFittedError(SecomError, ValueError):
    """A preprocessor was used before ``fit`` or before loading fitted state."""


class ModelLoadError(SecomError):
    """A stored model lacks a piece needed to serve it, or the piece is invalid."""

    status = HTTPStatus.SERVICE_UNAVAILABLE


class InvalidInputError(SecomError, ValueError):
    """A request that cannot be scored as sent; the client must change it."""

    status = HTTPStatus.BAD_REQUEST

    def __init__(self, field: str, message: str, *, row: int | None = None, error_type: str = "invalid_input"):
        self.field = field
        self.row = row
        self.error_type = error_type
        super().__init__(message)

    @property
    def loc(self) -> list[str | int]:
        return [self.field] if self.row is None else [self.field, self.row]


class PayloadTooLargeError(SecomError):
    """A request body above the configured size limit."""

    status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE
